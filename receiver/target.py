"""The receiver's TARGET: a regular file or a whole block device that the image is written to.

``check_target`` and ``check_fits`` refuse a bad target before anything is written; ``Target``
writes blocks at their offsets in any order, zeroes or discards ranges, hashes the result and
verifies blocks against their digests. Everything is plain blocking code, meant for worker
threads; writes to different offsets may run at once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from disk.mounts import read_mounted_users
from driver.units import format_bytes
from receiver.blockio import (
    SECTOR,
    UNSUPPORTED,
    device_size,
    drop_cache,
    logical_block_size,
    punch_hole,
    zero_out,
)
from receiver.blockio import discard as discard_device
from receiver.directio import ALIGN, AlignedBuffers, aligned_length, open_direct
from receiver.faults import Disk, fault_sentence

PWrite = Callable[[int, memoryview, int], int]
Discard = Callable[[int, int, int], None]  # (fd, offset, length)

HASH_CHUNK = 4 << 20  # a multiple of directio.ALIGN


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
_ZEROS = memoryview(bytes(1 << 20))  # shared by every thread: it is never written


class TargetError(Exception):
    """One plain sentence saying what is wrong with the target and what to do."""


class _DirectRefused(Exception):
    """The disk rejects O_DIRECT writes after all (an odd alignment): write buffered."""


RESIZE_SETTLE = 0.2  # seconds for a vanishing disk's size to reach its readers
MAX_BAD_LISTED = 256  # blocks that read back wrong, named at most (they are fetched again)


@dataclass(frozen=True)
class VerifyResult:
    """What ``Target.verify_blocks`` found: ``ok`` when every block matched its digest."""

    ok: bool
    verified_bytes: int  # bytes of the blocks that matched
    first_bad: int | None  # offset of the first block that did not
    bad_blocks: int
    bad_offsets: tuple[int, ...] = ()  # the first MAX_BAD_LISTED of them


@dataclass(frozen=True)
class TargetInfo:
    path: str
    is_block_device: bool
    size: int | None  # bytes of a block device; None for a file
    free_bytes: int | None  # room for a file (free space plus what an old file holds)


def _open_error(path: str, exc: OSError) -> TargetError:
    """Why opening ``path`` for writing failed, as advice."""
    reasons = {
        errno.EACCES: "is not writable (permission denied): run as root or choose another target",
        errno.EPERM: "may not be written (operation not permitted): check its attributes "
        "(chattr -i) or choose another target",
        errno.EROFS: "is read-only (a read-only file system or a write-protected medium): "
        "choose another target",
        errno.EBUSY: "is in use by the system (mounted, swap, LVM, RAID or encryption): "
        "release it or choose another target",
        errno.ETXTBSY: "is in use as a running program or a swap file: choose another target",
        errno.EISDIR: "is a directory: name a file inside it or a disk such as /dev/nvme0n1",
        errno.ENOENT: "does not exist: create its directory or choose another target",
        errno.ENOTDIR: "is not a valid path (part of it is not a directory): "
        "choose another target",
    }
    reason = reasons.get(exc.errno or 0)
    if reason is None:
        return TargetError(f"{path} cannot be opened for writing ({exc.strerror}): "
                           "check the disk or choose another target.")
    return TargetError(f"{path} {reason}.")


def _file_room(path: str, old_blocks: int) -> int:
    """Free bytes on the file system holding ``path``, plus an old file's allocation that
    truncation will give back."""
    fs = os.statvfs(path)
    if fs.f_flag & os.ST_RDONLY:
        raise TargetError(f"{path} is on a read-only file system: choose another target.")
    return fs.f_bavail * fs.f_frsize + old_blocks * 512


def _check_new_file(path: str) -> TargetInfo:
    if os.path.islink(path):
        raise TargetError(f"{path} is a symbolic link to nothing: fix it or choose another target.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise TargetError(f"the directory {parent} does not exist: "
                          "create it or choose another target.")
    free = _file_room(parent, 0)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TargetError(f"the directory {parent} is not writable: "
                          "run as root or choose another target.")
    return TargetInfo(path, False, None, free)


def _check_block_device(path: str, rdev: int, mountinfo: str, sys_block: str,
                        swaps: str) -> TargetInfo:
    try:
        users = read_mounted_users((os.major(rdev), os.minor(rdev)), mountinfo=mountinfo,
                                   sys_block=sys_block, swaps=swaps)
    except OSError as exc:
        raise TargetError(f"cannot read {mountinfo} to see whether {path} is mounted "
                          f"({exc.strerror}): is /proc mounted?") from exc
    if users:
        shown = "; ".join(users[:3]) + (f"; and {len(users) - 3} more" if len(users) > 3 else "")
        raise TargetError(f"{path} is in use: {shown}; unmount or release it, "
                          "or choose another target.")
    # O_EXCL on a block device is the kernel's own in-use test: it fails while the device or
    # a partition of it is mounted, swapped on or held by dm/md, whatever /proc says.
    try:
        fd = os.open(path, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(path, exc) from exc
    try:
        size = device_size(fd)
    finally:
        os.close(fd)
    return TargetInfo(path, True, size, None)


def check_target(
    path: str,
    *,
    mountinfo: str = "/proc/self/mountinfo",
    sys_block: str = "/sys/class/block",
    swaps: str = "/proc/swaps",
) -> TargetInfo:
    """Refuse a target that cannot or must not be written; describe one that can.

    Nothing is written: an existing target is opened for writing and closed again, which is
    the only reliable writability test (os.access answers yes to root on almost anything).
    """
    if not path:
        raise TargetError("no target given: name a disk such as /dev/nvme0n1 or an image file.")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _check_new_file(path)
    except OSError as exc:
        raise _open_error(path, exc) from exc
    if stat.S_ISDIR(st.st_mode):
        raise _open_error(path, OSError(errno.EISDIR, os.strerror(errno.EISDIR)))
    if stat.S_ISBLK(st.st_mode):
        return _check_block_device(path, st.st_rdev, mountinfo, sys_block, swaps)
    if not stat.S_ISREG(st.st_mode):
        raise TargetError(f"{path} is neither a regular file nor a block device: "
                          "choose a disk such as /dev/nvme0n1 or an image file.")
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        raise _open_error(path, exc) from exc
    return TargetInfo(path, False, None, _file_room(path, st.st_blocks))


def check_fits(info: TargetInfo, image_size: int) -> None:
    """Refuse a disk smaller than the image. A file is never refused for lack of free space:
    zero blocks become holes, so a mostly empty image fits where its size would not; a disk
    that really fills up is reported by ``Target.write_block``."""
    if info.size is not None and info.size < image_size:
        raise TargetError(f"{info.path} holds {info.size} bytes ({format_bytes(info.size)}) "
                          f"but the image needs {image_size} bytes ({format_bytes(image_size)}):"
                          " use a larger disk.")


class _ReadCounter:
    """Bytes read back so far, told to a progress callback."""

    __slots__ = ("done", "_progress")

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.done = 0
        self._progress = progress

    def add(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done)


class Target:
    """TARGET open for writing: write blocks at offsets, zero or discard ranges, hash the whole
    image or verify chosen blocks.

    A file is truncated to exactly ``image_size`` (old bytes never survive; unwritten ranges
    are holes), unless ``keep``: a resumed run keeps the blocks its journal vouches for. A
    block device is opened O_EXCL, so nothing can mount it while we write.

    ``pwrite`` and ``discard`` (fd, offset, length; default BLKDISCARD on a block device, a
    punched hole in a file) are the system calls, replaceable for tests.
    """

    def __init__(self, info: TargetInfo, image_size: int, *, pwrite: PWrite = os.pwrite,
                 discard: Discard | None = None, keep: bool = False) -> None:
        if image_size < 0:
            raise ValueError(f"image size {image_size} is negative")
        self.info = info
        self.image_size = image_size
        self._pwrite = pwrite
        self._lock = threading.Lock()
        self._written = 0
        self._can_punch = True  # cleared on the first "not supported": then write zeros
        self._can_zero_out = True
        if discard is None:
            discard = discard_device if info.is_block_device else punch_hole
        self._discard = discard
        self._discard_supported: bool | None = None  # None until the first attempt
        self._discarded = 0
        self._block_size = 1  # a file punches any byte range; a device's size is read below
        if info.is_block_device:
            check_fits(info, image_size)
            flags = os.O_RDWR | os.O_EXCL | os.O_CLOEXEC
        else:
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (0 if keep else os.O_TRUNC)
        try:
            self._fd = os.open(info.path, flags, 0o644)
        except OSError as exc:
            raise _open_error(info.path, exc) from exc
        self._direct_fd: int | None = None
        self._use_direct = False  # cleared for good if the disk refuses a direct write
        self._buffers = AlignedBuffers()
        if info.is_block_device:
            try:
                self._block_size = logical_block_size(self._fd)
            except OSError:
                self._block_size = ALIGN  # unknown: any real logical block size divides this
        else:
            try:
                os.ftruncate(self._fd, image_size)
            except OSError as exc:
                self.close()
                if exc.errno in (errno.ETXTBSY, errno.EPERM, errno.EACCES):  # e.g. a swap file
                    raise _open_error(info.path, exc) from exc
                raise self._write_error(exc, None) from exc
        try:
            self._direct_fd = open_direct(info.path)
            self._use_direct = self._direct_fd is not None
        except OSError as exc:
            self.close()
            raise _open_error(info.path, exc) from exc

    @property
    def direct(self) -> bool:
        """Aligned blocks bypass the page cache (O_DIRECT)."""
        return self._use_direct

    @property
    def bytes_written(self) -> int:
        """Image bytes stored so far, data and zero ranges (a rewritten range counts again)."""
        with self._lock:
            return self._written

    @property
    def bytes_discarded(self) -> int:
        """Bytes the target was told are free (after rounding to whole device blocks)."""
        with self._lock:
            return self._discarded

    @property
    def discard_supported(self) -> bool | None:
        """Whether discarding works here; None until it was first tried."""
        return self._discard_supported

    def write_block(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._check_range(offset, len(view))
        direct_fd = self._direct_fd
        head = aligned_length(offset, len(view)) if self._use_direct else 0
        if head:
            buffer = self._buffers.get(head)
            buffer[:] = view[:head]  # O_DIRECT needs an aligned buffer: one memcpy
            try:
                self._write_all(offset, buffer, direct_fd)
            except _DirectRefused:
                self._use_direct = False  # this disk will not: buffered from now on
                head = 0
        self._write_all(offset + head, view[head:])
        self._count(len(view))

    def write_zeros(self, offset: int, length: int) -> None:
        """Make a range read back as zeros, as cheaply as the target allows."""
        self._check_range(offset, length)
        if length:
            if self.info.is_block_device:
                self._zero_device(offset, length)
            else:
                self._zero_file(offset, length)
        self._count(length)

    def discard(self, offset: int, length: int) -> None:
        """The range holds nothing the image needs: let the disk forget it (an SSD then knows
        the blocks are free; a file gives the space back). A device discards only the whole
        logical blocks inside the range, so no byte outside it changes; what a discarded range
        reads back as is the device's business. A target that cannot discard is skipped for
        good after its first refusal. This is not a write: ``bytes_written`` is unchanged."""
        self._check_range(offset, length)
        size = self._block_size
        start = -(-offset // size) * size
        end = (offset + length) // size * size
        if end <= start or self._discard_supported is False:
            return
        try:
            self._discard(self._fd, start, end - start)
        except OSError as exc:
            if exc.errno not in UNSUPPORTED:
                raise self._write_error(exc, start, "discarding") from exc
            self._discard_supported = False  # no TRIM, or no holes under a loop device
            return
        self._discard_supported = True
        with self._lock:
            self._discarded += end - start

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise self._write_error(exc, None, "flushing") from exc

    def sha256(self, progress: Callable[[int], None] | None = None) -> bytes:
        """SHA-256 of the first ``image_size`` bytes as the disk returns them.

        Aligned chunks are read with O_DIRECT where the target allows it. Otherwise cached
        pages are dropped after the flush, so the digest covers what reached the disk, and
        again after each chunk, so hashing does not push everything else out of memory.
        """
        self._start_reading_back()
        digest = hashlib.sha256()
        done = 0
        for chunk in self._read_back(0, self.image_size):
            digest.update(chunk)  # releases the GIL for large buffers
            done += len(chunk)
            if progress is not None:
                progress(done)
        return digest.digest()

    def hash_range(self, digest: Hasher, offset: int, length: int) -> None:
        """Feed ``digest`` the range as the disk returns it, while other blocks are still being
        written (receiver.readback.py): what we wrote there is flushed first and its cached
        copy dropped, so the bytes come from the disk, as ``sha256`` reads them."""
        self._check_range(offset, length)
        self.sync()  # (cheap when the blocks went direct: only their unaligned tails wait)
        self._drop_cache(offset, length)
        for chunk in self._read_back(offset, length):
            digest.update(chunk)

    def verify_blocks(self, blocks: Iterable[tuple[int, int, bytes]],
                      progress: Callable[[int], None] | None = None) -> VerifyResult:
        """Compare each ``(offset, length, sha256)`` block, in increasing offset, with what the
        disk holds there, read past the page cache as ``sha256`` does. ``blocks`` is consumed
        one at a time, so a map of millions of blocks costs no memory; ``progress`` gets the
        bytes read so far."""
        self._start_reading_back()
        verified = bad = 0
        bad_offsets: list[int] = []
        counter = _ReadCounter(progress)
        for offset, length, expected in blocks:
            if self._digest_at(offset, length, counter) == expected:
                verified += length
            else:
                bad += 1
                if len(bad_offsets) < MAX_BAD_LISTED:
                    bad_offsets.append(offset)
        return VerifyResult(bad == 0, verified, bad_offsets[0] if bad_offsets else None, bad,
                            tuple(bad_offsets))

    def matching_blocks(self, blocks: Iterable[tuple[int, int, int, bytes]],
                        progress: Callable[[int], None] | None = None) -> array[int]:
        """The indices of the ``(index, offset, length, sha256)`` blocks the disk already holds
        as they are (a delta receiver's comparison), read as ``verify_blocks`` reads."""
        self._start_reading_back()
        matching = array("Q")
        counter = _ReadCounter(progress)
        for index, offset, length, expected in blocks:
            if self._digest_at(offset, length, counter) == expected:
                matching.append(index)
        return matching

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        direct, self._direct_fd = self._direct_fd, None
        for f in (fd, direct):
            if f is not None and f >= 0:
                os.close(f)

    def __enter__(self) -> Target:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _digest_at(self, offset: int, length: int, counter: _ReadCounter) -> bytes:
        self._check_range(offset, length)
        digest = hashlib.sha256()
        for chunk in self._read_back(offset, length):
            digest.update(chunk)
            counter.add(len(chunk))
        return digest.digest()

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.image_size:
            raise ValueError(f"range {offset}+{length} is outside the {self.image_size}-byte image")

    def _count(self, length: int) -> None:
        with self._lock:
            self._written += length

    def _write_all(self, offset: int, view: memoryview, fd: int | None = None) -> None:
        """Write all of ``view`` through ``fd`` (default: the buffered descriptor)."""
        direct = fd is not None
        done = 0
        while done < len(view):  # pwrite may store fewer bytes than asked
            try:
                n = self._pwrite(self._fd if fd is None else fd, view[done:], offset + done)
            except OSError as exc:
                if direct and exc.errno == errno.EINVAL:
                    raise _DirectRefused from exc
                raise self._write_error(exc, offset + done) from exc
            if direct and n % ALIGN:  # a short direct write leaves an unaligned rest
                done += n
                self._write_all(offset + done, view[done:])
                return
            if n <= 0:  # nothing stored and no error: treat as full rather than spin
                raise self._write_error(OSError(errno.ENOSPC, "no space"), offset + done)
            done += n

    def _write_zero_range(self, offset: int, length: int) -> None:
        end = offset + length
        while offset < end:
            n = min(len(_ZEROS), end - offset)
            self._write_all(offset, _ZEROS[:n])
            offset += n

    def _zero_file(self, offset: int, length: int) -> None:
        # A hole is already there unless this range was written before; punching is cheap
        # either way and keeps a rewritten image sparse.
        if self._can_punch:
            try:
                punch_hole(self._fd, offset, length)
                return
            except OSError as exc:
                if exc.errno not in UNSUPPORTED:
                    raise self._write_error(exc, offset) from exc
                self._can_punch = False
        self._write_zero_range(offset, length)

    def _zero_device(self, offset: int, length: int) -> None:
        # BLKZEROOUT takes whole sectors: the device zeroes those, we write any ragged ends.
        end = offset + length
        head = -(-offset // SECTOR) * SECTOR
        tail = max(head, end // SECTOR * SECTOR)
        if self._can_zero_out and tail > head:
            try:
                zero_out(self._fd, head, tail - head)
            except OSError as exc:
                if exc.errno not in UNSUPPORTED:
                    raise self._write_error(exc, head) from exc
                self._can_zero_out = False
            else:
                self._write_zero_range(offset, head - offset)
                self._write_zero_range(tail, end - tail)
                return
        self._write_zero_range(offset, length)

    def _start_reading_back(self) -> None:
        """Flush what we wrote, then forget the cached copy: reads must come from the disk."""
        self.sync()
        self._drop_cache(0, self.image_size)

    def _read_back(self, offset: int, length: int) -> Iterator[memoryview]:
        """The range as the disk returns it, in chunks valid until the next one is asked for.

        The aligned part of a chunk is read with O_DIRECT where the target allows it, the rest
        through the cache, whose pages are dropped after each chunk: a later read of the same
        range goes to the disk again, and reading does not push everything else out of memory.
        """
        buffer = self._buffers.get(min(HASH_CHUNK, max(length, 1)))
        done, end = offset, offset + length
        while done < end:
            want = min(len(buffer), end - done)
            fd, direct = self._fd, False
            if self._use_direct and self._direct_fd is not None and aligned_length(done, want):
                fd, direct, want = self._direct_fd, True, aligned_length(done, want)
            try:
                got = os.preadv(fd, [buffer[:want]], done)
            except OSError as exc:
                if direct and exc.errno == errno.EINVAL:
                    self._use_direct = False  # an odd disk after all: buffered from now on
                    continue
                raise self._write_error(exc, done, "reading back") from exc
            if got == 0:
                raise TargetError(f"{self.info.path} ends at byte {done}, before the end of "
                                  f"the {format_bytes(self.image_size)} image: was it changed "
                                  "while we wrote? Run again.")
            yield buffer[:got]
            self._drop_cache(done, got)
            done += got

    def _drop_cache(self, offset: int, length: int) -> None:
        with contextlib.suppress(OSError):  # advice only: hashing works through the cache too
            drop_cache(self._fd, offset, length)

    def _write_error(self, exc: OSError, at: int | None,
                     operation: str = "writing") -> TargetError:
        info = self.info
        disk = Disk(info.path, info.is_block_device, info.size, self.image_size)
        size_now = None
        if info.is_block_device and self._fd >= 0:
            try:
                size_now = device_size(self._fd)
                if exc.errno == errno.ENOSPC and size_now == info.size:
                    # A disk being removed refuses writes a moment before it reports its new
                    # size: ask once more before calling a full disk full.
                    time.sleep(RESIZE_SETTLE)
                    size_now = device_size(self._fd)
            except OSError:
                size_now = 0  # it cannot even say its size: gone
        return TargetError(fault_sentence(disk, exc, operation, at, self.bytes_written,
                                          size_now))
