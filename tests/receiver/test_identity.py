"""host_identity over a fake sysfs laid out as the kernel does: symlinks from class/ into
devices/, an NVMe namespace whose device is its controller, a SATA disk with VPD page 0x80."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from protocol.wire import HOST_MAX_CHARS
from receiver.identity import clean, host_identity

MAC = "52:54:00:12:34:56"


def put(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def link(at: Path, to: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(os.path.relpath(to, at.parent))


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    nic = root / "devices/pci0000:00/0000:00:03.0/net/eth0"
    put(nic / "address", MAC + "\n")
    link(root / "class/net/eth0", nic)
    put(root / "devices/virtual/dmi/id/product_serial", "PF2ABCDE\n")
    link(root / "class/dmi/id", root / "devices/virtual/dmi/id")
    # NVMe: nvme0n1's device is the controller nvme0, which holds model and serial (padded).
    ctrl = root / "devices/pci0000:00/0000:00:04.0/nvme/nvme0"
    put(ctrl / "model", "QEMU NVMe Ctrl                          \n")
    put(ctrl / "serial", "NVME0001            \n")
    namespace = ctrl / "nvme0n1"
    link(namespace / "device", ctrl)
    put(namespace / "size", "1000\n")
    link(root / "class/block/nvme0n1", namespace)
    partition = namespace / "nvme0n1p1"
    put(partition / "partition", "1\n")
    link(root / "class/block/nvme0n1p1", partition)
    # SATA: the model padded with spaces, the serial only in VPD page 0x80 (NUL-padded).
    scsi = root / "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0"
    put(scsi / "model", "Samsung SSD 860 \n")
    serial = b"S3Z9NB0K123456X\0\0"
    put(scsi / "vpd_pg80", bytes([0, 0x80, 0, len(serial)]) + serial)
    link(scsi / "block/sda/device", scsi)
    link(root / "class/block/sda", scsi / "block/sda")
    return root


def test_an_nvme_disk_names_its_controllers_model_and_serial(sysfs: Path) -> None:
    assert host_identity("eth0", "/dev/nvme0n1", sysfs, hostname="") == {
        "mac": MAC, "dmi_serial": "PF2ABCDE", "disk_model": "QEMU NVMe Ctrl",
        "disk_serial": "NVME0001",
    }


def test_a_partition_target_names_its_disk(sysfs: Path) -> None:
    found = host_identity("eth0", "/dev/nvme0n1p1", sysfs, hostname="")
    assert (found["disk_model"], found["disk_serial"]) == ("QEMU NVMe Ctrl", "NVME0001")


def test_a_sata_disk_has_its_serial_in_vpd_page_80(sysfs: Path) -> None:
    found = host_identity("eth0", "/dev/sda", sysfs, hostname="")
    assert (found["disk_model"], found["disk_serial"]) == ("Samsung SSD 860", "S3Z9NB0K123456X")


def test_a_file_target_has_no_disk_fields(sysfs: Path, tmp_path: Path) -> None:
    # Even one named like a disk: only a /dev node is a disk.
    assert host_identity("eth0", str(tmp_path / "sda"), sysfs, hostname="") == {
        "mac": MAC, "dmi_serial": "PF2ABCDE"}


def test_what_cannot_be_read_is_left_out(sysfs: Path) -> None:
    (sysfs / "devices/virtual/dmi/id/product_serial").write_text("\n")  # a VM's: empty
    (sysfs / "devices/pci0000:00/0000:00:04.0/nvme/nvme0/serial").unlink()
    assert host_identity("eth0", "/dev/nvme0n1", sysfs, hostname="") == {
        "mac": MAC, "disk_model": "QEMU NVMe Ctrl"}
    # An unknown interface and disk, no DMI at all: nothing, and no error.
    assert host_identity("wlan9", "/dev/vdz", sysfs / "nowhere", hostname="") == {}


def test_an_unreadable_serial_is_left_out(sysfs: Path) -> None:
    serial = sysfs / "devices/virtual/dmi/id/product_serial"
    serial.unlink()
    serial.mkdir()  # reading it fails as an unreadable file does (root reads anything)
    assert "dmi_serial" not in host_identity("eth0", "/dev/sda", sysfs, hostname="")


def test_values_are_printable_and_short() -> None:
    assert clean(b"  A\x1b[31mB\tC\x00  \n") == "A [31mB C"
    assert clean(b"\xff\xfeX") == "\ufffd\ufffdX"
    long = clean(b"S" * 100)
    assert len(long) == HOST_MAX_CHARS and long.isprintable()


def test_the_host_name_is_told_too_and_cleaned(tmp_path: Path) -> None:
    found = host_identity("eth0", "/dev/vdz", tmp_path, hostname="lab-07\n")
    assert found == {"hostname": "lab-07"}
    assert host_identity("eth0", "/dev/vdz", tmp_path)["hostname"] == socket.gethostname()
