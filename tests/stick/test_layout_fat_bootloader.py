"""The stick's disk image with the real tools, in tmp_path: the GPT (sgdisk), its FAT32 ESP
(mkfs.fat, mtools), grub.cfg, and GRUB's BIOS boot sector and core placed by hand as
grub-bios-setup would place them (grub-mkimage)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from stick.build import fat
from stick.build.bootloader import EFI_DIR, bios_core, embed_bios_core, grub_cfg
from stick.build.layout import ESP_START, MIB, SECTOR, Partition, bootable_disk
from stick.build.tools import GRUB_PC_DIR, BuildError


def needs(*tools: str) -> pytest.MarkDecorator:
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (apt-get "
                              "install gdisk dosfstools mtools grub-common grub-pc-bin)")


def sgdisk(*args: str | Path) -> str:
    return subprocess.run(["sgdisk", *map(str, args)], capture_output=True, text=True,
                          check=True).stdout


def table(image: Path) -> list[tuple[int, int, int, str, str]]:
    """(number, first sector, last sector, type code, name) of each partition, as sgdisk
    reads the image back."""
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+(\w{4})\s+(.*)$", sgdisk("-p", image),
                      re.MULTILINE)
    return [(int(n), int(a), int(b), code, name.strip()) for n, a, b, code, name in rows]


@needs("sgdisk")
def test_the_stick_disk_is_a_valid_gpt_with_bios_boot_and_an_esp(tmp_path: Path) -> None:
    image = tmp_path / "stick.img"
    parts = bootable_disk(image, 256 * MIB, esp_name="MCASTD")
    assert image.stat().st_size == 256 * MIB
    assert "No problems found" in sgdisk("-v", image)
    last = (256 * MIB - 34 * SECTOR) // MIB * MIB
    assert parts == [Partition(1, 1 * MIB, 1 * MIB), Partition(2, 2 * MIB, last - 2 * MIB)]
    assert table(image) == [
        (1, 2048, 4095, "EF02", "BIOS boot"),
        (2, 4096, last // SECTOR - 1, "EF00", "MCASTD"),
    ]


@needs("sgdisk")
def test_with_an_esp_size_a_third_partition_takes_the_rest(tmp_path: Path) -> None:
    image = tmp_path / "golden.img"
    image.write_bytes(b"old data" * 1000)  # replaced, not kept
    parts = bootable_disk(image, 128 * MIB, esp_size=40 * MIB, extra_type="8300",
                          extra_name="root")
    assert image.stat().st_size == 128 * MIB
    assert "No problems found" in sgdisk("-v", image)
    assert parts == [Partition(1, MIB, MIB), Partition(2, ESP_START, 40 * MIB),
                     Partition(3, ESP_START + 40 * MIB, 127 * MIB - ESP_START - 40 * MIB)]
    assert [(n, first, last, code, name) for n, first, last, code, name in table(image)] == [
        (1, 2048, 4095, "EF02", "BIOS boot"),
        (2, 4096, (ESP_START + 40 * MIB) // SECTOR - 1, "EF00", "ESP"),
        (3, (ESP_START + 40 * MIB) // SECTOR, 127 * MIB // SECTOR - 1, "8300", "root"),
    ]


@pytest.fixture(scope="module")
def empty_stick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Partition]:
    """A 64 MiB stick image with an empty FAT32 ESP of volume id 1A2B-3C4D, made once (sgdisk
    takes a second)."""
    image = tmp_path_factory.mktemp("stick") / "stick.img"
    esp = bootable_disk(image, 64 * MIB, esp_name="MCASTD")[1]
    fat.format_fat32(image, esp.start, esp.size, "MCASTD", 0x1A2B3C4D)
    return image, esp


@pytest.fixture
def stick(tmp_path: Path, empty_stick: tuple[Path, Partition]) -> tuple[Path, Partition]:
    """This test's own copy of the empty stick."""
    image, esp = empty_stick
    subprocess.run(["cp", "--sparse=always", str(image), str(tmp_path / "stick.img")],
                   check=True)
    return tmp_path / "stick.img", esp


@needs("sgdisk", "mkfs.fat", "mcopy", "mtype", "mdir", "mmd", "blkid")
def test_the_esp_is_fat32_with_the_label_and_volume_id(stick: tuple[Path, Partition]) -> None:
    image, esp = stick
    probe = subprocess.run(["blkid", "-p", "-O", str(esp.start), str(image)],
                           capture_output=True, text=True, check=True).stdout
    assert 'TYPE="vfat"' in probe and 'VERSION="FAT32"' in probe
    assert 'LABEL="MCASTD"' in probe and 'UUID="1A2B-3C4D"' in probe


@needs("sgdisk", "mkfs.fat", "mcopy", "mtype", "mdir", "mmd")
def test_files_go_in_and_come_out_byte_for_byte(tmp_path: Path,
                                                stick: tuple[Path, Partition]) -> None:
    image, esp = stick
    at = esp.start
    fat.mkdir(image, at, "EFI", EFI_DIR, "mcastd", "post-deploy")
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, every byte value
    fat.put(image, at, kernel, "mcastd/vmlinuz")
    fat.put_bytes(image, at, b"line one\r\nline two\r\n", "README.txt", tmp_path / "scratch")
    fat.put_bytes(image, at, b'session = "x"\n', "mcastd.conf", tmp_path / "scratch")
    fat.put_bytes(image, at, b'session = "y"\n', "mcastd.conf", tmp_path / "scratch")  # again
    fat.put_bytes(image, at, b"#!/bin/sh\n", "post-deploy/10-linux-hostname", tmp_path / "s")
    assert fat.get(image, at, "mcastd/vmlinuz") == kernel.read_bytes()
    assert fat.get(image, at, "README.txt") == b"line one\r\nline two\r\n"
    assert fat.get(image, at, "mcastd.conf") == b'session = "y"\n'
    assert fat.listing(image, at, "") == ["EFI", "README.txt", "mcastd", "mcastd.conf",
                                          "post-deploy"]
    assert fat.listing(image, at, "EFI") == ["BOOT"]
    assert fat.listing(image, at, "post-deploy") == ["10-linux-hostname"]
    assert fat.listing(image, at, "journals") == []  # not there: nothing in it
    # The file system is still clean for the laptop's kernel.
    subprocess.run(["dd", f"if={image}", f"of={tmp_path / 'esp.img'}", "bs=1M",
                    f"skip={at // MIB}", f"count={esp.size // MIB}", "status=none"], check=True)
    if shutil.which("fsck.fat"):
        check = subprocess.run(["fsck.fat", "-n", str(tmp_path / "esp.img")],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout


@needs("sgdisk", "mkfs.fat", "mtype")
def test_reading_a_missing_file_is_one_sentence(stick: tuple[Path, Partition]) -> None:
    image, esp = stick
    with pytest.raises(BuildError, match=r"^cannot read reports/x\.json from the stick: mcopy "
                                         r"failed \(.+\)\.$"):
        fat.get(image, esp.start, "reports/x.json")


def test_grub_cfg_searches_the_volume_and_boots_each_entry() -> None:
    text = grub_cfg("1A2B-3C4D", [("mcastd: receive the image onto this laptop", ""),
                                  ("mcastd: capture this laptop (golden)",
                                   "mcastd.mode=capture")], timeout=10)
    lines = text.splitlines()
    assert "search --no-floppy --fs-uuid --set=root 1A2B-3C4D" in lines
    assert "set timeout=10" in lines and "set default=0" in lines
    assert "serial --unit=0 --speed=115200" in lines
    assert [line for line in lines if line.startswith("menuentry")] == [
        'menuentry "mcastd: receive the image onto this laptop" {',
        'menuentry "mcastd: capture this laptop (golden)" {']
    kernels = [line.strip() for line in lines if line.strip().startswith("linux ")]
    assert kernels == [
        "linux /mcastd/vmlinuz quiet loglevel=3 console=ttyS0,115200 console=tty1 "
        "mcastd.stick=1A2B-3C4D",
        "linux /mcastd/vmlinuz quiet loglevel=3 console=ttyS0,115200 console=tty1 "
        "mcastd.stick=1A2B-3C4D mcastd.mode=capture"]
    assert lines.count("    initrd /mcastd/initrd.img") == 2
    assert text.count("{") == text.count("}") == 2
    assert text.endswith("}\n")


def test_grub_cfg_of_a_plain_stick_boots_at_once() -> None:
    text = grub_cfg("0000-0001", [("mcastd: receive", "")], timeout=0)
    assert "set timeout=0\n" in text
    assert text.count("menuentry") == 1


@needs("sgdisk", "grub-mkimage")
@pytest.mark.skipif(not (GRUB_PC_DIR / "boot.img").exists(),
                    reason=f"needs GRUB's BIOS images in {GRUB_PC_DIR} (apt-get install "
                    "grub-pc-bin)")
def test_bios_boot_sector_and_core_point_at_each_other(tmp_path: Path) -> None:
    image = tmp_path / "stick.img"
    bios_boot = bootable_disk(image, 64 * MIB)[0]
    mbr_before = image.read_bytes()[:SECTOR]
    core = tmp_path / "core.img"
    bios_core(core, "1A2B-3C4D", tmp_path)
    assert (tmp_path / "early.cfg").read_text() == (  # built into core.img: finds the ESP
        "search --no-floppy --fs-uuid --set=root 1A2B-3C4D\nset prefix=($root)/EFI/BOOT\n")
    core_bytes = core.read_bytes()
    sectors = -(-len(core_bytes) // SECTOR)
    embed_bios_core(image, core, bios_boot)

    disk = image.read_bytes()
    mbr = disk[:SECTOR]
    first_lba = bios_boot.start // SECTOR
    assert struct.unpack_from("<Q", mbr, 0x5C) == (first_lba,)  # boot.img → core's 1st sector
    assert mbr[0x64] == 0xFF and mbr[0x66:0x68] == b"\x90\x90"
    boot_img = (GRUB_PC_DIR / "boot.img").read_bytes()
    assert mbr[:0x5C] == boot_img[:0x5C]  # GRUB's code, unchanged
    assert mbr[0x1BE:0x200] == mbr_before[0x1BE:0x200]  # the protective MBR's table
    assert mbr[0x1FE:0x200] == b"\x55\xaa"
    assert mbr[0x1B8:0x1BE] == mbr_before[0x1B8:0x1BE]  # disk signature

    placed = disk[bios_boot.start:bios_boot.start + sectors * SECTOR]
    start, length, _segment = struct.unpack_from("<QHH", placed, 0x1F4)
    assert (start, length) == (first_lba + 1, sectors - 1)  # the rest of core.img
    assert placed[:0x1F4] == core_bytes[:0x1F4]
    assert placed[SECTOR:len(core_bytes)] == core_bytes[SECTOR:]
    assert "No problems found" in sgdisk("-v", image)  # the GPT is untouched


def test_a_core_too_large_for_the_bios_boot_partition_is_refused(tmp_path: Path) -> None:
    core = tmp_path / "core.img"
    core.write_bytes(bytes(MIB + 1))
    with pytest.raises(BuildError, match=r"does not fit the BIOS boot partition\.$"):
        embed_bios_core(tmp_path / "stick.img", core, Partition(1, MIB, MIB))
