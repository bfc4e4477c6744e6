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

from protocol.blockcodec import BlockEncoder, BlockKind

_HASH_CHUNK = 4 << 20


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

    def read_encoded(self, index: int) -> tuple[BlockKind, bytes]:
        """Read and encode block ``index`` (thread-safe: call it from worker threads)."""
        offset = index * self.block_size
        length = min(self.block_size, self.size - offset)
        raw = self._read_exactly(offset, length)
        encoder = getattr(self._local, "encoder", None)
        if encoder is None:
            encoder = self._local.encoder = BlockEncoder()
        return encoder.encode(raw)

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
            if exc.errno == errno.EIO:
                raise ImageError(f"reading {self.path} failed with an I/O error.") from exc
            raise
        return data

    def sha256(self, cache_dir: Path | None, progress: Callable[[int], None]) -> bytes:
        """The whole image's SHA-256, cached for regular files by identity and mtime (hashing
        500 GB takes minutes; a disk device is always hashed, it has no mtime to trust)."""
        cached = cache_dir / self._key if cache_dir is not None and not self.is_device else None
        if cached is not None:
            with contextlib.suppress(OSError, ValueError):
                digest = bytes.fromhex(cached.read_text().strip())
                if len(digest) == 32:
                    return digest
        h = hashlib.sha256()
        buf = bytearray(_HASH_CHUNK)
        view = memoryview(buf)
        done = 0
        while done < self.size:
            n = os.preadv(self._fd, [view[: min(_HASH_CHUNK, self.size - done)]], done)
            if n <= 0:
                raise ImageError(f"{self.path} shrank while it was being hashed.")
            h.update(view[:n])
            done += n
            progress(done)
        digest = h.digest()
        if cached is not None:
            with contextlib.suppress(OSError):
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(digest.hex())
        return digest

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mcastd" / "sha256"
