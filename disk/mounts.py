"""Is a block device in use? Mounts, swap and stacked devices on it and on its partitions;
which loop devices show a disk image file.

The logic is a pure function of the texts of /proc/self/mountinfo and /proc/swaps and of a
sysfs block directory, so tests feed it fake trees and never look at this machine's disks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

Rdev = tuple[int, int]

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo and /proc/swaps write space, tab, newline and backslash as \\ooo."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def _parse_rdev(text: str) -> Rdev | None:
    major, sep, minor = text.strip().partition(":")
    if not sep or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def _read_rdev(dev_file: Path) -> Rdev | None:
    try:
        return _parse_rdev(dev_file.read_text())
    except OSError:
        return None


@dataclass(frozen=True)
class Member:
    """The device itself or one of its partitions."""

    name: str  # kernel name, e.g. "nvme0n1p2"; "" when sysfs does not know the device
    label: str  # how messages call it: "/dev/nvme0n1p2", or "device 259:2"
    sysfs_dir: Path | None


def find_block_name(rdev: Rdev, sys_block_dir: Path) -> str | None:
    """The kernel name (``loop0``, ``nvme0n1p2``) of the block device numbered ``rdev``."""
    try:
        entries = sorted(sys_block_dir.iterdir())
    except OSError:
        return None
    for entry in entries:
        if _read_rdev(entry / "dev") == rdev:
            return entry.name
    return None


def block_family(rdev: Rdev, sys_block_dir: Path) -> dict[Rdev, Member]:
    """The device and its partitions, by major:minor.

    A disk's partitions are the real subdirectories of its sysfs directory that have a ``dev``
    file (``bdi``, ``device`` and friends are symlinks). A partition has none, so a partition
    given alone is checked alone: what happens on the rest of its disk is not our business.
    """
    name = find_block_name(rdev, sys_block_dir)
    if name is None:
        return {rdev: Member("", f"device {rdev[0]}:{rdev[1]}", None)}
    disk_dir = sys_block_dir / name
    family = {rdev: Member(name, f"/dev/{name}", disk_dir)}
    try:
        children = sorted(disk_dir.iterdir())
    except OSError:
        children = []
    for child in children:
        if child.is_symlink() or not child.is_dir():
            continue
        part = _read_rdev(child / "dev")
        if part is not None:
            family[part] = Member(child.name, f"/dev/{child.name}", child)
    return family


def _holders(member: Member) -> list[str]:
    """Device-mapper or md devices stacked on a member (LVM, RAID, dm-crypt)."""
    if member.sysfs_dir is None:
        return []
    try:
        return sorted(entry.name for entry in (member.sysfs_dir / "holders").iterdir())
    except OSError:
        return []


def _by_device_path(path: str, family: dict[Rdev, Member]) -> Member | None:
    """The member a /dev path names (kernel names only: /dev/root or a symlink will not match)."""
    if not path.startswith("/dev/"):
        return None
    base = path.rsplit("/", 1)[-1]
    return next((m for m in family.values() if m.name and m.name == base), None)


def mounted_users(
    rdev: Rdev, mountinfo_text: str, sys_block_dir: Path, swaps_text: str, *,
    writers_only: bool = False,
) -> list[str]:
    """Describe everything that uses the device ``rdev`` or one of its partitions.

    Returns clauses such as "/dev/loop0p1 is mounted on /mnt/x"; empty when the device is free.
    A mount is matched by major:minor (field 3 of mountinfo) and, because btrfs reports an
    anonymous 0:N there, also by its source device; swap by its /dev path. ``writers_only``
    (for reading a disk, not writing it) leaves out read-only mounts and swap, which change
    nothing a copy would keep.
    """
    family = block_family(rdev, sys_block_dir)
    users: list[str] = []

    for line in mountinfo_text.splitlines():
        # id parent major:minor root mountpoint options [optional...] - fstype source superopts
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        after = fields[fields.index("-", 6) + 1 :]
        mount_rdev = _parse_rdev(fields[2])
        member = family.get(mount_rdev) if mount_rdev is not None else None
        if member is None and len(after) > 1:
            member = _by_device_path(_unescape(after[1]), family)
        if member is None:
            continue
        if writers_only and "ro" in fields[5].split(","):
            continue
        read_write = " read-write" if writers_only else ""
        clause = f"{member.label} is mounted{read_write} on {_unescape(fields[4])}"
        if clause not in users:  # bind mounts repeat the same pair
            users.append(clause)

    for line in [] if writers_only else swaps_text.splitlines()[1:]:  # a header, then swaps
        fields = line.split()
        member = _by_device_path(_unescape(fields[0]), family) if fields else None
        if member is not None:
            users.append(f"{member.label} is used as swap")

    for member in family.values():
        users.extend(
            f"{member.label} is held by /dev/{holder} (LVM, RAID or encryption)"
            for holder in _holders(member)
        )
    return users


def read_mounted_users(rdev: Rdev, *, mountinfo: str = "/proc/self/mountinfo",
                       sys_block: str = "/sys/class/block", swaps: str = "/proc/swaps",
                       writers_only: bool = False) -> list[str]:
    """``mounted_users`` on the live files; a missing /proc/swaps means no swap support."""
    mountinfo_text = Path(mountinfo).read_text()
    try:
        swaps_text = Path(swaps).read_text()
    except FileNotFoundError:
        swaps_text = ""
    return mounted_users(rdev, mountinfo_text, Path(sys_block), swaps_text,
                         writers_only=writers_only)


def loop_devices_backed_by(path: str, sys_block_dir: Path = Path("/sys/class/block")
                           ) -> list[Rdev]:
    """The loop devices whose backing file is ``path`` (a disk image attached with losetup:
    mounting one of them changes the file)."""
    target = str(Path(path).resolve())
    found = []
    try:
        entries = sorted(sys_block_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        rdev = _read_rdev(entry / "dev")
        if backing == target and rdev is not None:
            found.append(rdev)
    return found
