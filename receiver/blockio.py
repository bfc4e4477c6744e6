"""Linux calls Python's os module lacks: punch a hole in a file, zero or discard a block-device
range, ask a block device its logical block size."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

# <linux/fs.h>: _IO(0x12, 127). _IO carries no size or direction bits, so it is the same
# number on every architecture (unlike BLKGETSIZE64; device_size uses lseek instead).
BLKZEROOUT = 0x127F
# _IO(0x12, 119): tell the device a range is free (TRIM); _IO(0x12, 104): logical block size.
BLKDISCARD = 0x1277
BLKSSZGET = 0x1268
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


def discard(fd: int, offset: int, length: int) -> None:
    """Tell the block device a range holds nothing (TRIM/UNMAP; a loop device punches a hole in
    its backing file). Offset and length must be multiples of the logical block size."""
    fcntl.ioctl(fd, BLKDISCARD, struct.pack("=QQ", offset, length))


def logical_block_size(fd: int) -> int:
    """The smallest unit the block device open on ``fd`` addresses (512 or 4096)."""
    size: int = struct.unpack("=i", fcntl.ioctl(fd, BLKSSZGET, struct.pack("=i", 0)))[0]
    return size


def drop_cache(fd: int, offset: int, length: int) -> None:
    """Forget clean cached pages: the next read comes from the disk, not from memory."""
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
