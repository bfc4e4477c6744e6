"""The host tools the stick is built with, and running them with one-sentence failures."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# command → the Debian package that provides it (named in the refusal).
HOST_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
    "cpio": "cpio",
    "zstd": "zstd",
    "sgdisk": "gdisk",
    "mkfs.fat": "dosfstools",
    "mcopy": "mtools",
    "grub-mkimage": "grub-common",
}
GRUB_PC_DIR = Path("/usr/lib/grub/i386-pc")  # grub-pc-bin: BIOS boot images and modules
SHIM = Path("/usr/lib/shim/shimx64.efi.signed")  # shim-signed: Microsoft-signed first stage
MOKMANAGER = Path("/usr/lib/shim/mmx64.efi.signed")
GRUB_EFI = Path("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")  # grub-efi-amd64-signed
HOST_FILES = {GRUB_PC_DIR / "boot.img": "grub-pc-bin", SHIM: "shim-signed",
              MOKMANAGER: "shim-signed", GRUB_EFI: "grub-efi-amd64-signed"}


class BuildError(Exception):
    """The stick cannot be built; the message says why and what to do, in one sentence."""


def missing_host_tools() -> list[str]:
    """The Debian packages to install before a stick can be built here (empty: none)."""
    packages = {pkg for cmd, pkg in HOST_TOOLS.items() if shutil.which(cmd) is None}
    packages |= {pkg for path, pkg in HOST_FILES.items() if not path.exists()}
    return sorted(packages)


def run(argv: Sequence[str | Path], what: str, *, cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL) -> str:
    """Run a build step; its failure becomes a BuildError naming the step and the tool's
    last words."""
    try:
        done = subprocess.run([str(a) for a in argv], cwd=cwd, stdin=stdin,
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BuildError(f"cannot {what}: {argv[0]}: {exc.strerror}.") from exc
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise BuildError(f"cannot {what}: {argv[0]} failed ({' / '.join(last) or 'no output'}).")
    return done.stdout
