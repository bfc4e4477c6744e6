"""The in-use check on fake sysfs, mountinfo and swaps: this machine's disks are never looked at."""

from __future__ import annotations

from pathlib import Path

import pytest

from disk.mounts import (
    block_family,
    find_block_name,
    loop_devices_backed_by,
    mounted_users,
    read_mounted_users,
)

LOOP0 = (7, 0)
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def mountinfo_line(rdev: str, mountpoint: str, source: str = "/dev/whatever",
                   fstype: str = "ext4", mount_id: int = 36) -> str:
    return (f"{mount_id} 35 {rdev} / {mountpoint} rw,noatime master:1 - {fstype} {source} "
            "rw,errors=continue\n")


BACKGROUND = (
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
    "37 27 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
)


@pytest.fixture
def sys_block(tmp_path: Path) -> Path:
    """A sysfs block tree shaped like the real one: loop0 with partitions p1..p3 (also listed at
    the top level, as symlinks), loop1 without any, symlinked and dev-less noise in loop0."""
    root = tmp_path / "class_block"
    root.mkdir()
    disk = root / "loop0"
    disk.mkdir()
    (disk / "dev").write_text("7:0\n")
    (disk / "queue").mkdir()  # a real subdirectory without a dev file
    for number in (1, 2, 3):
        part = disk / f"loop0p{number}"
        part.mkdir()
        (part / "dev").write_text(f"259:{number}\n")
        (part / "partition").write_text(f"{number}\n")
        (part / "holders").mkdir()
        (root / part.name).symlink_to(part)
    # bdi is a symlink in real sysfs; even if it had a dev file it is no partition
    bdi = tmp_path / "bdi_7_0"
    bdi.mkdir()
    (bdi / "dev").write_text("250:9\n")
    (disk / "bdi").symlink_to(bdi)
    (disk / "holders").mkdir()
    other = root / "loop1"
    other.mkdir()
    (other / "dev").write_text("7:1\n")
    return root


def test_a_free_device_has_no_users(sys_block: Path) -> None:
    assert mounted_users(LOOP0, BACKGROUND, sys_block, SWAPS_HEADER) == []


def test_finds_names_and_partitions(sys_block: Path) -> None:
    assert find_block_name((259, 2), sys_block) == "loop0p2"
    assert find_block_name((8, 0), sys_block) is None
    family = block_family(LOOP0, sys_block)
    assert sorted(m.label for m in family.values()) == [
        "/dev/loop0", "/dev/loop0p1", "/dev/loop0p2", "/dev/loop0p3",
    ]
    assert (250, 9) not in family  # the symlinked bdi directory


def test_the_device_itself_mounted(sys_block: Path) -> None:
    mountinfo = BACKGROUND + mountinfo_line("7:0", "/mnt/a")
    assert mounted_users(LOOP0, mountinfo, sys_block, "") == ["/dev/loop0 is mounted on /mnt/a"]


def test_a_partition_of_the_disk_mounted(sys_block: Path) -> None:
    mountinfo = BACKGROUND + mountinfo_line("259:1", "/mnt/x")
    assert mounted_users(LOOP0, mountinfo, sys_block, "") == ["/dev/loop0p1 is mounted on /mnt/x"]


def test_a_partition_alone_ignores_its_disk_and_siblings(sys_block: Path) -> None:
    mountinfo = BACKGROUND + mountinfo_line("7:0", "/mnt/a") + mountinfo_line("259:1", "/mnt/x")
    assert mounted_users((259, 2), mountinfo, sys_block, "") == []
    assert mounted_users((259, 1), mountinfo, sys_block, "") == [
        "/dev/loop0p1 is mounted on /mnt/x"
    ]


def test_other_devices_do_not_count(sys_block: Path) -> None:
    mountinfo = BACKGROUND + mountinfo_line("7:1", "/mnt/b") + mountinfo_line("8:0", "/mnt/c")
    assert mounted_users(LOOP0, mountinfo, sys_block, "") == []


def test_btrfs_anonymous_device_is_matched_by_source(sys_block: Path) -> None:
    mountinfo = BACKGROUND + mountinfo_line("0:45", "/home", "/dev/loop0p3", "btrfs")
    assert mounted_users(LOOP0, mountinfo, sys_block, "") == ["/dev/loop0p3 is mounted on /home"]


def test_escaped_mount_points_and_bind_mounts(sys_block: Path) -> None:
    mountinfo = (BACKGROUND + mountinfo_line("259:2", r"/mnt/my\040disk", mount_id=40)
                 + mountinfo_line("259:2", r"/mnt/my\040disk", mount_id=41))
    assert mounted_users(LOOP0, mountinfo, sys_block, "") == [
        "/dev/loop0p2 is mounted on /mnt/my disk"
    ]


def test_swap_on_a_partition(sys_block: Path) -> None:
    swaps = (SWAPS_HEADER + "/dev/loop0p2                            partition\t1024\t0\t-2\n"
             "/swapfile                               file\t\t2048\t0\t-3\n")
    assert mounted_users(LOOP0, "", sys_block, swaps) == ["/dev/loop0p2 is used as swap"]
    assert mounted_users((7, 1), "", sys_block, swaps) == []


def test_stacked_devices_hold_a_partition(sys_block: Path) -> None:
    (sys_block / "loop0" / "loop0p3" / "holders" / "dm-0").mkdir()
    assert mounted_users(LOOP0, BACKGROUND, sys_block, SWAPS_HEADER) == [
        "/dev/loop0p3 is held by /dev/dm-0 (LVM, RAID or encryption)"
    ]


def test_a_device_unknown_to_sysfs_is_still_matched_by_number(tmp_path: Path) -> None:
    mountinfo = BACKGROUND + mountinfo_line("7:9", "/x")
    assert mounted_users((7, 9), mountinfo, tmp_path / "missing", "") == [
        "device 7:9 is mounted on /x"
    ]


def test_garbage_lines_are_skipped(sys_block: Path) -> None:
    mountinfo = "\n\nnot a mountinfo line\n1 2 3\n36 35 x:y / /m rw - ext4 /dev/sdz rw\n"
    assert mounted_users(LOOP0, mountinfo, sys_block, "header only\n\n") == []


def test_read_mounted_users_reads_files(sys_block: Path, tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(BACKGROUND + mountinfo_line("259:1", "/mnt/x"))
    users = read_mounted_users(LOOP0, mountinfo=str(mountinfo), sys_block=str(sys_block),
                               swaps=str(tmp_path / "no-swaps"))
    assert users == ["/dev/loop0p1 is mounted on /mnt/x"]


def test_for_reading_only_read_write_mounts_count(tmp_path: Path) -> None:
    sys_block = tmp_path / "sys"
    disk = sys_block / "sdb"
    (disk / "sdb1").mkdir(parents=True)
    (disk / "sdb2").mkdir()
    (disk / "dev").write_text("8:16\n")
    (disk / "sdb1" / "dev").write_text("8:17\n")
    (disk / "sdb2" / "dev").write_text("8:18\n")
    mountinfo = ("36 25 8:17 / /mnt/golden rw,relatime shared:1 - ext4 /dev/sdb1 rw\n"
                 "37 25 8:18 / /mnt/ro ro,relatime shared:2 - ext4 /dev/sdb2 ro\n")
    swaps = "Filename Type Size Used Priority\n/dev/sdb2 partition 100 0 -2\n"
    assert mounted_users((8, 16), mountinfo, sys_block, swaps, writers_only=True) == [
        "/dev/sdb1 is mounted read-write on /mnt/golden"]
    assert len(mounted_users((8, 16), mountinfo, sys_block, swaps)) == 3


def test_the_loop_devices_of_an_image_file_are_found(tmp_path: Path) -> None:
    image = tmp_path / "golden.img"
    image.write_bytes(b"")
    loop = tmp_path / "sys" / "loop3"
    (loop / "loop").mkdir(parents=True)
    (loop / "dev").write_text("7:3\n")
    (loop / "loop" / "backing_file").write_text(f"{image}\n")
    (tmp_path / "sys" / "loop4" / "loop").mkdir(parents=True)
    (tmp_path / "sys" / "loop4" / "dev").write_text("7:4\n")
    (tmp_path / "sys" / "loop4" / "loop" / "backing_file").write_text("/elsewhere.img\n")
    assert loop_devices_backed_by(str(image), tmp_path / "sys") == [(7, 3)]
