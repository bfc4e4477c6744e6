"""The golden laptop disk of the VM tests: it boots by itself on UEFI and BIOS and says so.

GPT: the BIOS boot partition, an ESP with Debian's signed shim, GRUB and kernel and a small
busybox RAM disk, and an ext4 root holding /etc/hostname. The RAM disk prints one marker line
on the serial console (firmware, hostname from the ext4 root) and powers off: a laptop booted
from its own NVMe disk proves the image arrived whole, and the hostname hook did its work.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from stick.build import fat, initramfs, kernel
from stick.build.bootloader import EFI_DIR, EFI_FILES, bios_core, embed_bios_core
from stick.build.layout import MIB, bootable_disk
from stick.build.system import System
from stick.build.tools import BuildError, run

MARKER = "MCASTD-GOLDEN-BOOTED"
GOLDEN_HOSTNAME = "golden"
_INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo /bin/modprobe > /proc/sys/kernel/modprobe  # the kernel asks for crc32c by alias
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for round in 1 2 3; do
    find /sys/devices -name modalias -exec cat {{}} + 2>/dev/null | sort -u \\
        | xargs modprobe -ab 2>/dev/null
    sleep 1
done
modprobe -a crc32c_generic ext4
mkdir -p /root
name=none
for part in /dev/nvme*n1p3 /dev/sd?3 /dev/vd?3; do  # the disk the firmware booted, any
    if [ -b "$part" ] && mount -t ext4 -o ro "$part" /root; then
        name=$(cat /root/etc/hostname)
        umount /root
        break
    fi
done
firmware=bios
[ -d /sys/firmware/efi ] && firmware=uefi
echo "{MARKER} firmware=$firmware hostname=$name" > /dev/ttyS0
sync
poweroff -f
"""


def busybox_static(cache: Path) -> Path:
    """Debian's busybox-static binary, downloaded and unpacked once."""
    unpacked = cache / "busybox-static"
    binary = unpacked / "bin/busybox"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        debs = cache / "debs"
        debs.mkdir(exist_ok=True)
        if not list(debs.glob("busybox-static_*.deb")):
            run(["apt-get", "download", "busybox-static"], "download busybox-static", cwd=debs)
        kernel.unpack(sorted(debs.glob("busybox-static_*.deb"))[-1], unpacked)
    return binary


def build_golden(out: Path, size: int, system: System, cache: Path) -> None:
    """Write the golden disk image ``out`` of ``size`` bytes (at least 128 MiB)."""
    esp_size = 48 * MIB
    parts = bootable_disk(out, size, esp_size=esp_size, esp_name="EFI system",
                          extra_type="8304", extra_name="root")  # 8304: Linux x86-64 root
    bios_boot, esp, root_part = parts
    volume = secrets.randbits(32)
    volume_id = f"{volume >> 16:04X}-{volume & 0xFFFF:04X}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ramdisk = _golden_ramdisk(work, cache)
        fat.format_fat32(out, esp.start, esp.size, "GOLDEN", volume)
        fat.mkdir(out, esp.start, "EFI", EFI_DIR, "golden")
        for name, source in EFI_FILES:
            fat.put(out, esp.start, source, f"{EFI_DIR}/{name}")
        cfg = work / "grub.cfg"
        cfg.write_text(f"search --no-floppy --fs-uuid --set=root {volume_id}\nset timeout=0\n"
                       "menuentry golden {\n    linux /golden/vmlinuz console=ttyS0,115200 "
                       "quiet\n    initrd /golden/initrd.img\n}\n")
        fat.put(out, esp.start, cfg, f"{EFI_DIR}/grub.cfg")
        fat.put(out, esp.start, system.vmlinuz, "golden/vmlinuz")
        fat.put(out, esp.start, ramdisk, "golden/initrd.img")
        core = work / "core.img"
        bios_core(core, volume_id, work)
        embed_bios_core(out, core, bios_boot)
        tree = work / "rootfs"
        for directory in ("etc", "home/student", "var/log"):
            (tree / directory).mkdir(parents=True)
        (tree / "etc/os-release").write_text('PRETTY_NAME="mcastd golden"\nID=debian\n')
        (tree / "etc/hostname").write_text(f"{GOLDEN_HOSTNAME}\n")
        (tree / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{GOLDEN_HOSTNAME}\n")
        (tree / "home/student/notes.txt").write_text("the golden laptop's files\n" * 200)
        run(["mkfs.ext4", "-q", "-F", "-L", "root", "-E", f"offset={root_part.start},nodiscard",
             "-d", tree, out, f"{root_part.size // 1024}k"], "make the golden ext4 root")


def _golden_ramdisk(work: Path, cache: Path) -> Path:
    root = work / "ramdisk"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox_static(cache), root / "bin/busybox")
    init = root / "init"
    init.write_text(_INIT)
    init.chmod(0o755)
    unpacked = work / "kernel"
    kernel.unpack(kernel.kernel_package(cache / "debs"), unpacked)
    kernel.install_modules(unpacked, kernel.kernel_version(unpacked), root)
    shutil.rmtree(unpacked)
    initramfs.install_init_dirs(root)
    out = work / "golden-initrd.img"
    initramfs.pack(root, out, level=3)
    return out


def check_tools() -> str | None:
    """None when the golden disk can be built here, else why not."""
    for tool in ("mkfs.ext4", "sgdisk", "mcopy", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    try:
        subprocess.run(["apt-cache", "policy", "busybox-static"], capture_output=True,
                       check=True)
    except (OSError, subprocess.CalledProcessError):
        return "apt cannot find busybox-static"
    return None


__all__ = ["MARKER", "GOLDEN_HOSTNAME", "BuildError", "build_golden", "check_tools"]
