"""Reading the golden disk for a capture, and what to do with sectors that cannot be read.

By default a read error stops the capture, naming the unreadable range: a golden disk with bad
sectors should be looked at before thirty laptops get a copy. With ``skip_unreadable`` the
range is read sector by sector instead; what cannot be read is taken as zeros and recorded
(as ddrescue's map does), so the image says exactly which bytes are not the source's.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

SECTOR = 4096  # the step an unreadable range is measured in (a 4Kn sector, eight of 512)
_RANGE_SCAN = 1 << 20  # how far past the first bad sector a stopping capture looks


def unreadable_bytes(meta: dict[str, Any]) -> int:
    """Bytes of the source a --skip-unreadable capture took as zeros (its image's metadata)."""
    return sum(end - start for start, end in meta.get("unreadable", []))


class SourceReadError(Exception):
    """The source cannot be read here (the sentence says where and what to do)."""


class SourceReader:
    """pread of the source that knows about bad sectors; thread-safe."""

    pread = staticmethod(os.pread)  # (a disk with bad sectors, in tests)

    def __init__(self, fd: int, path: str, skip_unreadable: bool) -> None:
        self.fd = fd
        self.path = path
        self.skip_unreadable = skip_unreadable
        self._lock = threading.Lock()
        self._unreadable: list[tuple[int, int]] = []

    @property
    def unreadable(self) -> list[tuple[int, int]]:
        """The [start, end) byte ranges taken as zeros, sorted and merged."""
        with self._lock:
            ranges = sorted(self._unreadable)
        merged: list[tuple[int, int]] = []
        for start, end in ranges:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset``."""
        data = bytearray()
        while len(data) < length:
            at = offset + len(data)
            try:
                more = self.pread(self.fd, length - len(data), at)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                data += self._around_bad(at, offset + length)
                continue
            if not more:
                raise SourceReadError(f"{self.path} ended at byte {at} while it was being read: "
                                      "keep the source unchanged during a capture.")
            data += more
        return bytes(data)

    def _around_bad(self, at: int, end: int) -> bytes:
        """From ``at``, where a read failed: sector by sector up to ``end``, the unreadable
        sectors as zeros (skipping), or the error naming the bad range (stopping)."""
        out = bytearray()
        bad_start: int | None = None
        position = at
        limit = end if self.skip_unreadable else min(end, at + _RANGE_SCAN)
        while position < limit:
            step = min(SECTOR - position % SECTOR, limit - position)
            try:
                piece = self.pread(self.fd, step, position)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                piece = b""
            if len(piece) == step:
                if bad_start is not None and not self.skip_unreadable:
                    break  # the bad range ended here
                if bad_start is not None:
                    self._record(bad_start, position)
                    bad_start = None
                out += piece
            else:
                bad_start = position if bad_start is None else bad_start
                out += bytes(step)
            position += step
        if self.skip_unreadable:
            if bad_start is not None:
                self._record(bad_start, position)
            return bytes(out)
        if bad_start is None:
            return bytes(out)  # it read after all: the error passed
        raise SourceReadError(
            f"{self.path} cannot be read at bytes {bad_start}-{position} (an I/O error: bad "
            "sectors); nothing was captured. Check the disk, or pass --skip-unreadable to "
            "capture it with those bytes as zeros, recorded in the image.")

    def _record(self, start: int, end: int) -> None:
        with self._lock:
            self._unreadable.append((start, end))
