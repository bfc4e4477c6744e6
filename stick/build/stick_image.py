"""`mcastd stick build`: the disk image an admin copies to a USB stick.

GPT with a BIOS boot partition and one FAT32 ESP that holds the boot loaders, the system and
everything the admin reads or edits: mcastd.conf, the keys, journals/, reports/, post-deploy/.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from driver.keys import KeyFileError, parse_trust
from driver.secret import load_secret

from ..config import CONFIG_NAME, SECRET_NAME, TRUST_NAME, StickConfig
from . import fat
from .bootloader import EFI_DIR, EFI_FILES, bios_core, embed_bios_core, grub_cfg
from .layout import MIB, bootable_disk
from .system import Log, System, system
from .tools import BuildError, missing_host_tools

LABEL = "MCASTD"
MIN_FREE = 16 * MIB  # room for journals and reports
MIN_SIZE = 128 * MIB  # the system alone is ~55 MiB: refused before minutes of building
DIRECTORIES = (EFI_DIR, "mcastd", "journals", "reports", "post-deploy")
CAPTURE_ARG = "mcastd.mode=capture"
README = """\
mcastd boot stick
=================
Boot a laptop from this stick to write the session's image to its internal disk.

mcastd.conf     settings: session, target, then (edit on any computer)
trust.pub       the sender keys this stick follows (when mcastd.conf says trust = true)
secret.key      the secret of encrypted sessions (when mcastd.conf says secret = true)
hostnames.csv   optional: MAC,name lines; post-deploy hooks name each laptop
post-deploy/    programs run after a verified image (MCASTD_TARGET, MCASTD_MAC, MCASTD_HOSTNAME)
journals/       what each laptop has written: a laptop booted again resumes
reports/        one JSON report per laptop, by MAC
"""


@dataclass(frozen=True, slots=True)
class StickOptions:
    config: StickConfig
    size: int = 256 * MIB
    trust: Path | None = None
    secret: Path | None = None
    capture: bool = False
    hostnames: Path | None = None


@dataclass(frozen=True, slots=True)
class StickResult:
    path: Path
    size: int
    system: System
    seconds: float


def build(out: Path, options: StickOptions, cache: Path, log: Log) -> StickResult:
    started = time.monotonic()
    missing = missing_host_tools()
    if missing:
        raise BuildError(f"building a stick needs Debian packages that are missing: apt-get "
                         f"install {' '.join(missing)}")
    trust, secret = check_inputs(options, out)
    built = system(cache, log)
    needed = built.vmlinuz.stat().st_size + built.initrd.stat().st_size + 8 * MIB + MIN_FREE
    if options.size < needed + 2 * MIB:
        raise BuildError(f"--size {options.size // MIB}M is too small for the system: give at "
                         f"least {-(-(needed + 2 * MIB) // MIB)}M.")
    volume = secrets.randbits(32)
    volume_id = f"{volume >> 16:04X}-{volume & 0xFFFF:04X}"
    log(f"writing {out}")
    partitions = bootable_disk(out, options.size, esp_name=LABEL)
    bios_boot, esp = partitions[0], partitions[1]
    at = esp.start
    fat.format_fat32(out, at, esp.size, LABEL, volume)
    fat.mkdir(out, at, "EFI", *DIRECTORIES)
    for name, source in EFI_FILES:
        fat.put(out, at, source, f"{EFI_DIR}/{name}")
    entries = [("mcastd: receive the image onto this laptop", "")]
    if options.capture:
        entries.append(("mcastd: capture this laptop (golden)", CAPTURE_ARG))
    fat.put(out, at, built.vmlinuz, "mcastd/vmlinuz")
    fat.put(out, at, built.initrd, "mcastd/initrd.img")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        config = StickConfig(session=options.config.session, target=options.config.target,
                             then=options.config.then, trust=trust is not None,
                             secret=secret is not None)
        texts = {f"{EFI_DIR}/grub.cfg": grub_cfg(volume_id, entries,
                                                 timeout=10 if options.capture else 0),
                 CONFIG_NAME: config.render(), "README.txt": README}
        if trust is not None:
            texts[TRUST_NAME] = trust
        for dest, text in texts.items():
            fat.put_bytes(out, at, text.replace("\n", "\r\n").encode()
                          if dest.endswith(".txt") else text.encode(), dest, scratch / "f")
        if secret is not None:
            fat.put_bytes(out, at, secret, SECRET_NAME, scratch / "f")
        if options.hostnames is not None:
            fat.put(out, at, options.hostnames, "hostnames.csv")
        for hook in sorted(files("stick.hooks").joinpath("post_deploy").iterdir(),
                           key=lambda h: h.name):
            fat.put_bytes(out, at, hook.read_bytes(), f"post-deploy/{hook.name}", scratch / "f")
        core = scratch / "core.img"
        bios_core(core, volume_id, scratch)
        embed_bios_core(out, core, bios_boot)
    return StickResult(out, options.size, built, time.monotonic() - started)


def check_inputs(options: StickOptions, out: Path) -> tuple[str | None, bytes | None]:
    """The trust file's text and the secret, checked; a size that can hold a system; and an
    output that is a file, never a disk (it is replaced whole)."""
    if out.exists() and not out.is_file():
        raise BuildError(f"{out} is not a plain file: build the stick image into a file, then "
                         f"copy it to the USB stick (dd if=stick.img of={out} bs=4M).")
    if options.size < MIN_SIZE:
        raise BuildError(f"--size {options.size // MIB}M is too small for the system: give at "
                         f"least {MIN_SIZE // MIB}M.")
    return _read_trust(options.trust), _read_secret(options.secret)


def _read_trust(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        parse_trust(str(path))  # refused now, not on thirty laptops
        return path.read_text()
    except (KeyFileError, OSError) as exc:
        raise BuildError(f"--trust {path}: {exc}") from None


def _read_secret(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        load_secret(path, private=False)
        return path.read_bytes()
    except (KeyFileError, OSError) as exc:
        raise BuildError(f"--secret {path}: {exc}") from None
