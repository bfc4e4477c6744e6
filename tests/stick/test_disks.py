"""The laptop's disks read from a fake sysfs tree in tmp_path (this machine's disks are never
looked at), and which one a target of auto, /dev/NAME or serial=SERIAL chooses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stick.agent.disks import MIN_SIZE, Disk, choose, list_disks

GiB = 1 << 30
PCI = "pci0000:00"


def add_disk(sysfs: Path, name: str, bus: str, *, size: int = 256 * GiB, model: str = "",
             serial: str = "", serial_at_block: str = "", vpd_pg80: bytes | None = None,
             removable: bool = False, ro: bool = False, card_type: str = "") -> None:
    """sysfs as the kernel lays it out: /sys/block/NAME is a link into /sys/devices, and
    NAME/device links to the device that holds model and serial."""
    device = sysfs / "devices" / bus
    node = device / "block" / name
    node.mkdir(parents=True)
    (node / "size").write_text(f"{size // 512}\n")
    (node / "removable").write_text("1\n" if removable else "0\n")
    (node / "ro").write_text("1\n" if ro else "0\n")
    (node / "device").symlink_to("../..")
    if model:
        (device / "model").write_text(model + "\n")
    if serial:
        (device / "serial").write_text(serial + "\n")
    if serial_at_block:
        (node / "serial").write_text(serial_at_block + "\n")
    if vpd_pg80 is not None:
        (device / "vpd_pg80").write_bytes(vpd_pg80)
    if card_type:
        (device / "type").write_text(card_type + "\n")
    (sysfs / "block").mkdir(exist_ok=True)
    (sysfs / "block" / name).symlink_to(os.path.relpath(node, sysfs / "block"))


def vpd_page(serial: bytes) -> bytes:
    """SCSI VPD page 0x80 as a SATA disk behind libata exposes it: binary, with a header."""
    return bytes([0x00, 0x80]) + len(serial).to_bytes(2, "big") + serial


@pytest.fixture
def laptop(tmp_path: Path) -> Path:
    """A laptop booted from a USB stick (sdb) with one NVMe disk, a SATA disk behind libata,
    a USB disk, an eMMC, an SD card, and every kind of block device that is no disk to write."""
    sysfs = tmp_path / "sys"
    add_disk(sysfs, "nvme0n1", f"{PCI}/0000:00:1d.0/nvme/nvme0",
             model="Samsung SSD 980 1TB     ", serial="S64ANS0T123456")
    add_disk(sysfs, "sda", f"{PCI}/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0",
             model="WDC WD5000LPCX-2", vpd_pg80=vpd_page(b"      WD-WX21A1234567"))
    add_disk(sysfs, "sdb", f"{PCI}/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0",
             size=16 * GiB, model="SanDisk Ultra", vpd_pg80=vpd_page(b"4C530001230101"),
             removable=True)
    add_disk(sysfs, "sdc", f"{PCI}/0000:00:14.0/usb2/2-2/2-2:1.0/host7/target7:0:0/7:0:0:0",
             size=1000 * GiB, model="Elements 25A2", vpd_pg80=vpd_page(b"575834314131"))
    add_disk(sysfs, "mmcblk0", f"{PCI}/0000:00:1a.0/mmc_host/mmc0/mmc0:0001",
             size=32 * GiB, serial="0x1234abcd", card_type="MMC")  # a cheap laptop's eMMC
    add_disk(sysfs, "mmcblk1", f"{PCI}/0000:00:1b.0/mmc_host/mmc1/mmc1:aaaa",
             size=64 * GiB, serial="0x5678", card_type="SD")  # says removable 0, yet is
    add_disk(sysfs, "vda", f"{PCI}/0000:00:02.0/virtio1", size=8 * GiB, serial_at_block="VD1",
             ro=True)
    for name in ("loop0", "sr0", "zram0", "ram0", "dm-0", "md127", "nbd0"):
        add_disk(sysfs, name, f"virtual/{name}")
    add_disk(sysfs, "mmcblk0boot0", f"{PCI}/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/boot0",
             size=4 << 20)
    add_disk(sysfs, "mmcblk0rpmb", f"{PCI}/0000:00:1a.0/mmc_host/mmc0/mmc0:0001/rpmb",
             size=4 << 20)
    return sysfs


def disk(name: str, *, size: int = 256 * GiB, serial: str = "", removable: bool = False,
         usb: bool = False, read_only: bool = False) -> Disk:
    return Disk(name=name, size=size, model="Model", serial=serial or f"SN-{name}",
                removable=removable, usb=usb, read_only=read_only)


NVME, SATA = disk("nvme0n1"), disk("sda")
STICK = disk("sdb", size=16 * GiB, removable=True, usb=True)


def test_every_disk_is_read_with_its_model_serial_and_kind(laptop: Path) -> None:
    by_name = {d.name: d for d in list_disks(laptop)}
    assert sorted(by_name) == ["mmcblk0", "mmcblk1", "nvme0n1", "sda", "sdb", "sdc", "vda"]
    assert by_name["nvme0n1"] == Disk("nvme0n1", 256 * GiB, "Samsung SSD 980 1TB",
                                      "S64ANS0T123456", removable=False, usb=False,
                                      read_only=False)
    assert by_name["sda"].serial == "WD-WX21A1234567"  # from the binary VPD page
    assert by_name["sdb"].usb and by_name["sdb"].removable
    assert by_name["sdc"].usb and not by_name["sdc"].removable
    assert not by_name["mmcblk0"].removable and not by_name["mmcblk0"].usb
    assert by_name["mmcblk1"].removable  # an SD card in a built-in reader
    assert by_name["vda"].serial == "VD1" and by_name["vda"].read_only


def test_loop_cd_ram_and_emmc_boot_areas_are_no_disks(laptop: Path) -> None:
    names = {d.name for d in list_disks(laptop)}
    for name in ("loop0", "sr0", "zram0", "ram0", "dm-0", "md127", "nbd0", "mmcblk0boot0",
                 "mmcblk0rpmb"):
        assert name not in names


def test_a_system_without_block_devices_has_no_disks(tmp_path: Path) -> None:
    assert list_disks(tmp_path) == []


def test_a_disk_describes_itself_for_the_screen(laptop: Path) -> None:
    by_name = {d.name: d for d in list_disks(laptop)}
    assert by_name["nvme0n1"].describe() == (
        "/dev/nvme0n1  256.0 GiB  Samsung SSD 980 1TB  serial S64ANS0T123456  (internal)")
    assert by_name["sdc"].describe().endswith("(USB)")
    assert by_name["vda"].describe().endswith("serial VD1  (internal, read-only)")
    bare = Disk("sdx", 2 * GiB, model="", serial="", removable=True, usb=False,
                read_only=False)
    assert bare.describe() == "/dev/sdx  2.0 GiB  unknown model  serial ?  (removable)"


def test_auto_takes_the_one_internal_disk(laptop: Path) -> None:
    """sda and mmcblk0 are internal disks too; without them the NVMe disk is the only one."""
    disks = [d for d in list_disks(laptop) if d.name not in ("sda", "mmcblk0")]
    choice = choose("auto", disks, stick_disk="sdb")
    assert choice.disk is not None and choice.disk.name == "nvme0n1"
    assert choice.reason == "/dev/nvme0n1, the one internal disk"


def test_auto_with_two_internal_disks_names_both_and_says_how_to_choose(laptop: Path) -> None:
    disks = [d for d in list_disks(laptop) if d.name != "mmcblk0"]
    choice = choose("auto", disks, stick_disk="sdb")
    assert choice.disk is None
    assert choice.reason == (
        "target auto cannot choose: this laptop has 2 internal disks (/dev/nvme0n1, /dev/sda); "
        "set target in mcastd.conf or press a disk's number.")
    three = choose("auto", list_disks(laptop), stick_disk="sdb")
    assert "has 3 internal disks (/dev/mmcblk0, /dev/nvme0n1, /dev/sda)" in three.reason


def test_auto_with_no_internal_disk_says_so() -> None:
    choice = choose("auto", [STICK], stick_disk="sdb")
    assert choice.disk is None
    assert choice.reason == "target auto cannot choose: this laptop has no internal disk."


def test_auto_never_takes_the_stick_even_when_it_looks_internal() -> None:
    stick = disk("sda", size=32 * GiB)  # a stick in a reader that says it is not removable
    choice = choose("auto", [stick, NVME], stick_disk="sda")
    assert choice.disk == NVME
    assert choose("auto", [stick], stick_disk="sda").disk is None


@pytest.mark.parametrize("other", [
    disk("sdc", removable=True), disk("sdc", usb=True), disk("sdc", read_only=True),
    disk("mmcblk1", size=MIN_SIZE - 512), disk("mmcblk1", size=0),
], ids=["removable", "usb", "read-only", "too-small", "empty-card-reader"])
def test_auto_passes_over_removable_usb_read_only_and_tiny_disks(other: Disk) -> None:
    choice = choose("auto", [other, NVME, STICK], stick_disk="sdb")
    assert choice.disk == NVME
    assert choose("auto", [other, STICK], stick_disk="sdb").disk is None


def test_auto_passes_over_a_disk_smaller_than_the_image() -> None:
    small = disk("sda", size=64 * GiB)
    assert choose("auto", [small, NVME], None, image_size=100 * GiB).disk == NVME
    choice = choose("auto", [small], None, image_size=100 * GiB)
    assert choice.disk is None
    assert choice.reason == ("target auto cannot choose: no internal disk holds the "
                             f"{100 * GiB:,}-byte image.")


def test_a_device_named_in_mcastd_conf_is_taken(laptop: Path) -> None:
    disks = list_disks(laptop)
    choice = choose("/dev/sda", disks, stick_disk="sdb")
    assert choice.disk is not None and choice.disk.name == "sda"
    assert choice.reason == "/dev/sda as mcastd.conf says (/dev/sda)"
    usb = choose("/dev/sdc", disks, stick_disk="sdb")  # the admin's word, even for USB
    assert usb.disk is not None and usb.disk.name == "sdc"


def test_a_serial_named_in_mcastd_conf_is_taken(laptop: Path) -> None:
    disks = list_disks(laptop)
    choice = choose("serial=WD-WX21A1234567", disks, stick_disk="sdb")
    assert choice.disk is not None and choice.disk.name == "sda"
    assert choice.reason == "/dev/sda as mcastd.conf says (serial=WD-WX21A1234567)"
    nvme = choose("serial=S64ANS0T123456", disks, stick_disk="sdb").disk
    assert nvme is not None and nvme.name == "nvme0n1"


@pytest.mark.parametrize("target", ["/dev/sdb", "serial=4C530001230101"])
def test_naming_the_stick_is_refused(laptop: Path, target: str) -> None:
    choice = choose(target, list_disks(laptop), stick_disk="sdb")
    assert choice.disk is None
    assert choice.reason == f"mcastd.conf names target {target}, which is this boot stick."


@pytest.mark.parametrize("target", ["/dev/nvme1n1", "serial=NOSUCH", "/dev/sr0"])
def test_naming_a_disk_this_laptop_lacks_is_refused(laptop: Path, target: str) -> None:
    choice = choose(target, list_disks(laptop), stick_disk="sdb")
    assert choice.disk is None
    assert choice.reason == (f"mcastd.conf names target {target}, which this laptop does "
                             "not have.")


def test_naming_a_read_only_disk_is_refused(laptop: Path) -> None:
    choice = choose("/dev/vda", list_disks(laptop), stick_disk="sdb")
    assert choice.disk is None
    assert choice.reason == "target /dev/vda is read-only."


def test_auto_takes_the_one_internal_disk_large_enough_for_the_image() -> None:
    big = Disk("nvme0n1", 512 << 30, "NVMe", "N1", False, False, False)
    small = Disk("mmcblk0", 32 << 30, "eMMC", "E1", False, False, False)
    unsure = choose("auto", [big, small], None)
    assert unsure.disk is None and unsure.several
    assert choose("auto", [big, small], None, image_size=100 << 30).disk == big
    both = choose("auto", [big, small], None, image_size=8 << 30)
    assert both.disk is None and "that hold the image" in both.reason
