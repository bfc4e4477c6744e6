"""The image being served: a regular file or a block device, read block by block.

Never loaded whole (images are 20-500 GB): worker threads read one block at a time with
``os.pread`` and encode it with their own zstd compressor (a shared one is not thread-safe).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from disk.allocation import DiskUse
from disk.extents import Extents
from disk.imagefile import ImageFormatError, PreparedImage, is_prepared_image
from disk.resize import required_size
from disk.sourceread import unreadable_bytes
from protocol.blockcodec import BlockEncoder, BlockKind
from protocol.manifest import FREE_BLOCK_DIGEST, Manifest
from protocol.usedmap import runs_of


class BlockSource(Protocol):
    """What the sender daemon reads blocks from (a raw image or disk, or a prepared image)."""

    def read_encoded(self, index: int) -> tuple[BlockKind, bytes]: ...


class ImageError(Exception):
    """The image cannot be served: one plain sentence for the admin."""


class ImageSource:
    def __init__(self, path: str, block_size: int) -> None:
        self.path = path
        self.block_size = block_size
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ImageError(f"{path} does not exist: check the image path.") from None
        except IsADirectoryError:
            raise ImageError(f"{path} is a directory: give an image file or a disk.") from None
        except PermissionError:
            raise ImageError(f"cannot read {path}: permission denied (run as root?).") from None
        except OSError as exc:
            raise ImageError(f"cannot open {path}: {exc.strerror}.") from None
        st = os.fstat(self._fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(self._fd)
            raise ImageError(f"{path} is a directory: give an image file or a disk.")
        self.is_device = stat.S_ISBLK(st.st_mode)
        self.size = os.lseek(self._fd, 0, os.SEEK_END) if self.is_device else st.st_size
        self._key = f"{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"
        self._local = threading.local()
        # With a map of what the filesystems use (skip_free), only those blocks are sent,
        # their unused bytes as zeros; None: every block as it is.
        self.used: Extents | None = None
        self.used_runs: tuple[tuple[int, int], ...] | None = None
        self.min_size = 0

    def skip_free(self, use: DiskUse) -> None:
        """Serve only what the partition table and the filesystems use (``disk_use``)."""
        self.used = use.used
        flags = bytearray(-(-self.size // self.block_size))
        for index in self.used.blocks(self.block_size):
            flags[index] = 1
        self.used_runs = tuple(runs_of(flags))
        self.min_size = required_size(use.table, self.used.end)

    def read_encoded(self, index: int) -> tuple[BlockKind, bytes]:
        """Read and encode block ``index`` (thread-safe: call it from worker threads)."""
        offset = index * self.block_size
        length = min(self.block_size, self.size - offset)
        raw = self._read_block(offset, length)
        encoder = getattr(self._local, "encoder", None)
        if encoder is None:
            encoder = self._local.encoder = BlockEncoder()
        return encoder.encode(raw)

    def _read_block(self, offset: int, length: int) -> bytes:
        """A block as it is served: with a map, its bytes no filesystem uses set to zero."""
        if self.used is None:
            return self._read_exactly(offset, length)
        return self.used.read_masked(self._read_exactly, offset, length)

    def _read_exactly(self, offset: int, length: int) -> bytes:
        try:
            data = os.pread(self._fd, length, offset)
            while len(data) < length:  # short reads happen on some devices
                more = os.pread(self._fd, length - len(data), offset + len(data))
                if not more:
                    raise ImageError(
                        f"{self.path} shrank while it was being served: keep it unchanged "
                        "until the session ends."
                    )
                data += more
        except OSError as exc:
            raise ImageError(unreadable(self.path, offset, exc)) from exc
        return data

    def sha256(self, cache_dir: Path | None, progress: Callable[[int], None]) -> bytes:
        """The whole image's SHA-256 (what receivers verify at the end); ``hash`` also gives
        every block's."""
        return self.hash(cache_dir, progress)[0]

    def hash(self, cache_dir: Path | None, progress: Callable[[int], None]
             ) -> tuple[bytes, bytes]:
        """The whole image's SHA-256 and every raw block's (the manifest), in one read,
        cached for regular files by identity and mtime (hashing 500 GB takes minutes; a disk
        device is always hashed, it has no mtime to trust)."""
        if self.used is not None:
            return self._hash_used(progress)
        nblocks = -(-self.size // self.block_size)
        name = f"{self._key}-{self.block_size}"
        cached = cache_dir / name if cache_dir is not None and not self.is_device else None
        if cached is not None:
            with contextlib.suppress(OSError, ValueError):
                data = cached.read_bytes()
                if len(data) == 32 * (1 + nblocks):
                    return data[:32], data[32:]
        whole = hashlib.sha256()
        blocks = bytearray()
        buf = bytearray(self.block_size)
        view = memoryview(buf)
        done = 0
        while done < self.size:
            want = min(self.block_size, self.size - done)
            got = 0
            while got < want:  # one block, however the device cuts its reads
                try:
                    n = os.preadv(self._fd, [view[got:want]], done + got)
                except OSError as exc:
                    raise ImageError(unreadable(self.path, done + got, exc)) from None
                if n <= 0:
                    raise ImageError(f"{self.path} shrank while it was being hashed.")
                got += n
            whole.update(view[:want])
            blocks += hashlib.sha256(view[:want]).digest()
            done += want
            progress(done)
        result = whole.digest(), bytes(blocks)
        if cached is not None:
            with contextlib.suppress(OSError):
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(result[0] + result[1])
        return result

    def _hash_used(self, progress: Callable[[int], None]) -> tuple[bytes, bytes]:
        """With a map: each used block's SHA-256 as served, FREE_BLOCK_DIGEST for the others;
        the image is then known by its manifest's root (returned first)."""
        assert self.used_runs is not None
        digests = bytearray()
        position = done = 0
        for start, end in self.used_runs:
            digests += FREE_BLOCK_DIGEST * (start - position)
            for index in range(start, end):
                offset = index * self.block_size
                length = min(self.block_size, self.size - offset)
                digests += hashlib.sha256(self._read_block(offset, length)).digest()
                done += length
                progress(done)
            position = end
        digests += FREE_BLOCK_DIGEST * (-(-self.size // self.block_size) - position)
        return Manifest(bytes(digests)).root, bytes(digests)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def unreadable(path: str, offset: int, exc: OSError) -> str:
    """The sentence for an image that fails to read while it is served."""
    if exc.errno == errno.EIO:
        return (f"reading {path} at byte {offset} failed with an I/O error: the disk holding "
                "the image is failing; copy the image to another disk and serve it again.")
    return f"reading {path} at byte {offset} failed ({exc.strerror}): check the image's disk."


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mcastd" / "sha256"


class PreparedSource:
    """A prepared image (``mcastd capture``) being served: each used block's stored payload
    is sent as it is, no recompression, and nothing is hashed at start (the header's manifest
    root, checked against the index, is the image's identity)."""

    def __init__(self, image: PreparedImage) -> None:
        self.image = image
        self.path = image.path
        self.size = image.header.disk_size
        self.block_size = image.header.block_size
        try:
            self.manifest = image.manifest()
        except ImageFormatError as exc:
            raise ImageError(str(exc)) from None
        self.used_runs = image.used_runs()
        self.min_size = image.min_size
        self.unreadable = unreadable_bytes(image.meta)

    def read_encoded(self, index: int) -> tuple[BlockKind, bytes]:
        entry = self.image.entry(index)
        if entry is None:
            raise ImageError(f"block {index} is not in {self.path}: the sender asked for a free "
                             "block (a bug).")
        try:
            return entry.kind, self.image.read_payload(entry)
        except ImageFormatError as exc:
            raise ImageError(str(exc)) from None
        except OSError as exc:
            raise ImageError(unreadable(self.path, entry.offset, exc)) from None

    def close(self) -> None:
        self.image.close()


def open_image(path: str, block_size: int) -> ImageSource | PreparedSource:
    """A prepared image if ``path`` is one (by its magic), else the file or disk as it is."""
    if not is_prepared_image(path):
        return ImageSource(path, block_size)
    try:
        return PreparedSource(PreparedImage(path))
    except ImageFormatError as exc:
        raise ImageError(str(exc)) from None
