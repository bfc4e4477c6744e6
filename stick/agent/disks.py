"""The laptop's disks, from sysfs, and which one `target = auto` may write.

auto means the single internal, non-removable, writable disk that is large enough: never the
boot stick, never a USB disk, never a CD, RAM or loop device. When that is not exactly one
disk, nothing is guessed: the screen lists the disks and the laptop waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from receiver.identity import disk_model_and_serial

SECTOR = 512  # /sys/block/*/size counts 512-byte units whatever the disk's sector size
_NOT_DISKS = ("loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd", "mtdblock")
_NOT_WHOLE = ("boot0", "boot1", "rpmb")  # an eMMC's hardware boot areas
MIN_SIZE = 32 << 20  # an empty card reader reports 0 bytes; no laptop disk is this small


@dataclass(frozen=True, slots=True)
class Disk:
    name: str  # nvme0n1
    size: int  # bytes
    model: str
    serial: str
    removable: bool
    usb: bool
    read_only: bool

    @property
    def device(self) -> str:
        return f"/dev/{self.name}"

    def describe(self) -> str:
        gib = self.size / 2**30
        kind = "USB" if self.usb else "removable" if self.removable else "internal"
        return (f"{self.device}  {gib:,.1f} GiB  {self.model or 'unknown model'}  "
                f"serial {self.serial or '?'}  ({kind}{', read-only' if self.read_only else ''})")


@dataclass(frozen=True, slots=True)
class Choice:
    disk: Disk | None  # None: the laptop must wait for the admin
    reason: str  # one sentence: why this disk, or why none
    several: bool = False  # auto found more than one internal disk that fits


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def list_disks(sysfs: Path = Path("/sys")) -> list[Disk]:
    disks = []
    block = sysfs / "block"
    for entry in sorted(block.iterdir()) if block.is_dir() else []:
        name = entry.name
        if name.startswith(_NOT_DISKS) or name.endswith(_NOT_WHOLE):
            continue
        device = entry / "device"
        model, serial = disk_model_and_serial(entry)  # as the report and the sender see it
        resolved = str(entry.resolve())
        disks.append(Disk(
            name=name, size=int(_read(entry / "size") or 0) * SECTOR,
            model=" ".join(model.split()), serial=serial,
            # An SD card in a built-in reader is an mmcblk like an eMMC, but removable.
            removable=_read(entry / "removable") == "1" or _read(device / "type") == "SD",
            usb="/usb" in resolved,
            read_only=_read(entry / "ro") == "1",
        ))
    return disks


def choose(target: str, disks: list[Disk], stick_disk: str | None,
           image_size: int | None = None) -> Choice:
    """The disk ``target`` (auto, /dev/NAME or serial=SERIAL) names on this laptop."""
    if target != "auto":
        wanted = [d for d in disks if (target.startswith("serial=") and
                                       d.serial == target.removeprefix("serial="))
                  or d.device == target]
        if not wanted:
            return Choice(None, f"mcastd.conf names target {target}, which this laptop does "
                                "not have.")
        disk = wanted[0]
        if disk.name == stick_disk:
            return Choice(None, f"mcastd.conf names target {target}, which is this boot stick.")
        if disk.read_only:
            return Choice(None, f"target {target} is read-only.")
        return Choice(disk, f"{disk.device} as mcastd.conf says ({target})")
    internal = [d for d in disks if d.name != stick_disk and not d.removable and not d.usb
                and not d.read_only and d.size >= MIN_SIZE]
    fits = [d for d in internal if image_size is None or d.size >= image_size]
    if len(fits) == 1:
        return Choice(fits[0], f"{fits[0].device}, the one internal disk")
    if not fits:
        why = ("this laptop has no internal disk" if not internal else
               f"no internal disk holds the {image_size or 0:,}-byte image")
        return Choice(None, f"target auto cannot choose: {why}.")
    names = ", ".join(d.device for d in fits)
    return Choice(None, f"target auto cannot choose: this laptop has {len(fits)} internal "
                        f"disks ({names}){' that hold the image' if image_size else ''}; set "
                        "target in mcastd.conf or press a disk's number.", several=True)
