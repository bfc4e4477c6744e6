"""The stick's system as one compressed RAM disk (cpio "newc", zstd), which GRUB loads."""

from __future__ import annotations

import os
import stat
import subprocess
from importlib.resources import files
from pathlib import Path

from .tools import BuildError


def install_init(root: Path) -> None:
    init = root / "init"
    init.write_bytes(files("stick.build").joinpath("init.sh").read_bytes())
    init.chmod(0o755)
    install_init_dirs(root)


def install_init_dirs(root: Path) -> None:
    """The mount points /init needs, and the console it starts on."""
    for directory in ("proc", "sys", "dev", "run", "tmp", "stick"):
        (root / directory).mkdir(exist_ok=True)
    # The kernel opens /dev/console for init before anything is mounted.
    console = root / "dev/console"
    if not console.exists():
        os.mknod(console, 0o600 | stat.S_IFCHR, os.makedev(5, 1))


def pack(root: Path, out: Path, *, level: int = 9) -> None:
    """``root`` as ``out``: file names sorted, owners root, so one tree gives one image.
    Level 9: on this 2-core machine 10 s for ~280 MiB; 15 takes 80 s to save 1.5 %."""
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = "\0".join(["."] + names).encode() + b"\0"
    with out.open("wb") as sink, subprocess.Popen(
            ["cpio", "--quiet", "--null", "-o", "-H", "newc", "--owner=0:0", "--reproducible"],
            cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE) as cpio:
        assert cpio.stdin is not None and cpio.stdout is not None and cpio.stderr is not None
        with subprocess.Popen(["zstd", "-q", f"-{level}", "-T0", "-c"], stdin=cpio.stdout,
                              stdout=sink, stderr=subprocess.PIPE) as zstd:
            cpio.stdout.close()  # zstd owns the pipe now
            cpio.stdin.write(listing)
            cpio.stdin.close()
            _, zstd_err = zstd.communicate()
        cpio_err = cpio.stderr.read()
    if cpio.returncode or zstd.returncode:
        out.unlink(missing_ok=True)
        raise BuildError("cannot pack the stick's RAM disk: "
                         f"{(cpio_err or zstd_err).decode(errors='replace').strip()}.")


def unpacked_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
