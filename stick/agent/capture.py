"""`--capture` sticks: the golden laptop boots the stick's capture entry and its internal disk
becomes a prepared image on a second USB disk, or on the stick itself.

A second USB disk is preferred: FAT32 holds no file over 4 GiB, and a stick is small. The
golden disk is only read (`mcastd capture` never writes its source, and nothing here mounts it).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .disks import Disk
from .hooks import partitions_of

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
    """``errors`` keeps the program's stderr: its last lines go to the log on a failure."""
    final: dict[str, Any] = {}
    with errors.open("w") as stderr, subprocess.Popen(
            ["mcastd", "capture", source.device, str(out), "--json"], stdout=subprocess.PIPE,
            stderr=stderr, text=True, errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if not isinstance(event, dict):
                    continue
                if event.get("event") == "progress":
                    on_progress(event)
                elif event.get("event") == "message":
                    on_message(str(event.get("text", "")))
                elif event.get("event") == "final":
                    final = event
    code = process.returncode
    ok = bool(final.get("ok")) and code == 0
    if not ok:
        for line in errors.read_text(errors="replace").splitlines()[-10:]:
            on_message(line)
    return ok, str(final.get("message") or f"mcastd capture stopped (exit {code}).")


def unmount_images() -> None:
    subprocess.run(["umount", str(IMAGES_MOUNT)], capture_output=True, check=False)
