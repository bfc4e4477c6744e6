"""The end-to-end check, read back from the disk while the transfer runs, so the end of a
transfer waits for its last blocks alone.

``BlockChecks``: with a used-block map, each used block is checked against its manifest digest
as it reaches the disk. The end then reads back only the blocks not checked yet (resumed from a
journal, or found wrong: those are fetched again as before).

``HashAhead``: without a used-block map the receiver proves its copy by the image's SHA-256
over every byte. Waiting for the last block and then reading the whole disk back would add a
full disk read to the end of every transfer (minutes on a large disk). Instead the digest
follows the transfer: whenever the blocks from where it stands onwards are on the disk, it
reads them back (from the disk, not the cache: ``Target.hash_range``) and moves on. Blocks
arrive nearly in order, so at the end only the last few remain to be read.

Reads run in a worker thread of their own, one block or run at a time; everything else (which
blocks are on disk or checked, how far it got) is the trio thread's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from .target import Target

RUN_BLOCKS = 8  # blocks read back per step: big enough to stream, small enough to follow


class HashAhead:
    def __init__(self, target: Target, nblocks: int, block_size: int) -> None:
        self.target = target
        self.nblocks = nblocks
        self.block_size = block_size
        self._on_disk = bytearray(nblocks)
        self.hashed = 0  # blocks below this are in the digest
        self._digest = hashlib.sha256()

    def stored(self, index: int) -> None:
        """Block ``index`` is on the disk (written, resumed or compared)."""
        self._on_disk[index] = 1

    def next_run(self) -> int:
        """How many blocks from ``hashed`` on to read back now: a run of RUN_BLOCKS on the
        disk (fewer at the end of the image); 0 while one of them is still missing."""
        end = min(self.nblocks, self.hashed + RUN_BLOCKS)
        on_disk = self._on_disk
        for index in range(self.hashed, end):
            if not on_disk[index]:
                return 0
        return end - self.hashed

    def hash_run(self, count: int) -> None:
        """Worker thread: read ``count`` blocks from ``hashed`` on back into the digest."""
        start = self.hashed * self.block_size
        end = min(self.target.image_size, (self.hashed + count) * self.block_size)
        self.target.hash_range(self._digest, start, end - start)

    def advance(self, count: int) -> None:
        """Trio thread, after ``hash_run(count)``: those blocks are in the digest."""
        self.hashed += count

    @property
    def complete(self) -> bool:
        return self.hashed >= self.nblocks

    def digest(self) -> bytes:
        assert self.complete, "the digest is asked for before every block was read back"
        return self._digest.digest()


class BlockChecks:
    """Which used blocks were read back from the disk and matched their manifest digest."""

    def __init__(self, target: Target, nblocks: int, block_size: int) -> None:
        self.target = target
        self.block_size = block_size
        self._checked = bytearray(nblocks)
        self.checked_bytes = 0
        self.pending = 0  # checks running or queued

    def check(self, offset: int, length: int, digest: bytes) -> bool:
        """Worker thread: whether the block at ``offset`` reads back as ``digest``."""
        hasher = hashlib.sha256()
        self.target.hash_range(hasher, offset, length)
        return hasher.digest() == digest

    def passed(self, index: int, length: int) -> None:
        """Trio thread: block ``index`` (``length`` bytes) read back right."""
        if not self._checked[index]:
            self._checked[index] = 1
            self.checked_bytes += length

    def unchecked(self, blocks: Iterable[tuple[int, int, bytes]]
                  ) -> Iterator[tuple[int, int, bytes]]:
        """The ``(offset, length, sha256)`` blocks still to read back at the end."""
        checked, size = self._checked, self.block_size
        return (b for b in blocks if not checked[b[0] // size])
