"""Real filesystems for the hooks' tests: image files in the test's tmp_path, made with mkfs
and attached to loop devices the test itself creates (and detaches); never a real disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def skip_unless(*tools: str) -> pytest.MarkDecorator:
    """Skip unless root with every one of ``tools``."""
    why = None
    if os.geteuid() != 0:
        why = "real filesystems need root (loop devices, mounts)"
    elif missing := [t for t in ("losetup", "mount", "umount", "blkid", *tools)
                     if shutil.which(t) is None]:
        why = f"needs {', '.join(missing)} (make test installs them)"
    return pytest.mark.skipif(why is not None, reason=why or "")


def run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr or done.stdout}"
    return done.stdout


@contextlib.contextmanager
def loop_device(path: Path) -> Iterator[str]:
    device = run(["losetup", "--find", "--show", str(path)]).strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)


@contextlib.contextmanager
def mounted(device: str, *argv: str) -> Iterator[Path]:
    """``device`` mounted with ``mount ARGV``, e.g. ``-t ntfs-3g -o ro``."""
    mountpoint = Path(tempfile.mkdtemp(prefix="mcastd-test-"))
    run(["mount", *argv, device, str(mountpoint)])
    try:
        yield mountpoint
    finally:
        run(["umount", str(mountpoint)])
        mountpoint.rmdir()


def make_ext4(path: Path, tree: dict[str, str], size: int = 16 * MiB) -> Path:
    """An ext4 image holding ``tree`` (relative path → text)."""
    source = path.with_suffix(".tree")
    for relative, text in tree.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(text)
    with open(path, "wb") as f:
        f.truncate(size)
    run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", str(source), str(path)])
    return path


def make_ntfs(path: Path, tree: dict[str, str], size: int = 16 * MiB) -> Path:
    """An NTFS image holding ``tree``, written through ntfs-3g (mkfs.ntfs has no -d)."""
    with open(path, "wb") as f:
        f.truncate(size)
    run(["mkfs.ntfs", "-q", "-F", "-Q", str(path)])
    with loop_device(path) as device, mounted(device, "-t", "ntfs-3g") as root:
        for relative, text in tree.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
    return path


def run_hook(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The hook as the agent runs it: its own process, only PATH and the MCASTD_ variables
    (PYTHONPATH finds this checkout)."""
    return subprocess.run([sys.executable, "-m", module], capture_output=True, text=True,
                          check=False, timeout=120,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env})


def hook_env(target: str, partitions: str = "", name: str = "pc01",
             mac: str = "3c:52:82:1a:2b:3c") -> dict[str, str]:
    return {"MCASTD_TARGET": target, "MCASTD_PARTITIONS": partitions, "MCASTD_MAC": mac,
            "MCASTD_HOSTNAME": name}
