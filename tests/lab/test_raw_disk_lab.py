"""`mcastd serve` of a raw golden disk image (not captured) sends only what its filesystems
use, found at start; --all-blocks sends everything. The laptops end identical either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from disk.table import read_table
from lab.classroom import format_table, run_classroom_lab
from lab.disks import PartSpec, build_disk, disks_available, partition_fsck, partition_tree
from lab.net import lab_available

MiB = 1 << 20
why = lab_available() or disks_available()
pytestmark = [pytest.mark.lab, pytest.mark.disks, pytest.mark.skipif(why is not None,
                                                                     reason=why or "")]


def test_a_raw_disk_is_served_without_its_free_space(tmp_path: Path) -> None:
    files = (Path("/usr/share/doc/bash"),)
    specs = [PartSpec("vfat", 40 * MiB, files, "EFI"), PartSpec("ext4", 0, files, "root")]
    golden = build_disk(tmp_path / "golden.img", 120 * MiB, specs)
    trees = {p.number: partition_tree(golden.path, p, s.fs)
             for p, s in zip(golden.table.partitions, specs, strict=True)}
    sent = {}
    for mode, args in (("used", []), ("all", ["--all-blocks"])):
        targets = {0: tmp_path / f"{mode}.img"}
        result = run_classroom_lab(golden.path, 1, rate_mbit=200, timeout=120,
                                   sender_args=args, targets=targets,
                                   compare_bytes=mode == "all")
        assert result.receivers[0].ok, format_table(result)
        assert result.sender is not None and result.sender.final is not None
        sent[mode] = result.sender.final["details"]["sent_bytes"]
        laptop = targets[0]
        for part, spec in zip(read_table(str(laptop), 120 * MiB).partitions, specs,
                              strict=True):
            assert partition_fsck(laptop, part, spec.fs)[0]
            assert partition_tree(laptop, part, spec.fs) == trees[part.number]
    # The free space is old random data: sent whole, it costs nearly the whole disk.
    assert sent["used"] < 0.3 * sent["all"], sent
