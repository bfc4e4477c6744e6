"""Every filesystem partclone maps, on GPT and on MBR: captured, served by the real programs
to two laptops each, and every laptop's filesystems fsck-clean with identical file trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from disk.capture import capture
from disk.resize import verify_gpt
from disk.table import read_table
from lab.classroom import format_table, run_classroom_lab
from lab.disks import (
    PartSpec,
    build_disk,
    disks_available,
    loop_device,
    partition_fsck,
    partition_tree,
    write_old_data,
)
from lab.net import lab_available

MiB = 1 << 20
why = lab_available() or disks_available()
pytestmark = [pytest.mark.lab, pytest.mark.disks, pytest.mark.skipif(why is not None,
                                                                     reason=why or "")]
FILES = (Path("/usr/share/doc/bash"), Path("/usr/lib/python3.11/email"))
SIZE = {"btrfs": 128 * MiB, "xfs": 320 * MiB}  # their mkfs's least; the others 48 MiB


@pytest.mark.parametrize(("label", "kinds"), [
    ("gpt", ("vfat", "ext4", "ntfs", "exfat", "btrfs", "xfs")),
    ("dos", ("vfat", "ext4", "ntfs", "exfat")),  # four primary partitions
    ("dos", ("btrfs", "xfs")),
])
def test_each_filesystem_arrives_clean_and_identical(tmp_path: Path, label: str,
                                                     kinds: tuple[str, ...]) -> None:
    specs = [PartSpec(fs, SIZE.get(fs, 48 * MiB), FILES) for fs in kinds]
    disk_size = sum(s.size for s in specs) + 4 * MiB
    golden = build_disk(tmp_path / "golden.img", disk_size, specs, label=label)
    trees = {p.number: partition_tree(golden.path, p, s.fs)
             for p, s in zip(golden.table.partitions, specs, strict=True)}
    image = capture(str(golden.path), str(tmp_path / "golden.mci"))
    assert [p["filesystem"] for p in image.meta["partitions"]] == list(kinds)

    laptop_size = disk_size + 32 * MiB
    disks = []
    for i in range(2):
        backing = tmp_path / f"laptop{i}.disk"
        with open(backing, "wb") as f:
            write_old_data(f, laptop_size, seed=20 + i)
        disks.append(backing)
    with loop_device(disks[0]) as first, loop_device(disks[1]) as second:
        result = run_classroom_lab(Path(image.image), 2, rate_mbit=200, timeout=180,
                                   targets={0: Path(first), 1: Path(second)})
    assert result.ok, format_table(result)
    for i, backing in enumerate(disks):
        if label == "gpt":
            assert verify_gpt(str(backing)) == "", i
        table = read_table(str(backing), laptop_size)
        assert table.label == label
        for part, spec in zip(table.partitions, specs, strict=True):
            clean, report = partition_fsck(backing, part, spec.fs)
            assert clean, (i, spec.fs, report)
            assert partition_tree(backing, part, spec.fs) == trees[part.number], (i, spec.fs)
