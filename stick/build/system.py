"""The stick's system (kernel + RAM disk), built once per set of inputs and cached.

Nothing in it depends on a stick's settings, which live on the FAT partition: a second stick
with another key or session is only a new disk image around the same two files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from . import initramfs, kernel, python_packages, rootfs

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class System:
    vmlinuz: Path
    initrd: Path
    unpacked_bytes: int  # the RAM disk's files, as the laptop holds them
    seconds: float  # to build it (0.0 when it came from the cache)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcastd" / "stick"


def system(cache: Path, log: Log) -> System:
    started = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    suite = rootfs.host_suite()
    sources = rootfs.host_apt_sources()
    wheel = python_packages.build_wheel(cache / "wheel")
    deb = kernel.kernel_package(cache / "debs")
    key = _key(suite, sources, wheel, deb)
    done = cache / f"system-{key}"
    if (done / "initrd.img").exists():
        log(f"using the stick system built before ({done})")
        return System(done / "vmlinuz", done / "initrd.img",
                      int((done / "unpacked-bytes").read_text()), 0.0)
    with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
        work = Path(tmp)
        root = work / "root"
        _userland(cache, suite, sources, root, log)
        log("installing mcastd and its dependencies")
        python_packages.install(root, wheel)
        unpacked = work / "kernel"
        kernel.unpack(deb, unpacked)
        version = kernel.kernel_version(unpacked)
        log(f"adding the drivers of kernel {version}")
        kernel.install_modules(unpacked, version, root)
        initramfs.install_init(root)
        size = initramfs.unpacked_size(root)
        staged = work / "done"
        staged.mkdir()
        log(f"packing the RAM disk ({size / 2**20:.0f} MiB of files, zstd)")
        initramfs.pack(root, staged / "initrd.img")
        shutil.copy2(kernel.vmlinuz(unpacked, version), staged / "vmlinuz")
        (staged / "unpacked-bytes").write_text(str(size))
        os.replace(staged, done)  # whole or not at all: an interrupted build leaves no cache
    return System(done / "vmlinuz", done / "initrd.img", size, time.monotonic() - started)


def _userland_key(suite: str, sources: list[Path]) -> str:
    """What mmdebstrap's tree depends on: the release, the mirror, the package and prune
    lists (in rootfs.py)."""
    digest = hashlib.sha256(suite.encode() + b"\0")
    for source in (*sources, Path(rootfs.__file__ or "")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _key(suite: str, sources: list[Path], wheel: Path, deb: Path) -> str:
    """What the whole system depends on: the userland, the kernel package, the wheel, /init
    and the modules that assemble them."""
    digest = hashlib.sha256(f"{_userland_key(suite, sources)}\0{deb.name}\0".encode())
    digest.update(_wheel_contents(wheel))
    digest.update(files("stick.build").joinpath("init.sh").read_bytes())
    for module in (rootfs, kernel, python_packages, initramfs):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


def _wheel_contents(wheel: Path) -> bytes:
    """The wheel's files, not the zip (whose timestamps change at every build)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name))
    return digest.digest()


def _userland(cache: Path, suite: str, sources: list[Path], dest: Path, log: Log) -> None:
    """mmdebstrap's tree, kept between builds: a new mcastd needs only a new wheel in it."""
    kept = cache / f"userland-{_userland_key(suite, sources)}"
    if not kept.is_dir():
        log(f"building a Debian {suite} system with mmdebstrap (about a minute)")
        with tempfile.TemporaryDirectory(dir=cache, prefix="userland-") as tmp:
            rootfs.build_rootfs(Path(tmp) / "root", suite, sources)
            os.replace(Path(tmp) / "root", kept)
    shutil.copytree(kept, dest, symlinks=True)
