"""A captured golden disk served by the real `mcastd serve` and written by real laptops whose
disks are larger (loop devices full of an earlier owner's data): each ends with a correct GPT,
fsck-clean filesystems holding exactly the golden files, its free space discarded, and reports
the bytes it read back and verified; one also grows its last partition. A laptop whose disk is
too small is refused, naming the size it needs, with nothing written."""

from __future__ import annotations

import hashlib
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


def test_a_prepared_image_lands_exactly_on_larger_disks(tmp_path: Path) -> None:
    files = (Path("/usr/share/doc/bash"), Path("/usr/lib/python3.11/json"))
    specs = [PartSpec("vfat", 40 * MiB, files, "EFI"), PartSpec("ext4", 64 * MiB, files, "root"),
             PartSpec("ntfs", 0, files, "data")]
    golden = build_disk(tmp_path / "golden.img", 168 * MiB, specs)
    trees = {p.number: partition_tree(golden.path, p, s.fs)
             for p, s in zip(golden.table.partitions, specs, strict=True)}
    image = capture(str(golden.path), str(tmp_path / "golden.mci"))

    disks = []
    for i, size in enumerate((256 * MiB, 256 * MiB, 100 * MiB)):  # the last one is too small
        backing = tmp_path / f"laptop{i}.disk"
        with open(backing, "wb") as f:
            write_old_data(f, size, seed=10 + i)  # the last owner's data
        disks.append(backing)
    small_before = hashlib.sha256(disks[2].read_bytes()).digest()
    with loop_device(disks[0]) as first, loop_device(disks[1]) as second, \
            loop_device(disks[2]) as small:
        result = run_classroom_lab(Path(image.image), 3, rate_mbit=100, timeout=120,
                                   targets={0: Path(first), 1: Path(second), 2: Path(small)},
                                   receiver_args_for={1: ["--grow"]})
    *laptops, too_small = result.receivers
    assert all(r.ok for r in laptops), format_table(result)
    assert not too_small.ok and too_small.returncode == 1
    assert "but the image needs" in too_small.message and "use a larger disk" in too_small.message
    assert hashlib.sha256(disks[2].read_bytes()).digest() == small_before  # nothing written
    disks.pop()
    for r in laptops:
        details = (r.final or {}).get("details", {})
        assert details.get("verified_bytes") == image.blocks * MiB, r  # every kept block
        assert details.get("discarded_bytes", 0) > 0, r  # the free ranges were trimmed
        assert "read back and verified" in r.message

    for i, backing in enumerate(disks):
        assert verify_gpt(str(backing)) == "", f"laptop {i}"
        table = read_table(str(backing), 256 * MiB)
        for part, spec in zip(table.partitions, specs, strict=True):
            ok, report = partition_fsck(backing, part, spec.fs)
            assert ok, (i, spec.fs, report)
            assert partition_tree(backing, part, spec.fs) == trees[part.number], (i, spec.fs)
        last = table.partitions[-1]
        grown = last.end > 250 * MiB
        assert grown == (i == 1), (i, last)
