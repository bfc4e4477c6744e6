"""The stick's kernel: Debian's signed kernel package, with only the modules a laptop needs.

The package is fetched with `apt-get download` from this machine's sources and unpacked, never
installed, so the build machine's own kernel does not matter. All of its modules are ~380 MiB;
the drivers below (storage, wired and USB Ethernet, USB, keyboards, the filesystems the hooks
and the stick need) and what they depend on are a few percent of that.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .tools import BuildError, run

# Module directories (under lib/modules/VERSION/kernel/) copied whole, and single modules.
MODULE_DIRS = (
    "drivers/nvme", "drivers/ata", "drivers/scsi", "drivers/mmc", "drivers/usb/host",
    "drivers/usb/storage", "drivers/usb/common", "drivers/usb/core",
    "drivers/net/ethernet/intel/e1000", "drivers/net/ethernet/intel/e1000e",
    "drivers/net/ethernet/intel/igb", "drivers/net/ethernet/intel/igc",
    "drivers/net/ethernet/realtek", "drivers/net/phy", "drivers/net/mdio", "drivers/net/usb",
    "drivers/hid", "drivers/input/keyboard", "drivers/input/serio", "drivers/virtio",
    "drivers/block/virtio_blk.ko", "drivers/block/loop.ko", "drivers/net/virtio_net.ko",
    "drivers/net/net_failover.ko",
    "net/core/failover.ko", "drivers/char/hw_random", "drivers/platform/x86/wmi.ko",
    "fs/fat", "fs/exfat", "fs/efivarfs", "fs/nls", "fs/ext4", "fs/jbd2", "fs/mbcache.ko",
    "fs/fuse", "lib",
    "crypto", "arch/x86/crypto",
)
_SCSI_NOT_NEEDED = re.compile(r"drivers/scsi/(qla|lpfc|bfa|be2iscsi|bnx2|cxgbi|fcoe|mpt3sas|"
                              r"megaraid|aacraid|qedi|qedf|csiostor|hpsa|smartpqi|pm8001|isci|"
                              r"snic|fnic|mpi3mr|elx|aic|arcmsr|esas2r|ibmvscsi|myrb|myrs)")


def kernel_package(cache: Path) -> Path:
    """The current Debian kernel package (linux-image-amd64's dependency), downloaded once."""
    deps = run(["apt-cache", "depends", "linux-image-amd64"], "look up Debian's kernel package")
    names = re.findall(r"Depends: (linux-image-[0-9]\S*)", deps)
    if not names:
        raise BuildError("apt knows no linux-image-amd64 package: add Debian's main archive to "
                         "this machine's apt sources.")
    name = names[0]
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{name}_*.deb"))
    if not found:
        run(["apt-get", "download", name], f"download {name}", cwd=cache)
        found = sorted(cache.glob(f"{name}_*.deb"))
    if not found:
        raise BuildError(f"apt-get download {name} left no package in {cache}.")
    return found[-1]


def unpack(deb: Path, dest: Path) -> None:
    run(["dpkg-deb", "-x", deb, dest], f"unpack {deb.name}")


def kernel_version(unpacked: Path) -> str:
    versions = [p.name for p in (unpacked / "lib/modules").iterdir() if p.is_dir()]
    if len(versions) != 1:
        raise BuildError(f"the kernel package holds {len(versions)} module trees, not one.")
    return versions[0]


def vmlinuz(unpacked: Path, version: str) -> Path:
    return unpacked / "boot" / f"vmlinuz-{version}"


def install_modules(unpacked: Path, version: str, root: Path) -> int:
    """Copy the needed modules (and every module they depend on) into ``root``; run depmod.
    Returns the bytes copied."""
    source = unpacked / "lib/modules" / version
    dest = root / "lib/modules" / version
    if not (source / "modules.dep").exists():  # made at install time, which never happens
        run(["depmod", "-b", unpacked, version], "index the kernel package's modules")
    wanted: set[str] = set()
    for entry in MODULE_DIRS:
        path = source / "kernel" / entry
        if path.is_dir():
            wanted.update(str(p.relative_to(source)) for p in path.rglob("*.ko*"))
        elif path.exists():
            wanted.add(str(path.relative_to(source)))
    wanted = {m for m in wanted if not _SCSI_NOT_NEEDED.search(m)}
    depends = _module_dependencies(source / "modules.dep")
    todo = list(wanted)
    while todo:
        for dep in depends.get(todo.pop(), ()):
            if dep not in wanted:
                wanted.add(dep)
                todo.append(dep)
    copied = 0
    for module in sorted(wanted):
        target = dest / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / module, target)
        copied += target.stat().st_size
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (source / meta).exists():
            shutil.copy2(source / meta, dest / meta)
    run(["depmod", "-b", root, version], "index the stick's kernel modules (depmod)")
    return copied


def _module_dependencies(modules_dep: Path) -> dict[str, list[str]]:
    depends: dict[str, list[str]] = {}
    for line in modules_dep.read_text().splitlines():
        module, _, deps = line.partition(":")
        depends[module] = deps.split()
    return depends

