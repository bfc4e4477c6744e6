"""The stick's userland: a minimal Debian from this machine's apt sources, made by mmdebstrap.

Only Essential packages plus what a laptop needs at run time: Python 3.11, busybox (DHCP,
link-local probing), kmod (drivers by modalias), mount, the partition and filesystem tools the
receiver's GPT fix calls, ntfs-3g for the Windows hook, partclone for `--capture`, and the free
firmware.
Documentation, manuals and translations are never unpacked; the package manager itself is
removed afterwards, since nothing is installed on a system that lives in RAM for one job.
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
from pathlib import Path

from .tools import BuildError, run

PACKAGES = (
    "python3.11-minimal", "libpython3.11-stdlib", "busybox", "kmod", "mount", "util-linux",
    "gdisk", "fdisk", "e2fsprogs", "ntfs-3g", "partclone", "exfatprogs", "firmware-linux-free",
)
_NOT_UNPACKED = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
                 "/usr/share/locale/*", "/usr/share/lintian/*", "/usr/share/bash-completion/*")
# Never used on the stick: the package manager and its perl, and the Python parts for
# development and desktops. Removed after the build, so installing still works.
PRUNED = (
    "usr/bin/perl*", "usr/lib/x86_64-linux-gnu/perl*", "usr/lib/x86_64-linux-gnu/libperl*",
    "usr/share/perl", "usr/share/perl5", "usr/lib/x86_64-linux-gnu/libicu*",
    "usr/bin/apt*", "usr/lib/apt", "usr/lib/x86_64-linux-gnu/libapt*", "var/lib/apt",
    "var/cache/apt", "var/cache/debconf", "usr/share/zoneinfo", "usr/share/i18n",
    "usr/lib/x86_64-linux-gnu/gconv", "usr/share/common-licenses",
    "usr/lib/python3.11/ensurepip", "usr/lib/python3.11/idlelib", "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data", "usr/lib/python3.11/tkinter", "usr/lib/python3.11/turtledemo",
    "usr/lib/python3.11/unittest", "usr/lib/python3.11/distutils",
)


def host_apt_sources() -> list[Path]:
    """This machine's enabled apt source files: the stick is built from the same mirror."""
    etc = Path("/etc/apt")
    files = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    files += sorted(p for p in (etc / "sources.list.d").glob("*")
                    if p.suffix in (".list", ".sources") and p.stat().st_size > 0)
    return [p for p in files if "debian" in p.read_text(errors="replace")]


def host_suite() -> str:
    """The Debian release this machine runs (the stick's userland is of the same release)."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    raise BuildError("cannot tell which Debian release this machine runs (/etc/os-release "
                     "has no VERSION_CODENAME): build the stick on Debian 12 or later.")


def build_rootfs(dest: Path, suite: str, sources: list[Path]) -> None:
    """mmdebstrap into ``dest`` (which must not exist), then prune and precompile."""
    argv: list[str | Path] = ["mmdebstrap", "--mode=root", "--variant=essential",
                              "--include=" + ",".join(PACKAGES)]
    argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in _NOT_UNPACKED]
    argv += [suite, dest, *sources]
    run(argv, f"build the stick's Debian {suite} system with mmdebstrap")
    prune(dest)
    # Bytecode ahead of time: a laptop would otherwise compile every module at each boot.
    precompile(dest, "usr/lib/python3.11")


def prune(root: Path) -> None:
    # mmdebstrap's device nodes: the laptop mounts devtmpfs there (and copying a tree with
    # /dev/zero in it would never end).
    for node in (root / "dev").iterdir():
        if node.is_dir() and not node.is_symlink():
            shutil.rmtree(node)
        else:
            node.unlink()
    for pattern in PRUNED:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def precompile(root: Path, inside: str) -> None:
    """Compile ``root/inside`` to the ``unchecked-hash`` form, valid whatever mtimes the RAM
    disk gets, with the paths the laptop will see in tracebacks."""
    ok = compileall.compile_dir(
        root / inside, quiet=1, workers=0, ddir=f"/{inside}",
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise BuildError(f"cannot compile the Python modules under /{inside}.")
