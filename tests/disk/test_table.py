"""Partition tables read with sfdisk: GPT and MBR, their areas, and a disk without one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from disk.table import Partition, PartitionTable, TableError, parse_sfdisk_json, read_table

needs_sfdisk = pytest.mark.skipif(shutil.which("sfdisk") is None, reason="needs sfdisk")
MiB = 1 << 20


def make_disk(path: Path, size: int, script: str) -> None:
    path.write_bytes(b"")
    with open(path, "r+b") as f:
        f.truncate(size)
    subprocess.run(["sfdisk", "-q", str(path)], input=script, text=True, check=True,
                   capture_output=True)


@needs_sfdisk
def test_a_gpt_disk_image_gives_its_partitions_in_bytes(tmp_path: Path) -> None:
    disk = tmp_path / "gpt.img"
    make_disk(disk, 64 * MiB, 'label: gpt\nsize=16MiB, type=U, name="EFI"\ntype=L\n')
    table = read_table(str(disk), 64 * MiB)
    assert table.label == "gpt" and table.sector_size == 512
    esp, root = table.partitions
    assert (esp.number, esp.start, esp.size, esp.name) == (1, 1 * MiB, 16 * MiB, "EFI")
    assert esp.type == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert root.number == 2 and root.start == 17 * MiB
    assert root.end <= (table.last_lba + 1) * 512  # the rest of the usable space
    # The table lives in the first 34 sectors and the last 33 (entries, then the header).
    assert list(table.areas()) == [(0, table.first_lba * 512),
                                   ((table.last_lba + 1) * 512, 64 * MiB)]
    assert table.backup_area() == ((table.last_lba + 1) * 512, 64 * MiB)
    assert 64 * MiB - table.backup_area()[0] == 33 * 512


@needs_sfdisk
def test_an_mbr_disk_image_gives_its_partitions_and_sector_zero(tmp_path: Path) -> None:
    disk = tmp_path / "mbr.img"
    make_disk(disk, 32 * MiB, "label: dos\n2048,20480,c\n,,83\n")
    table = read_table(str(disk), 32 * MiB)
    assert table.label == "dos"
    assert [(p.number, p.start, p.type) for p in table.partitions] == [
        (1, 1 * MiB, "c"), (2, 11 * MiB, "83")]
    assert list(table.areas()) == [(0, 512)]
    assert table.backup_area() == (32 * MiB, 32 * MiB)


@needs_sfdisk
def test_a_disk_without_a_table_is_one_whole(tmp_path: Path) -> None:
    disk = tmp_path / "blank.img"
    disk.write_bytes(bytes(4 * MiB))
    table = read_table(str(disk), 4 * MiB)
    assert table == PartitionTable("none", 4 * MiB, 512, ())


@needs_sfdisk
def test_an_unreadable_source_is_refused_with_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="cannot read the partition table"):
        read_table(str(tmp_path / "missing.img"), 0)


def test_sfdisk_json_with_4k_sectors_and_nvme_names() -> None:
    text = """{"partitiontable": {"label": "gpt", "id": "X", "device": "/dev/nvme0n1",
        "unit": "sectors", "firstlba": 6, "lastlba": 262138, "sectorsize": 4096,
        "partitions": [{"node": "/dev/nvme0n1p12", "start": 256, "size": 1024,
                        "type": "0fc63daf-8483-4772-8e79-3d69d8477de4", "uuid": "U"}]}}"""
    table = parse_sfdisk_json(text, 262144 * 4096)
    assert table.partitions == (Partition(12, 256 * 4096, 1024 * 4096,
                                          "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "U"),)
    assert table.backup_area() == (262139 * 4096, 262144 * 4096)


def test_garbled_sfdisk_output_is_refused() -> None:
    with pytest.raises(TableError, match="cannot read"):
        parse_sfdisk_json('{"partitiontable": {"label": "gpt", "partitions": [{}]}}', 0)
