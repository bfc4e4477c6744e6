"""The resume journal: which blocks of the image are durably on the target.

``mcast-receive`` writes blocks out of order; when it is killed or the sender restarts it resumes
from this journal, trusting only blocks whose bit is set. A bit is set only after the target was
synced, so every set bit names a block that is already on disk.

File layout: a fixed header (``_HEADER`` then the target's realpath in UTF-8), zero padding up to
``_ALIGN``, then the bitmap: bit i (byte i >> 3, bit i & 7) set means block i is durable.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

MAGIC = b"MCJ1"
VERSION = 1
# magic, version, image_size, block_size, nblocks, image_sha256, length of the target path.
_HEADER = struct.Struct("<4sHQII32sH")
_ALIGN = 64  # the bitmap starts on this boundary after the header
_MAX_PATH = 0xFFFF  # the path length is stored as a u16


def default_state_dir() -> Path:
    """$MCAST_STATE_DIR if set; /var/lib/mcast-receive when running as root; else
    $XDG_STATE_HOME/mcast-receive (default ~/.local/state/mcast-receive)."""
    explicit = os.environ.get("MCAST_STATE_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/lib/mcast-receive")
    xdg = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative value.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "mcast-receive"


class JournalError(Exception):
    """One plain sentence for the user (e.g. the state directory is not writable)."""


def _state_dir_error(state_dir: Path, exc: OSError) -> JournalError:
    reason = exc.strerror or str(exc)
    return JournalError(
        f"cannot keep the resume journal in {state_dir} ({reason.lower()}): "
        "choose a writable directory with --state-dir"
    )


class Journal:
    """A bitmap of durable blocks, persisted in one file per target."""

    def __init__(self, path: Path, fd: int, nblocks: int, bitmap_offset: int,
                 bits: bytearray) -> None:
        self._path = path
        self._fd = fd
        self._nblocks = nblocks
        self._bitmap_offset = bitmap_offset
        self._bits = bits  # durable blocks only: what the file holds after its last fdatasync
        self._pending: set[int] = set()  # recorded, not yet flushed
        self._lock = threading.Lock()  # guards _pending and _bits; held only briefly
        # Serialises flushes: each writes whole bitmap bytes computed from _bits, so two at once
        # could write a stale byte and clear the other's bits. Separate from _lock so that
        # record() never waits for a sync.
        self._flush_lock = threading.Lock()

    @classmethod
    def open(cls, state_dir: Path, target_path: str, image_sha256: bytes, image_size: int,
             block_size: int) -> Journal:
        """Open the journal of ``target_path``, keeping its blocks only if it is for this image."""
        if len(image_sha256) != 32 or image_size < 0 or block_size <= 0:
            raise ValueError("image_sha256 must be 32 bytes, image_size >= 0, block_size > 0")
        nblocks = -(-image_size // block_size)
        if nblocks > 0xFFFFFFFF:
            raise ValueError(f"{nblocks} blocks do not fit the journal: use larger blocks")
        real = os.path.realpath(target_path)
        real_bytes = os.fsencode(real)
        if len(real_bytes) > _MAX_PATH:
            raise JournalError(f"the target path is too long for the resume journal: {real}")
        header = _HEADER.pack(MAGIC, VERSION, image_size, block_size, nblocks, image_sha256,
                              len(real_bytes)) + real_bytes
        bitmap_offset = -(-len(header) // _ALIGN) * _ALIGN
        bitmap_len = -(-nblocks // 8)
        name = hashlib.sha256(real_bytes).hexdigest()[:16] + ".journal"
        path = state_dir / name
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            bits = _load(path, header, bitmap_offset, bitmap_len, nblocks)
            if bits is not None:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            else:
                bits = bytearray(bitmap_len)
                fd = _create(path, header, bitmap_offset + bitmap_len)
        except OSError as exc:
            raise _state_dir_error(state_dir, exc) from exc
        return cls(path, fd, nblocks, bitmap_offset, bits)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def nblocks(self) -> int:
        return self._nblocks

    def stored(self) -> list[int]:
        """Indexes of the blocks recorded durable, ascending."""
        with self._lock:
            bits = bytes(self._bits)
        return [(j << 3) | k for j, byte in enumerate(bits) if byte for k in range(8)
                if byte >> k & 1]

    def record(self, index: int) -> None:
        """Block ``index`` was written to the target; it becomes durable at the next flush."""
        if not 0 <= index < self._nblocks:
            raise ValueError(f"block {index} is outside the image (0..{self._nblocks - 1})")
        with self._lock:
            # A block rewritten (a repeat or repair) that is already durable needs no new sync.
            if not self._bits[index >> 3] >> (index & 7) & 1:
                self._pending.add(index)

    @property
    def unflushed(self) -> int:
        """How many recorded blocks are not yet durable."""
        with self._lock:
            return len(self._pending)

    def flush(self, sync_target: Callable[[], None]) -> None:
        """Make the recorded blocks durable: sync the target, then set their bits on disk.

        ``sync_target`` runs first so the journal never claims a block before its data is on
        disk. If it or the journal write raises, the blocks stay pending and the error propagates.
        """
        with self._flush_lock:
            with self._lock:
                if not self._pending:
                    return
                if self._fd < 0:
                    raise ValueError("the journal is closed")
                batch = frozenset(self._pending)
                new: dict[int, int] = {}
                for i in batch:
                    j = i >> 3
                    new[j] = new.get(j, self._bits[j]) | 1 << (i & 7)
            sync_target()
            # Only 0 -> 1 bits are written, and every one of them is durable by now, so a torn
            # or partial write (a crash mid-pwrite) still leaves a valid journal on disk.
            for start, run in _runs(new):
                os.pwrite(self._fd, run, self._bitmap_offset + start)
            os.fdatasync(self._fd)
            with self._lock:
                for j, value in new.items():
                    self._bits[j] = value
                # A block recorded again during this flush is the same image data at the same
                # offset, so whatever of it is on disk is already right: dropping it is safe.
                self._pending -= batch

    def remove(self) -> None:
        """Close and delete the journal file (once the image verified); idempotent."""
        self.close()
        self._path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._flush_lock, self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _load(path: Path, header: bytes, bitmap_offset: int, bitmap_len: int,
          nblocks: int) -> bytearray | None:
    """The durable bitmap in ``path`` if it is a whole journal for this header, else None."""
    try:
        if path.stat().st_size != bitmap_offset + bitmap_len:
            return None  # checked first so that a large stray file is not read
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) != bitmap_offset + bitmap_len or not data.startswith(header):
        return None  # another image or target, another format, or a torn creation
    bits = bytearray(data[bitmap_offset:])
    if nblocks % 8 and bits[-1] >> (nblocks % 8):
        return None  # bits past the last block: garbage, so trust nothing
    return bits


def _create(path: Path, header: bytes, size: int) -> int:
    """Write an empty journal beside ``path`` and rename it over ``path``; return its fd.

    Rewriting in place could, after a crash, pair the new header with an old image's bits.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, header, 0)
        os.ftruncate(fd, size)  # the padding and the bitmap read as zeros
        os.fsync(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd


def _runs(new: dict[int, int]) -> list[tuple[int, bytes]]:
    """The changed bitmap bytes as (first byte index, bytes) runs of consecutive indexes."""
    runs: list[tuple[int, bytes]] = []
    start = prev = -2
    run = bytearray()
    for j in sorted(new):
        if j != prev + 1:
            if run:
                runs.append((start, bytes(run)))
            start, run = j, bytearray()
        run.append(new[j])
        prev = j
    if run:
        runs.append((start, bytes(run)))
    return runs
