"""Which bytes of a disk are in use, from each filesystem's own allocation map.

Partclone (Clonezilla's and FOG's engine) reads the allocation bitmaps of ext2/3/4, NTFS,
FAT12/16/32, exFAT, btrfs, XFS, F2FS and HFS+ through their own libraries; its domain log
(``-D``) lists the used ranges. We drive it per partition, over a read-only loop device at the
partition's offset (so a disk image file works like a disk, and nothing can write to the
source), and put the ranges in whole-disk coordinates. What partclone cannot read (unknown,
BitLocker, LUKS) is used whole; swap keeps only its first page (the signature). The partition
table's areas, the gap before the first partition (boot loaders) and anything after the last
one are always used.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .extents import Extents, MapfileError, parse_mapfile
from .table import Partition, PartitionTable

# blkid's TYPE → the partclone program that reads that filesystem's allocation map.
PARTCLONE = {
    "ext2": "partclone.extfs", "ext3": "partclone.extfs", "ext4": "partclone.extfs",
    "ntfs": "partclone.ntfs", "vfat": "partclone.fat", "exfat": "partclone.exfat",
    "btrfs": "partclone.btrfs", "xfs": "partclone.xfs", "f2fs": "partclone.f2fs",
    "hfsplus": "partclone.hfsp",
}
SWAP_KEEP = 4096  # the swap header page: its signature, UUID and label
# Kept at both ends of every partition whatever its map says: boot sectors, and what lives
# past a filesystem's last cluster (NTFS keeps its backup boot sector in the partition's last
# sector, outside every cluster, so its map never lists it).
EDGE_KEEP = 4096


class AllocationError(Exception):
    """A partition's allocation map cannot be read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class PartitionUse:
    partition: Partition
    filesystem: str  # blkid's TYPE ("" when none was recognised)
    method: str  # "partclone", "whole" (unknown contents) or "swap"
    used: Extents  # in whole-disk coordinates

    @property
    def used_bytes(self) -> int:
        return self.used.total


@dataclass(frozen=True, slots=True)
class DiskUse:
    table: PartitionTable
    partitions: tuple[PartitionUse, ...]
    always: Extents  # table areas, the gap before the first partition, space after the last

    @property
    def used(self) -> Extents:
        extents = self.always
        for part in self.partitions:
            extents = extents | part.used
        return extents

    @property
    def mapped(self) -> Extents:
        """What a filesystem's own map says is in use: there a block of zeros is data (a file
        of zeros), while elsewhere (an unknown partition, the space after the last one) it
        is taken for free space."""
        extents = Extents()
        for part in self.partitions:
            if part.method == "partclone":
                extents = extents | part.used
        return extents


def always_used(table: PartitionTable) -> Extents:
    """The table's own areas, what lies before the first partition (a boot loader in the MBR
    gap) and after the last one (a vendor's hidden data). A GPT's backup is left out: it is
    made anew at the end of each target disk, never copied as data."""
    if not table.partitions:
        return Extents([(0, table.disk_size)])
    end = table.backup_area()[0]
    first = min(p.start for p in table.partitions)
    last = max(p.end for p in table.partitions)
    return (Extents([(0, first), (last, end)]) | table.areas()).clip(0, end)


def detect_filesystem(device: str) -> str:
    """blkid's TYPE of what ``device`` holds, probing the superblocks only (not the cache)."""
    proc = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def partclone_used(tool: str, device: str, offset: int) -> Extents:
    """The used ranges partclone finds on ``device``, shifted by ``offset`` (whole-disk
    coordinates)."""
    with tempfile.TemporaryDirectory(prefix="mcastd-domain-") as tmp:
        domain, log = os.path.join(tmp, "domain"), os.path.join(tmp, "log")
        argv = [tool, "-D", "-s", device, "-O", domain, "-L", log, "-q",
                f"--offset_domain={offset}"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise AllocationError(f"{tool} is not installed: install partclone") from None
        if proc.returncode != 0 or not os.path.exists(domain):
            detail = _last_line(proc.stderr) or _last_line(_read(log)) or "no reason given"
            raise AllocationError(f"{tool} could not read the filesystem: {detail}")
        try:
            return parse_mapfile(_read(domain))
        except MapfileError as exc:
            raise AllocationError(f"{tool}: {exc}") from None


def partition_use(part: Partition, device: str,
                  mapper: Callable[[str, str, int], Extents] = partclone_used) -> PartitionUse:
    """How much of one partition (readable at ``device``) is in use, and how we know."""
    filesystem = detect_filesystem(device)
    whole = Extents([(part.start, part.end)])
    if filesystem == "swap":
        return PartitionUse(part, filesystem, "swap",
                            Extents([(part.start, part.start + min(SWAP_KEEP, part.size))]))
    tool = PARTCLONE.get(filesystem)
    if tool is None:
        return PartitionUse(part, filesystem, "whole", whole)
    edges = Extents([(part.start, part.start + min(EDGE_KEEP, part.size)),
                     (max(part.start, part.end - EDGE_KEEP), part.end)])
    used = (mapper(tool, device, part.start) | edges).clip(part.start, part.end)
    return PartitionUse(part, filesystem, "partclone", used)


@contextlib.contextmanager
def partition_device(source: str, part: Partition) -> Iterator[str]:
    """A read-only loop device showing just ``part`` of ``source`` (a disk or an image file):
    partclone reads a filesystem from a device of its own, and the kernel then refuses any
    write to the source."""
    proc = subprocess.run(
        ["losetup", "--find", "--show", "--read-only", "--offset", str(part.start),
         "--sizelimit", str(part.size), source],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AllocationError(f"cannot make a read-only loop device for partition "
                              f"{part.number} of {source}: {_last_line(proc.stderr)}")
    device = proc.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)


def disk_use(source: str, table: PartitionTable) -> DiskUse:
    """The used ranges of every partition of ``source`` and the areas always kept."""
    parts = []
    for part in table.partitions:
        with partition_device(source, part) as device:
            parts.append(partition_use(part, device))
    return DiskUse(table, tuple(parts), always_used(table))


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
