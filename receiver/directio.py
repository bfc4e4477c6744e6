"""O_DIRECT writes and reads of whole aligned ranges.

Image blocks go to the disk without passing through the page cache: the kernel's copy into the
cache was the costliest step of a receiver (measured: 527 MB/s buffered against 1.4 GB/s
direct on the lab machine), a laptop's RAM is not filled with an image nobody reads, and the
final hash reads what the disk holds rather than cached pages. O_DIRECT wants the buffer, the
offset and the length aligned; 4096 suits every logical block size in use. What is not aligned
(a short last block) and targets that refuse O_DIRECT (tmpfs) take the buffered path.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading

ALIGN = 4096


def open_direct(path: str) -> int | None:
    """A second descriptor on ``path`` for O_DIRECT I/O, or None where it is not supported.
    No O_EXCL: the caller's first descriptor holds a disk's exclusive claim."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_RDWR | flag | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise


def aligned_length(offset: int, length: int) -> int:
    """How much of ``length`` bytes at ``offset`` may go through O_DIRECT: the aligned head."""
    if offset % ALIGN:
        return 0
    return length - length % ALIGN


class AlignedBuffers:
    """One page-aligned buffer per thread (mmap memory is page-aligned), grown on demand."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, size: int) -> memoryview:
        buf: mmap.mmap | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            # The old one is freed with its last view (closing it under a view would fail).
            buf = mmap.mmap(-1, max(size, ALIGN))
            self._local.buf = buf
        return memoryview(buf)[:size]
