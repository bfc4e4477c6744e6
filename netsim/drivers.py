"""In-memory drivers: what the daemons do with session events, minus the disk and threads.

The simulator (and protocol tests) run the real sessions through these: the sender encodes
blocks of an image held in memory when asked; the receiver decodes, checks and writes blocks
into a bytearray and hashes it at the end, exactly as the daemon does with a disk.
"""

from __future__ import annotations

import hashlib

from protocol.blockcheck import verified_block
from protocol.blockcodec import BlockCorrupt, BlockDecoder, BlockEncoder
from protocol.events import (
    BlockReady,
    BlockWanted,
    CompareDisk,
    Event,
    Finished,
    FreeBlocks,
    SessionFound,
    VerifyImage,
)
from protocol.receiver import ReceiverSession
from protocol.resume import JOURNAL_FLUSH_INTERVAL
from protocol.sender import SenderSession
from protocol.wire import CAUSE_DISK


class MemorySource:
    """Answers BlockWanted from an image in memory (bytes or a memoryview)."""

    def __init__(self, session: SenderSession, image: bytes | memoryview) -> None:
        self.session = session
        self.image = memoryview(image)
        self.encoder = BlockEncoder()
        self.blocks_encoded = 0
        self.encoded_bytes: dict[int, int] = {}

    def on_event(self, event: Event, now: float) -> None:
        if isinstance(event, BlockWanted):
            size = self.session.config.block_size
            raw = self.image[event.index * size : (event.index + 1) * size]
            kind, payload = self.encoder.encode(raw)
            self.blocks_encoded += 1
            self.encoded_bytes[event.index] = len(payload)
            self.session.feed_block(event.index, kind, payload)


def differing_bytes(written: bytes, truth: bytes) -> int:
    """How many bytes of ``written`` differ from ``truth`` (equal blocks cost one memcmp)."""
    if written == truth:
        return 0
    return sum(a != b for a, b in zip(written, truth, strict=True))


class MemoryJournal:
    """The receiver daemon's journal (receiver/journal.py) in memory: stored blocks become
    durable only at a flush, every ``JOURNAL_FLUSH_INTERVAL`` as the daemon does
    (protocol/resume.py), so a crash loses the ones since the last flush, and they are fetched
    again."""

    def __init__(self) -> None:
        self.image_sha256 = b""
        self.durable: set[int] = set()
        self._pending: set[int] = set()
        self._flushed_at = 0.0

    def open(self, image_sha256: bytes, now: float) -> list[int]:
        """The durable blocks of this image (none if the journal was of another)."""
        if image_sha256 != self.image_sha256:
            self.image_sha256, self.durable, self._pending = image_sha256, set(), set()
        self._flushed_at = now
        return sorted(self.durable)

    def record(self, index: int, now: float) -> None:
        self._pending.add(index)
        if now - self._flushed_at >= JOURNAL_FLUSH_INTERVAL:
            self.flush(now)

    def flush(self, now: float) -> None:
        self.durable |= self._pending
        self._pending.clear()
        self._flushed_at = now

    def crash(self) -> None:
        self._pending.clear()

    def remove(self) -> None:
        self.image_sha256, self.durable, self._pending = b"", set(), set()


class MemorySink:
    """Writes decoded blocks into a bytearray and verifies the whole image at the end. A
    ``disk`` and ``journal`` kept from a crashed run let a restarted receiver resume."""

    def __init__(self, session: ReceiverSession, keep_image: bool = True,
                 disk: bytearray | None = None, journal: MemoryJournal | None = None) -> None:
        self.session = session
        self.keep_image = keep_image
        self.decoder = BlockDecoder()
        self.image = disk if disk is not None else bytearray()
        self.journal = journal
        self.resumed = 0  # blocks taken from the journal
        self.compared = 0  # blocks a delta receiver found on its disk already
        self.fails_at: int | None = None  # a block from which every write fails (a dying disk)
        # block -> how many more times it reads back other bytes than written (a lying disk)
        self.lies: dict[int, int] = {}
        self.truth: bytes | None = None  # the source image, to count wrong bytes written
        self.forged_bytes = 0  # bytes written that differ from ``truth`` (must stay 0)
        self.written = 0  # blocks written
        self.discarded = 0  # bytes of free blocks discarded
        self.rejected = 0  # decoded blocks that failed their digest (never written)
        self.verified_at: float | None = None
        self.finished: Finished | None = None
        self.finished_at: float | None = None

    def on_event(self, event: Event, now: float) -> None:
        session = self.session
        if isinstance(event, BlockReady):
            try:
                checked = verified_block(event, self.decoder)
            except BlockCorrupt:  # damaged, or decodes but is not the signed block: forged
                self.rejected += 1
                session.block_rejected(event.index)
                return
            start, length = event.offset, event.length
            if self.fails_at is not None and event.index >= self.fails_at:
                session.fail(f"writing the disk at byte {start} failed with an input/output "
                             "error: the disk is failing; replace it.", now, CAUSE_DISK)
                return
            raw = bytes(length) if checked is None else checked  # (None: a zero block)
            if self.truth is not None:
                self.forged_bytes += differing_bytes(raw, self.truth[start : start + length])
            self.image[start : start + length] = raw
            self.written += 1
            if self.journal is not None:
                self.journal.record(event.index, now)
            session.block_stored(event.index)
        elif isinstance(event, SessionFound):
            announce = session.announce
            assert announce is not None
            size = event.image_size if self.keep_image else 0
            # The disk keeps what it holds (a delta receiver compares it), cut or grown to size.
            del self.image[size:]
            self.image.extend(bytes(size - len(self.image)))
            stored = self.journal.open(announce.image_sha256, now) if self.journal else []
            if stored:
                self.resumed = session.resume(stored, now)
        elif isinstance(event, CompareDisk):
            matching = [index for index, start, length, digest in session.blocks_to_compare()
                        if hashlib.sha256(self.image[start : start + length]).digest()
                        == digest]
            self.compared = session.compared(matching, now)
        elif isinstance(event, FreeBlocks):
            for start, length in event.ranges:  # as a discarded SSD range reads: zeros
                if self.keep_image:
                    self.image[start : start + length] = bytes(length)
                self.discarded += length
        elif isinstance(event, VerifyImage):
            self.verified_at = now
            announce = session.announce
            assert announce is not None
            if event.per_block:
                self._verify_blocks(now)
                return
            if self.keep_image:
                digest = hashlib.sha256(self.image).digest()
            else:  # benchmark receivers that only count symbols vouch for the blocks' checks
                digest = announce.image_sha256
            session.image_verified(digest, now)
        elif isinstance(event, Finished):
            self.finished = event
            self.finished_at = now
            if self.journal is not None:
                if session.journal_spent:
                    self.journal.remove()  # verified, or the image is wrong: start afresh
                else:
                    self.journal.flush(now)

    def _verify_blocks(self, now: float) -> None:
        """Every used block read back and checked against the manifest, as the daemon does."""
        session = self.session
        announce = session.announce
        assert announce is not None
        verified, bad = 0, []
        for start, length, digest in session.used_blocks():
            index = start // announce.block_size
            lying = self.lies.get(index, 0) > 0
            if lying:
                self.lies[index] -= 1
            if lying or self.keep_image and hashlib.sha256(
                    self.image[start : start + length]).digest() != digest:
                bad.append(index)
            else:
                verified += length
        if bad:
            session.read_back_bad(bad, now)
            return
        session.image_verified(announce.image_sha256, now, verified)
