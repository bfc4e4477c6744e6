"""In-memory drivers: what the daemons do with session events, minus the disk and threads.

The simulator (and protocol tests) run the real sessions through these: the sender encodes
blocks of an image held in memory when asked; the receiver decodes, checks and writes blocks
into a bytearray and hashes it at the end, exactly as the daemon does with a disk.
"""

from __future__ import annotations

import hashlib

from protocol.assembly import decode_block
from protocol.blockcodec import BlockCorrupt, BlockDecoder, BlockEncoder
from protocol.events import BlockReady, BlockWanted, Event, Finished, SessionFound, VerifyImage
from protocol.layout import raw_block_length
from protocol.receiver import ReceiverSession
from protocol.sender import SenderSession


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


class MemorySink:
    """Writes decoded blocks into a bytearray and verifies the whole image at the end."""

    def __init__(self, session: ReceiverSession, keep_image: bool = True) -> None:
        self.session = session
        self.keep_image = keep_image
        self.decoder = BlockDecoder()
        self.image = bytearray()
        self.image_size = 0
        self.block_size = 0
        self.written = 0  # blocks written
        self.rejected = 0  # decoded blocks that failed their digest (never written)
        self.verified_at: float | None = None
        self.finished: Finished | None = None
        self.finished_at: float | None = None

    def on_event(self, event: Event, now: float) -> None:
        session = self.session
        if isinstance(event, BlockReady):
            length = raw_block_length(event.index, self.image_size, self.block_size)
            try:
                raw = decode_block(event.assembly, length, self.decoder)
            except BlockCorrupt:
                self.rejected += 1
                session.block_rejected(event.index)
                return
            start = event.index * self.block_size
            self.image[start : start + length] = raw
            self.written += 1
            session.block_stored(event.index)
        elif isinstance(event, SessionFound):
            assert session.announce is not None
            self.image_size = event.image_size
            self.block_size = session.announce.block_size
            self.image = bytearray(event.image_size if self.keep_image else 0)
        elif isinstance(event, VerifyImage):
            self.verified_at = now
            if self.keep_image:
                digest = hashlib.sha256(self.image).digest()
            else:  # benchmark receivers that only count symbols vouch for the blocks' checks
                assert session.announce is not None
                digest = session.announce.image_sha256
            session.image_verified(digest, now)
        elif isinstance(event, Finished):
            self.finished = event
            self.finished_at = now
