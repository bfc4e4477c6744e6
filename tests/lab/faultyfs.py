"""A test-only FUSE filesystem holding one file, ``disk``, backed by a real file, that fails
where it is told to: I/O errors on writes or reads of chosen byte ranges, or other bytes than
were written on reads of others. It speaks the kernel's FUSE protocol on /dev/fuse itself (no
library: none is packaged here), in a thread of the test, and is unmounted afterwards.

    with FaultyDisk(backing, size, eio_write=[(20 << 20, 21 << 20)]) as disk:
        ... disk.path is the file; a loop device over it is a disk that fails there ...
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import struct
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, ...
OUT_HEADER = struct.Struct("<IiQ")  # len, error (negative errno), unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
INIT_IN = struct.Struct("<IIII")
INIT_OUT = struct.Struct("<IIIIHHIIHHI7I")
READ_IN = struct.Struct("<QQIIQII")
WRITE_IN = struct.Struct("<QQIIQII")
KSTATFS = struct.Struct("<QQQQQIIII6I")
LOOKUP, FORGET, GETATTR, SETATTR, OPEN, READ, WRITE, STATFS, RELEASE, FSYNC = (
    1, 2, 3, 4, 14, 15, 16, 17, 18, 20)
FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR, ACCESS, INTERRUPT, DESTROY, BATCH_FORGET = (
    25, 26, 27, 28, 29, 34, 36, 38, 42)
NO_REPLY = {FORGET, INTERRUPT, BATCH_FORGET}
ROOT, FILE = 1, 2
NAME = b"disk"
MAX_WRITE = 128 * 1024
MS_NOSUID, MS_NODEV = 2, 4
FOPEN_DIRECT_IO = 1

Ranges = Sequence[tuple[int, int]]


def _hits(ranges: Ranges, offset: int, length: int) -> bool:
    return any(offset < end and offset + length > start for start, end in ranges)


class FaultyDisk:
    def __init__(self, backing: Path, size: int, *, eio_write: Ranges = (),
                 eio_read: Ranges = (), lie_read: Ranges = ()) -> None:
        self.backing = backing
        self.size = size
        self.eio_write, self.eio_read, self.lie_read = eio_write, eio_read, lie_read
        self.mountpoint = Path(tempfile.mkdtemp(prefix="mcastd-faultyfs-"))
        self.path = self.mountpoint / NAME.decode()
        self.errors = 0  # faults served
        self._fd = -1
        self._file = -1
        self._thread: threading.Thread | None = None

    # --- mounting ---------------------------------------------------------------------------

    def __enter__(self) -> FaultyDisk:
        with open(self.backing, "ab") as f:
            f.truncate(self.size)
        self._file = os.open(self.backing, os.O_RDWR)
        self._fd = os.open("/dev/fuse", os.O_RDWR)
        libc = ctypes.CDLL(None, use_errno=True)
        options = f"fd={self._fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if libc.mount(b"faultyfs", str(self.mountpoint).encode(), b"fuse.faultyfs",
                      MS_NOSUID | MS_NODEV, options) != 0:
            code = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(code, f"mounting the faulty disk failed: {os.strerror(code)}")
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        subprocess.run(["umount", "-l", str(self.mountpoint)], check=False,
                       capture_output=True)
        if self._thread is not None:
            self._thread.join(timeout=10)
        for fd in (self._fd, self._file):
            if fd >= 0:
                os.close(fd)
        self.mountpoint.rmdir()

    # --- serving ----------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                request = os.read(self._fd, MAX_WRITE + 4096)
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                return  # ENODEV: unmounted
            length, opcode, unique, node, *_ = IN_HEADER.unpack_from(request)
            body = request[IN_HEADER.size : length]
            if opcode in NO_REPLY:
                continue
            try:
                reply = self._handle(opcode, node, body)
                error = 0
            except OSError as exc:
                reply, error = b"", -(exc.errno or errno.EIO)
            with contextlib.suppress(OSError):  # (the request was interrupted meanwhile)
                os.write(self._fd, OUT_HEADER.pack(OUT_HEADER.size + len(reply), error, unique)
                         + reply)
            if opcode == DESTROY:
                return

    def _attr(self, node: int) -> bytes:
        if node == ROOT:
            return ATTR.pack(ROOT, 0, 0, 0, 0, 0, 0, 0, 0, stat.S_IFDIR | 0o755, 2, 0, 0, 0,
                             4096, 0)
        return ATTR.pack(FILE, self.size, self.size // 512, 0, 0, 0, 0, 0, 0,
                         stat.S_IFREG | 0o644, 1, 0, 0, 0, 4096, 0)

    def _handle(self, opcode: int, node: int, body: bytes) -> bytes:
        if opcode == INIT:
            major, minor, readahead, _flags = INIT_IN.unpack_from(body)
            return INIT_OUT.pack(7, min(minor, 31), readahead, 0, 16, 12, MAX_WRITE, 1,
                                 MAX_WRITE // 4096, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        if opcode == LOOKUP:
            if node != ROOT or body.rstrip(b"\0") != NAME:
                raise OSError(errno.ENOENT, "no such file")
            return struct.pack("<QQQQII", FILE, 0, 1, 1, 0, 0) + self._attr(FILE)
        if opcode in (GETATTR, SETATTR):
            return struct.pack("<QII", 1, 0, 0) + self._attr(node)
        if opcode == OPEN:
            # FOPEN_DIRECT_IO: no page cache in between, so every read of the file is ours to
            # answer, also one that follows a write of the same bytes.
            return struct.pack("<QII", 0, FOPEN_DIRECT_IO, 0)
        if opcode == OPENDIR:
            return struct.pack("<QII", 0, 0, 0)
        if opcode == READ:
            _fh, offset, size, *_ = READ_IN.unpack_from(body)
            size = max(0, min(size, self.size - offset))
            if _hits(self.eio_read, offset, size):
                self.errors += 1
                raise OSError(errno.EIO, "a bad sector")
            data = os.pread(self._file, size, offset)
            if _hits(self.lie_read, offset, size):
                self.errors += 1
                data = bytes(b ^ 0x5A for b in data)
            return data
        if opcode == WRITE:
            _fh, offset, size, *_ = WRITE_IN.unpack_from(body)
            if _hits(self.eio_write, offset, size):
                self.errors += 1
                raise OSError(errno.EIO, "a bad sector")
            os.pwrite(self._file, body[WRITE_IN.size : WRITE_IN.size + size], offset)
            return struct.pack("<II", size, 0)
        if opcode == STATFS:
            return KSTATFS.pack(self.size // 4096, 0, 0, 2, 0, 4096, 255, 4096, 0,
                                0, 0, 0, 0, 0, 0)
        if opcode == FSYNC:
            os.fsync(self._file)
            return b""
        if opcode in (RELEASE, RELEASEDIR, FLUSH, ACCESS, DESTROY):
            return b""
        if opcode == READDIR:
            return b""  # (nobody lists it)
        raise OSError(errno.ENOSYS, "not supported")
