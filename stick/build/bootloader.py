"""GRUB for both firmwares, from Debian's packages.

UEFI: Debian's Microsoft-signed shim as the removable path \\EFI\\BOOT\\BOOTX64.EFI, which loads
Debian's signed GRUB next to it, which reads grub.cfg from the same directory and boots Debian's
signed kernel: a Secure Boot laptop boots the stick unchanged.

BIOS: GRUB's boot.img in the MBR and a core.img in the BIOS boot partition, which finds the ESP
by its volume id and reads the same grub.cfg. grub-bios-setup would place them, but it insists
on probing the device of a mounted /boot/grub, which an image being built does not have; so the
two block addresses it fills in are filled in here (`embed_bios_core`), on GRUB's own images.
"""

from __future__ import annotations

import struct
from pathlib import Path

from .layout import SECTOR, Partition
from .tools import GRUB_EFI, GRUB_PC_DIR, MOKMANAGER, SHIM, BuildError, run

EFI_DIR = "EFI/BOOT"
# (file on the ESP, where it comes from)
EFI_FILES = (("BOOTX64.EFI", SHIM), ("grubx64.efi", GRUB_EFI), ("mmx64.efi", MOKMANAGER))
BIOS_MODULES = ("biosdisk", "part_gpt", "part_msdos", "fat", "search", "search_fs_uuid",
                "configfile", "normal", "linux", "echo", "test", "all_video", "serial",
                "terminal", "sleep", "reboot", "halt")
# Offsets in GRUB's i386-pc images (grub/i386/pc/boot.h): boot.img's address of core.img's
# first sector, its boot-drive byte and the jump that trusts a BIOS's drive number; and the
# block list at the end of core.img's first sector, which names the rest of core.img.
_KERNEL_SECTOR = 0x5C
_BOOT_DRIVE = 0x64
_DRIVE_CHECK = 0x66
_MBR_KEEP = 0x1B8  # from here on the MBR keeps its disk signature and partition table
_BLOCKLIST = SECTOR - 12  # struct { u64 start; u16 len; u16 segment; }


def grub_cfg(volume_id: str, entries: list[tuple[str, str]], *, timeout: int) -> str:
    """``entries``: (title, extra kernel arguments); the first is the default."""
    lines = [
        "# mcastd boot stick. The same file serves UEFI and BIOS laptops.",
        "serial --unit=0 --speed=115200",
        "terminal_input console serial",
        "terminal_output console serial",
        f"search --no-floppy --fs-uuid --set=root {volume_id}",
        f"set timeout={timeout}",
        "set default=0",
    ]
    for title, extra in entries:
        lines += [
            f'menuentry "{title}" {{',
            f"    linux /mcastd/vmlinuz quiet loglevel=3 console=ttyS0,115200 console=tty1 "
            f"mcastd.stick={volume_id} {extra}".rstrip(),
            "    initrd /mcastd/initrd.img",
            "}",
        ]
    return "\n".join(lines) + "\n"


def bios_core(out: Path, volume_id: str, scratch: Path) -> None:
    """core.img that finds the ESP by volume id and reads its /EFI/BOOT/grub.cfg."""
    early = scratch / "early.cfg"
    early.write_text(f"search --no-floppy --fs-uuid --set=root {volume_id}\n"
                     f"set prefix=($root)/{EFI_DIR}\n")
    run(["grub-mkimage", "-O", "i386-pc", "-d", GRUB_PC_DIR, "-o", out, "-p", f"/{EFI_DIR}",
         "-c", early, *BIOS_MODULES], "make GRUB's BIOS core image")


def embed_bios_core(image: Path, core: Path, bios_boot: Partition) -> None:
    """Write core.img into the BIOS boot partition and GRUB's boot sector into the MBR."""
    core_bytes = bytearray(core.read_bytes())
    sectors = -(-len(core_bytes) // SECTOR)
    if sectors * SECTOR > bios_boot.size:
        raise BuildError(f"GRUB's core image ({len(core_bytes)} bytes) does not fit the BIOS "
                         "boot partition.")
    first = bios_boot.start // SECTOR
    # start and length of the rest of core.img; the load segment after them stays as it is
    struct.pack_into("<QH", core_bytes, _BLOCKLIST, first + 1, sectors - 1)
    boot = bytearray((GRUB_PC_DIR / "boot.img").read_bytes())
    struct.pack_into("<Q", boot, _KERNEL_SECTOR, first)
    boot[_BOOT_DRIVE] = 0xFF  # use the drive the BIOS booted from
    boot[_DRIVE_CHECK:_DRIVE_CHECK + 2] = b"\x90\x90"  # as grub-bios-setup does for a hard disk
    with image.open("r+b") as disk:
        disk.seek(bios_boot.start)
        disk.write(core_bytes.ljust(sectors * SECTOR, b"\0"))
        disk.seek(0)
        mbr = bytearray(disk.read(SECTOR))
        mbr[:_MBR_KEEP] = boot[:_MBR_KEEP]
        disk.seek(0)
        disk.write(mbr)
