"""A bootable GPT disk image: a BIOS boot partition for GRUB's core and one FAT32 ESP.

The layout both the stick and the VM tests' golden disk use: 1 MiB alignment, partition 1 the
1 MiB BIOS boot partition (type EF02: BIOS GRUB's core.img lives there), partition 2 the ESP,
which UEFI firmware boots from its removable path and which holds everything else. A protective
MBR carries GRUB's BIOS boot sector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .tools import run

MIB = 1 << 20
SECTOR = 512
BIOS_BOOT_START = 1 * MIB
BIOS_BOOT_SIZE = 1 * MIB
ESP_START = BIOS_BOOT_START + BIOS_BOOT_SIZE
GPT_BACKUP = 34 * SECTOR  # backup header and entries at the disk's end


@dataclass(frozen=True, slots=True)
class Partition:
    number: int
    start: int  # bytes from the start of the disk
    size: int


def bootable_disk(image: Path, size: int, *, esp_size: int | None = None, esp_name: str = "ESP",
                  extra_type: str = "8300", extra_name: str = "data") -> list[Partition]:
    """Create ``image`` of ``size`` bytes with a fresh GPT. The ESP fills the disk unless
    ``esp_size`` is given; then a third partition of type ``extra_type`` takes the rest."""
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(size)
    last = (size - GPT_BACKUP) // MIB * MIB  # partitions end on a MiB boundary
    esp_end = ESP_START + esp_size if esp_size is not None else last
    argv: list[str | Path] = [
        "sgdisk", "-n", f"1:{BIOS_BOOT_START // SECTOR}:{ESP_START // SECTOR - 1}", "-t", "1:EF02",
        "-c", "1:BIOS boot", "-n", f"2:{ESP_START // SECTOR}:{esp_end // SECTOR - 1}",
        "-t", "2:EF00", "-c", f"2:{esp_name}",
    ]
    parts = [Partition(1, BIOS_BOOT_START, BIOS_BOOT_SIZE), Partition(2, ESP_START,
                                                                        esp_end - ESP_START)]
    if esp_size is not None:
        argv += ["-n", f"3:{esp_end // SECTOR}:{last // SECTOR - 1}", "-t", f"3:{extra_type}",
                 "-c", f"3:{extra_name}"]
        parts.append(Partition(3, esp_end, last - esp_end))
    run([*argv, image], "write the partition table")
    return parts
