"""What a failing target says: each way a disk can fail mid-way, told apart by its errno and
named in one sentence with the operation, the byte offset, what it means and what to do.

An admin reads it from the laptop's screen or the sender's summary and swaps the right part:
a disk that ended before the image is too small, but one that refuses space in the middle of
itself is thin-provisioned or failing, and one that vanished needs its cable, not a new disk.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from driver.units import format_bytes

# The device is gone: unplugged, dropped off its bus, or its driver gave up on it.
VANISHED = frozenset({errno.ENODEV, errno.ENXIO, errno.ENOMEDIUM, errno.ESHUTDOWN,
                      errno.ENOTCONN})
# Writes refused on a descriptor opened for writing: the medium became read-only.
READ_ONLY = frozenset({errno.EROFS, errno.EPERM, errno.EACCES})


@dataclass(frozen=True)
class Disk:
    """The target, as a fault's sentence describes it."""

    path: str
    is_block_device: bool
    size: int | None  # a block device's size in bytes (None: a file)
    image_size: int


def fault_sentence(disk: Disk, exc: OSError, operation: str, at: int | None,
                   written: int, size_now: int | None = None) -> str:
    """One sentence for ``exc`` raised while ``operation`` ("writing", "reading back", ...)
    ``disk`` at byte ``at`` (None: no one offset), ``written`` bytes of the image stored.
    ``size_now``: a block device's size asked again after the error; a removed disk's is 0
    (the kernel empties it when the device goes), whatever errno the write got."""
    path, image = disk.path, format_bytes(disk.image_size)
    where = "" if at is None else f" at byte {at}"
    code = exc.errno
    if disk.is_block_device and size_now == 0:
        code = errno.ENODEV
    if code == errno.ENOSPC and disk.is_block_device:
        if disk.size is not None and (at is None or at < disk.size):
            return (f"{path} refused to store more{where} for want of space although it holds "
                    f"{format_bytes(disk.size)} and the image only {image}: a thin-provisioned "
                    "device out of backing space, or a failing disk; check or replace it.")
        return f"{path} ended{where} before the {image} image did: use a larger disk."
    progress = f"after writing {format_bytes(written)} of {image}"
    if code == errno.ENOSPC:
        return f"the disk holding {path} is full {progress}: free space or choose another target."
    if code == errno.EDQUOT:
        return (f"the disk quota for {path} is used up {progress}: free space or choose "
                "another target.")
    if code == errno.EFBIG:
        return (f"the file system holding {path} cannot hold a {image} file: choose a target "
                "on another file system.")
    if code == errno.EIO:
        return (f"{operation} {path}{where} failed with an input/output error: the disk is "
                "failing; replace it.")
    if code in VANISHED:
        return (f"{path} vanished{where} while {operation}: the disk was "
                "removed or dropped off its bus; reconnect it and start mcast-receive again to "
                "receive the rest.")
    if code in READ_ONLY and operation != "reading back":
        return (f"{path} refused {operation}{where}: it is read-only (a write-protect switch, "
                "or the kernel set it read-only after errors); make it writable or use another "
                "disk.")
    return (f"{operation} {path}{where} failed ({exc.strerror}): check the disk or choose "
            "another target.")
