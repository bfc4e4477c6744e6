"""Fitting a written image to the disk it landed on: the partition table made correct for
that disk (GPT's backup at its last sector), and optionally the last partition and its
filesystem grown to fill it. Done with the field's tools: sgdisk for the GPT, sfdisk to grow
a partition, and each filesystem's own resizer.

A disk image captured from a smaller disk, written to a larger one, has its GPT backup (which
the capture leaves out) missing at the new end and a primary header whose last usable sector
is the old disk's; ``sgdisk -e`` rewrites both for this disk, and ``sgdisk -v`` must then find
no problem.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator

from .allocation import detect_filesystem
from .table import GPT_ENTRIES_SECTORS, Partition, PartitionTable, TableError, read_table

GROWABLE = ("ext2", "ext3", "ext4", "ntfs", "xfs", "btrfs")


class ResizeError(Exception):
    """The table or a filesystem could not be fitted to the disk; the message says which."""


def required_size(table: PartitionTable, used_end: int) -> int:
    """The smallest disk that holds every partition and every used byte, with room for the
    GPT backup (entries and header) after them."""
    end = max([used_end, *(p.end for p in table.partitions)])
    if table.label == "gpt":
        end += (GPT_ENTRIES_SECTORS + 1) * table.sector_size
    return end


def fit_table(path: str) -> None:
    """Make the GPT on the disk (or file) at ``path`` correct for its size; an MBR needs
    nothing. Raises ResizeError unless sgdisk then finds no problem."""
    kind = _label(path)
    if kind != "gpt":
        return
    _run(["sgdisk", "-e", path], "move the GPT backup to the end of the disk")
    problems = verify_gpt(path)
    if problems:
        raise ResizeError(f"the partition table of {path} is still wrong after fixing it: "
                          f"{problems}")


def verify_gpt(path: str) -> str:
    """What ``sgdisk -v`` finds wrong ("" when it says "No problems found")."""
    proc = subprocess.run(["sgdisk", "-v", path], capture_output=True, text=True, check=False)
    if proc.returncode == 0 and "No problems found" in proc.stdout:
        return ""
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines()
             if line.strip() and not line.startswith("Caution")]
    return " ".join(lines) or f"sgdisk -v exited {proc.returncode}"


def grow_last_partition(path: str, disk_size: int) -> tuple[Partition, str]:
    """Grow the partition that ends last to the end of the disk, then its filesystem.
    Returns the grown partition and its filesystem."""
    table = _table(path, disk_size)
    if not table.partitions:
        raise ResizeError(f"{path} has no partition to grow")
    last = max(table.partitions, key=lambda p: p.end)
    with loop(path, last) as device:
        fs = detect_filesystem(device)
    if fs not in GROWABLE:
        raise ResizeError(f"partition {last.number} holds {fs or 'no known filesystem'}, which "
                          "mcastd cannot grow; it was left at its size (the disk is correct)")
    _run(["sfdisk", "-q", "--no-reread", "-N", str(last.number), path],
         f"grow partition {last.number}", stdin=", +\n")
    fit_table(path)
    grown = next(p for p in _table(path, disk_size).partitions if p.number == last.number)
    with loop(path, grown) as device:
        grow_filesystem(fs, device)
    return grown, fs


def grow_filesystem(fs: str, device: str) -> None:
    """Grow the filesystem on ``device`` to fill it, with its own tool."""
    if fs in ("ext2", "ext3", "ext4"):
        _run(["e2fsck", "-f", "-p", device], "check the filesystem before growing it",
             ok=(0, 1))
        _run(["resize2fs", device], "grow the ext filesystem")
    elif fs == "ntfs":
        _run(["ntfsresize", "--force", "--no-progress-bar", device], "grow the NTFS",
             stdin="y\n")
    elif fs in ("xfs", "btrfs"):  # both grow only while mounted
        with tempfile.TemporaryDirectory(prefix="mcastd-grow-") as mnt:
            _run(["mount", "-t", fs, device, mnt], f"mount the {fs} filesystem to grow it")
            try:
                if fs == "xfs":
                    _run(["xfs_growfs", mnt], "grow the XFS")
                else:
                    _run(["btrfs", "filesystem", "resize", "max", mnt], "grow the btrfs")
            finally:
                _run(["umount", mnt], "unmount it again")
    else:
        raise ResizeError(f"mcastd cannot grow {fs}")


@contextlib.contextmanager
def loop(path: str, part: Partition) -> Iterator[str]:
    """A loop device over one partition of the disk or disk image at ``path``."""
    device = _run(["losetup", "--find", "--show", "--offset", str(part.start), "--sizelimit",
                   str(part.size), path], f"reach partition {part.number}").strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)


def _label(path: str) -> str:
    proc = subprocess.run(["sfdisk", "--dump", path], capture_output=True, text=True,
                          check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("label:"):
            return line.split(":", 1)[1].strip()
    return "none"


def _table(path: str, disk_size: int) -> PartitionTable:
    try:
        return read_table(path, disk_size)
    except TableError as exc:
        raise ResizeError(str(exc)) from None


def _run(argv: list[str], what: str, *, stdin: str | None = None,
         ok: tuple[int, ...] = (0,)) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, input=stdin, check=False)
    except FileNotFoundError:
        raise ResizeError(f"cannot {what}: {argv[0]} is not installed") from None
    if proc.returncode not in ok:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ResizeError(f"cannot {what}: {detail[-1] if detail else argv[0] + ' failed'}")
    return proc.stdout
