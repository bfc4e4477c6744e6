"""Linux calls Python's os module lacks: punch a hole in a file, zero a block-device range."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

# <linux/fs.h>: _IO(0x12, 127). _IO carries no size or direction bits, so it is the same
# number on every architecture (unlike BLKGETSIZE64; device_size uses lseek instead).
BLKZEROOUT = 0x127F
# <linux/falloc.h>
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
# The kernel's BLKZEROOUT takes 512-byte sectors only.
SECTOR = 512

_libc = ctypes.CDLL(None, use_errno=True)
# fallocate64 takes a 64-bit off_t even on 32-bit glibc; musl only has fallocate (64-bit).
_fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int

# Errors meaning "this file system or device cannot do that": the caller writes zeros instead.
UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS})


def device_size(fd: int) -> int:
    """Bytes in the block device open on ``fd`` (what BLKGETSIZE64 says, on every arch)."""
    return os.lseek(fd, 0, os.SEEK_END)


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a file range: it reads back as zeros and takes no space."""
    if _fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def zero_out(fd: int, offset: int, length: int) -> None:
    """Zero a sector-aligned block-device range in the device (write-zeroes, or the kernel's
    own zero writes when the device has no such command)."""
    fcntl.ioctl(fd, BLKZEROOUT, struct.pack("=QQ", offset, length))


def drop_cache(fd: int, offset: int, length: int) -> None:
    """Forget clean cached pages: the next read comes from the disk, not from memory."""
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
