"""`--capture` sticks: the golden laptop boots the stick's capture entry and its internal disk
becomes a prepared image on a second USB disk, or on the stick itself.

A second USB disk is preferred: FAT32 holds no file over 4 GiB, and a stick is small. The
golden disk is only read (`mcastd capture` never writes its source, and nothing here mounts it).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .disks import Disk
from .hooks import partitions_of
from .receive import follow_program

IMAGES_MOUNT = Path("/images")
IMAGES_DIR = "mcastd-images"
WRITABLE = ("ext4", "ext3", "ext2", "exfat", "ntfs", "vfat", "xfs", "btrfs")
FAT32_LIMIT = "FAT32 holds no file over 4 GiB"


@dataclass(frozen=True, slots=True)
class Destination:
    directory: Path
    what: str  # "the USB disk /dev/sdc1 (exfat)" or "this stick"
    on_stick: bool


def _fs_type(device: str) -> str:
    return subprocess.run(["blkid", "-c", "/dev/null", "-o", "value", "-s", "TYPE", device],
                          capture_output=True, text=True, check=False).stdout.strip()


def destination(disks: list[Disk], stick_disk: str, stick_path: Path,
                log: Callable[[str], None]) -> Destination:
    """The first writable filesystem on a USB disk that is not the stick, else the stick."""
    for disk in disks:
        if not disk.usb or disk.name == stick_disk:
            continue
        for device in partitions_of(disk.device) or [disk.device]:
            kind = _fs_type(device)
            if kind not in WRITABLE:
                continue
            IMAGES_MOUNT.mkdir(exist_ok=True)
            argv = (["ntfs-3g", device, str(IMAGES_MOUNT)] if kind == "ntfs" else
                    ["mount", "-t", kind, device, str(IMAGES_MOUNT)])
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                log(f"cannot mount {device} ({kind}): {done.stderr.strip()}")
                continue
            directory = IMAGES_MOUNT / IMAGES_DIR
            directory.mkdir(exist_ok=True)
            return Destination(directory, f"the USB disk {device} ({kind})", False)
    directory = stick_path / "images"
    directory.mkdir(exist_ok=True)
    return Destination(directory, "this stick", True)


def image_name(source: Disk, now: float) -> str:
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(now))
    return f"golden-{source.serial or source.name}-{stamp}.mci".replace("/", "-")


def run_capture(source: Disk, out: Path, on_progress: Callable[[dict[str, Any]], None],
                on_message: Callable[[str], None],
                errors: Path = Path("/run/mcastd-capture.stderr")) -> tuple[bool, str]:
    final, code = follow_program(["mcastd", "capture", source.device, str(out), "--json"],
                                 on_progress, lambda _level, text: on_message(text), errors)
    final = final or {}
    return (bool(final.get("ok")) and code == 0,
            str(final.get("message") or f"mcastd capture stopped (exit {code})."))


def unmount_images() -> None:
    subprocess.run(["umount", str(IMAGES_MOUNT)], capture_output=True, check=False)
