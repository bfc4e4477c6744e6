"""Find the boot stick's FAT partition (GRUB passed its volume id) and mount it read-write:
mcastd.conf and the keys are read from it, journals and reports are written to it."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MOUNT_POINT = Path("/stick")
APPEAR_WAIT = 20.0  # USB storage is enumerated a few seconds after the controller's driver


class StickError(Exception):
    """The stick's partition cannot be found or mounted; one sentence."""


@dataclass(frozen=True, slots=True)
class BootArgs:
    volume_id: str  # the FAT volume id, "ABCD-1234"
    mode: str  # "receive" or "capture"


def boot_args(cmdline: str) -> BootArgs:
    words = dict(w.split("=", 1) for w in cmdline.split() if "=" in w)
    return BootArgs(words.get("mcastd.stick", ""), words.get("mcastd.mode", "receive"))


SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def firmware(sysfs: Path = Path("/sys")) -> str:
    """"UEFI, Secure Boot on", "UEFI, Secure Boot off" or "BIOS": said at boot, for the
    admin who wonders why a laptop would not start the stick."""
    efi = sysfs / "firmware/efi"
    if not efi.is_dir():
        return "BIOS"
    try:
        data = (efi / "efivars" / SECURE_BOOT_VAR).read_bytes()
    except OSError:
        return "UEFI, Secure Boot off"
    on = len(data) >= 5 and data[4] == 1  # 4 bytes of attributes, then the value
    return f"UEFI, Secure Boot {'on' if on else 'off'}"


@dataclass(frozen=True, slots=True)
class Stick:
    partition: str  # /dev/sdb2
    disk: str  # sdb: never a target
    path: Path  # where it is mounted


def mount_stick(volume_id: str, sysfs: Path = Path("/sys")) -> Stick:
    if not volume_id:
        raise StickError("the kernel was started without mcastd.stick=VOLUME-ID: boot it "
                         "from the stick's own menu.")
    deadline = time.monotonic() + APPEAR_WAIT
    while True:
        found = subprocess.run(["blkid", "-U", volume_id], capture_output=True, text=True,
                               check=False).stdout.strip()
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not found:
        raise StickError(f"the stick's partition (volume id {volume_id}) did not appear: was "
                         "it pulled out too early?")
    MOUNT_POINT.mkdir(exist_ok=True)
    # flush: vfat writes each file out at close, so a report survives the power going off.
    done = subprocess.run(["mount", "-t", "vfat", "-o", "rw,noatime,flush", found,
                           str(MOUNT_POINT)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StickError(f"cannot mount the stick's partition {found}: "
                         f"{done.stderr.strip() or 'mount failed'}.")
    name = os.path.basename(found)
    parent = (sysfs / "class/block" / name / "..").resolve().name
    return Stick(found, parent, MOUNT_POINT)


def unmount_stick() -> None:
    subprocess.run(["sync"], check=False)
    subprocess.run(["umount", str(MOUNT_POINT)], capture_output=True, check=False)
