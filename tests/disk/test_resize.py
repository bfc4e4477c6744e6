"""A captured disk written to a larger disk: the GPT is made correct for it (sgdisk -v clean),
and with --grow the last partition and its filesystem fill it; every filesystem stays
fsck-clean with the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from disk.capture import capture
from disk.imagefile import PreparedImage
from disk.resize import fit_table, grow_last_partition, required_size, verify_gpt
from disk.table import Partition, PartitionTable, read_table
from lab.disks import PartSpec, build_disk, disks_available, partition_fsck, partition_tree
from protocol.blockcodec import BlockDecoder

MiB = 1 << 20
FILES = (Path("/usr/share/doc/bash"),)
needs_disks = pytest.mark.skipif(disks_available() is not None, reason=disks_available() or "")
pytestmark = pytest.mark.disks


def write_image_to(image_path: str, target: Path, size: int) -> None:
    """What a receiver does with the blocks (without the network): each at its offset."""
    with open(target, "wb") as f:
        f.truncate(size)
    decoder = BlockDecoder()
    with PreparedImage(image_path) as image, open(target, "r+b") as f:
        block = image.header.block_size
        for entry in image.entries:
            length = min(block, image.header.disk_size - entry.index * block)
            f.seek(entry.index * block)
            f.write(decoder.decode(entry.kind, image.read_payload(entry), length))


@needs_disks
@pytest.mark.parametrize("last", ["ext4", "ntfs", "xfs", "btrfs"])
def test_a_larger_disk_gets_a_correct_table_and_grows_on_request(tmp_path: Path,
                                                                 last: str) -> None:
    size = {"xfs": 320 * MiB, "btrfs": 128 * MiB}.get(last, 64 * MiB)
    specs = [PartSpec("vfat", 40 * MiB, FILES, "EFI"), PartSpec(last, 0, FILES, "root")]
    golden = build_disk(tmp_path / "golden.img", 42 * MiB + size, specs)
    image = capture(str(golden.path), str(tmp_path / "golden.mci"))
    trees = {p.number: partition_tree(golden.path, p, s.fs)
             for p, s in zip(golden.table.partitions, specs, strict=True)}

    bigger = 2 * (42 * MiB + size)
    for grow in (False, True):
        target = tmp_path / f"laptop-{grow}.img"
        write_image_to(image.image, target, bigger)
        assert verify_gpt(str(target)) != ""  # the backup is missing at the new end
        fit_table(str(target))
        assert verify_gpt(str(target)) == ""
        if grow:
            grown, fs = grow_last_partition(str(target), bigger)
            assert fs == last and grown.end > bigger - 2 * MiB
        table = read_table(str(target), bigger)
        assert table.last_lba > (bigger - 2 * MiB) // 512  # usable to the new end
        for part, spec in zip(table.partitions, specs, strict=True):
            ok, report = partition_fsck(target, part, spec.fs)
            assert ok, report
            assert partition_tree(target, part, spec.fs) == trees[part.number]


def test_the_size_a_disk_needs() -> None:
    table = PartitionTable("gpt", 100 * MiB, 512, (Partition(1, MiB, 50 * MiB, "L"),),
                           first_lba=34, last_lba=100 * MiB // 512 - 34)
    assert required_size(table, 10 * MiB) == 51 * MiB + 33 * 512
    assert required_size(table, 60 * MiB) == 60 * MiB + 33 * 512
    mbr = PartitionTable("dos", 100 * MiB, 512, (Partition(1, MiB, 50 * MiB, "83"),))
    assert required_size(mbr, 10 * MiB) == 51 * MiB
