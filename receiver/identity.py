"""Who this laptop is, for the sender's summary and the boot stick's report: the interface's
MAC, its host name, the machine's serial number (DMI) and the target disk's model and serial,
from sysfs.

Each is optional: a value that cannot be read (product_serial is root's only, a VM has none, a
file target has no disk) is left out rather than guessed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from protocol.wire import HOST_MAX_CHARS


def host_identity(interface: str, target: str, sysfs: Path = Path("/sys"),
                  hostname: str | None = None) -> dict[str, str]:
    """``mac``, ``hostname``, ``dmi_serial``, ``disk_model`` and ``disk_serial``, those that
    are known. ``hostname``: the name to report (default: this system's)."""
    name = socket.gethostname() if hostname is None else hostname
    found = {
        "mac": _read(sysfs / "class/net" / interface / "address"),
        "hostname": clean(name.encode()),
        "dmi_serial": _read(sysfs / "class/dmi/id/product_serial"),
    }
    disk = _disk_dir(target, sysfs)
    if disk is not None:
        found["disk_model"], found["disk_serial"] = disk_model_and_serial(disk)
    return {key: value for key, value in found.items() if value}


def disk_model_and_serial(disk: Path) -> tuple[str, str]:
    """A whole disk's model and serial from its sysfs directory (class/block/X); "" unknown.

    NVMe: the namespace's device is the controller, which has both. SATA/SCSI/USB: model, and
    the serial in VPD page 0x80. eMMC calls its model "name"; virtio-blk keeps its serial on
    the disk itself.
    """
    device = disk / "device"
    model = _read(device / "model") or _read(device / "name")
    serial = (_read(device / "serial") or _vpd_serial(device / "vpd_pg80")
              or _read(disk / "serial"))
    return model, serial


def clean(raw: bytes) -> str:
    """Printable text without the padding sysfs keeps (SCSI pads with spaces, VPD with NULs),
    at most HOST_MAX_CHARS: what the wire takes and a terminal shows safely."""
    text = "".join(c if c.isprintable() else " " for c in raw.decode("utf-8", "replace"))
    return text.strip()[:HOST_MAX_CHARS].strip()


def _read(path: Path) -> str:
    try:
        return clean(path.read_bytes())
    except OSError:  # missing, unreadable (not root), or not a file
        return ""


def _vpd_serial(path: Path) -> str:
    """The unit serial number page: a 4-byte header (page code 0x80, big-endian length)."""
    try:
        page = path.read_bytes()
    except OSError:
        return ""
    if len(page) < 4 or page[1] != 0x80:
        return ""
    return clean(page[4 : 4 + int.from_bytes(page[2:4], "big")])


def _disk_dir(target: str, sysfs: Path) -> Path | None:
    """The target's disk in sysfs: /dev/X (after its symlinks, e.g. /dev/disk/by-id/…) is
    class/block/X, a partition's disk its parent there; None for a file target."""
    real = os.path.realpath(target)
    if os.path.dirname(real) != "/dev":
        return None
    block = sysfs / "class/block" / os.path.basename(real)
    if (block / "partition").exists():
        block = block.resolve().parent
    return block if block.is_dir() else None
