"""A disk's partition table (GPT or MBR), read with util-linux's ``sfdisk --json``.

sfdisk is on every Linux system and parses both kinds (and validates GPT CRCs); we only turn
its JSON into values. The table areas themselves are found from the label: an MBR is sector 0;
a GPT is the protective MBR, the primary header and its entry array at the start, and the
backup entries and header in the disk's last sectors.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from .extents import Extents

GPT_ENTRIES_SECTORS = 32  # 128 entries of 128 bytes at 512-byte sectors (the usual array)


class TableError(Exception):
    """The partition table cannot be read; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Partition:
    number: int  # 1-based, as the kernel names it (sda1)
    start: int  # bytes from the disk's start
    size: int  # bytes
    type: str  # GPT type GUID (upper case) or MBR type byte in hex ("83")
    uuid: str = ""  # GPT partition GUID
    name: str = ""  # GPT partition name

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True, slots=True)
class PartitionTable:
    label: str  # "gpt", "dos" (MBR), or "none" for a disk without a table
    disk_size: int  # bytes of the disk the table was read from
    sector_size: int
    partitions: tuple[Partition, ...]
    disk_id: str = ""  # GPT disk GUID or MBR signature
    first_lba: int = 0  # GPT: first and last usable sectors
    last_lba: int = 0

    def areas(self) -> Extents:
        """Where the table itself lives: always captured, and fixed on a disk of another
        size (the GPT backup moves to the new end)."""
        if self.label == "none":
            return Extents()
        if self.label != "gpt":
            return Extents([(0, self.sector_size)])
        sector = self.sector_size
        primary_end = max(self.first_lba, 2 + GPT_ENTRIES_SECTORS) * sector
        backup_start = min(self.disk_size - sector, (self.last_lba + 1) * sector)
        return Extents([(0, primary_end), (backup_start, self.disk_size)])

    def backup_area(self) -> tuple[int, int]:
        """The GPT backup (entries and header) at the disk's end; empty for MBR."""
        if self.label != "gpt":
            return (self.disk_size, self.disk_size)
        return (min(self.disk_size - self.sector_size, (self.last_lba + 1) * self.sector_size),
                self.disk_size)


def read_table(path: str, disk_size: int) -> PartitionTable:
    """The partition table of the disk or disk image at ``path`` (``disk_size`` bytes)."""
    try:
        proc = subprocess.run(["sfdisk", "--json", path], capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        raise TableError("sfdisk is not installed: install util-linux (fdisk on Debian)") \
            from None
    if proc.returncode != 0:
        message = proc.stderr.strip()
        if "does not contain a recognized partition table" in message:
            return PartitionTable("none", disk_size, 512, ())
        raise TableError(f"cannot read the partition table of {path}: {message}")
    return parse_sfdisk_json(proc.stdout, disk_size)


def parse_sfdisk_json(text: str, disk_size: int) -> PartitionTable:
    try:
        table = json.loads(text)["partitiontable"]
        sector = int(table.get("sectorsize", 512))
        partitions = tuple(
            Partition(
                number=_number(p["node"]),
                start=int(p["start"]) * sector,
                size=int(p["size"]) * sector,
                type=str(p["type"]).upper() if table["label"] == "gpt" else str(p["type"]),
                uuid=str(p.get("uuid", "")),
                name=str(p.get("name", "")),
            )
            for p in table.get("partitions", [])
        )
        return PartitionTable(
            label=str(table["label"]), disk_size=disk_size, sector_size=sector,
            partitions=partitions, disk_id=str(table.get("id", "")),
            first_lba=int(table.get("firstlba", 0)), last_lba=int(table.get("lastlba", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TableError(f"sfdisk printed a table we cannot read ({exc})") from None


def _number(node: str) -> int:
    """sda1 → 1, nvme0n1p12 → 12, disk.img3 → 3."""
    digits = len(node) - len(node.rstrip("0123456789"))
    if not digits:
        raise ValueError(f"partition node {node!r} has no number")
    return int(node[-digits:])
