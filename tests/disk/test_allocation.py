"""Used ranges from each filesystem's own allocation map (partclone), on real filesystems made
by their mkfs tools over old data: every file's bytes are inside the used ranges, and most of
the free space (still full of old data) is outside them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from disk.allocation import SWAP_KEEP, always_used, disk_use, partition_device
from disk.extents import Extents
from disk.table import Partition, PartitionTable
from lab.disks import PartSpec, build_disk, disks_available

MiB = 1 << 20
needs_disks = pytest.mark.skipif(disks_available() is not None, reason=disks_available() or "")
pytestmark = pytest.mark.disks


def marker_file(directory: Path, seed: int) -> bytes:
    """A file of random bytes, findable on the disk image afterwards."""
    data = random.Random(seed).randbytes(3 * MiB + 12345)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "marker.bin").write_bytes(data)
    return data


@needs_disks
@pytest.mark.parametrize("label", ["gpt", "dos"])
def test_every_filesystem_s_files_are_used_and_its_free_space_is_not(
        tmp_path: Path, label: str) -> None:
    files = tmp_path / "files"
    marker = marker_file(files, 7)
    kinds = ["vfat", "ext4", "ntfs", "exfat", "btrfs", "xfs"]
    # The MBR keeps four primary partitions: three filesystems per table there.
    kinds = kinds if label == "gpt" else kinds[:3]
    sizes = {"btrfs": 128 * MiB, "xfs": 320 * MiB}  # their mkfs's least
    specs = [PartSpec(fs, sizes.get(fs, 64 * MiB), (files,)) for fs in kinds]
    disk = build_disk(tmp_path / "golden.img", sum(s.size for s in specs) + 2 * MiB, specs,
                      label=label)
    image = disk.path.read_bytes()
    use = disk_use(str(disk.path), disk.table)
    for part_use in use.partitions:
        part = part_use.partition
        where = image.find(marker[: 1 << 16], part.start, part.end)
        assert where >= 0, f"{part_use.filesystem}: the file is not on the disk?"
        assert part_use.method == "partclone", part_use
        assert part_use.used.covers(where, where + (1 << 16)), part_use.filesystem
        # A fragmented file still lies in used space, every piece of it.
        assert part_use.used_bytes >= len(marker)
        assert part_use.used_bytes < 0.5 * part.size, (part_use.filesystem, part_use.used_bytes)
        assert part_use.used.clip(part.start, part.end) == part_use.used


@needs_disks
def test_swap_keeps_its_signature_and_an_unknown_partition_is_kept_whole(tmp_path: Path) -> None:
    specs = [PartSpec("swap", 16 * MiB), PartSpec("unknown", 8 * MiB)]
    disk = build_disk(tmp_path / "golden.img", 28 * MiB, specs)
    swap, unknown = disk_use(str(disk.path), disk.table).partitions
    assert (swap.method, swap.used.total) == ("swap", SWAP_KEEP)
    assert disk.path.read_bytes()[swap.partition.start + 4086 : swap.partition.start + 4096] \
        == b"SWAPSPACE2"
    assert (unknown.method, unknown.used.total) == ("whole", 8 * MiB)


@needs_disks
def test_the_loop_device_of_a_partition_refuses_writes(tmp_path: Path) -> None:
    disk = build_disk(tmp_path / "golden.img", 8 * MiB, [PartSpec("unknown", 4 * MiB)])
    before = disk.path.read_bytes()
    with partition_device(str(disk.path), disk.table.partitions[0]) as device, \
            pytest.raises(OSError), open(device, "r+b") as f:
        f.write(b"x" * 512)
        f.flush()
    assert disk.path.read_bytes() == before


def test_always_used_is_the_table_the_boot_gap_and_the_space_after_the_last_partition() -> None:
    sector = 512
    size = 100 * MiB
    last_lba = size // sector - 34
    table = PartitionTable("gpt", size, sector, (
        Partition(1, 1 * MiB, 10 * MiB, "U"), Partition(2, 20 * MiB, 60 * MiB, "L")),
        first_lba=34, last_lba=last_lba)
    # Not the gap between the two partitions, nor the GPT backup (made anew on each disk).
    assert always_used(table) == Extents([(0, 1 * MiB), (80 * MiB, (last_lba + 1) * sector)])
    mbr = PartitionTable("dos", size, sector, (Partition(1, 1 * MiB, 99 * MiB, "83"),))
    assert always_used(mbr) == Extents([(0, 1 * MiB)])
    assert always_used(PartitionTable("none", size, sector, ())) == Extents([(0, size)])
