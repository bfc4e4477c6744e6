"""A hostile host for the simulator: it hears the ANNOUNCE and, before the real sender's first
pass reaches each block, sends a complete forged version of it with the session's id, every
group's source symbols, encoded exactly as ours (so even the block's own xxh3 check passes).
Only the signed manifest can tell it from the real block. Bounded: ``ROUNDS`` forgeries.

With ``manifest=True`` it also forges the manifest: right away, before the sender's chunks, it
sends every chunk of a manifest of its own forged blocks, once with a proof from a Merkle tree
of its own (consistent, but ending in its root, not the signed one) and once with garbage.
"""

from __future__ import annotations

import random

from protocol.blockcodec import BlockEncoder
from protocol.config import Addr
from protocol.errors import BadPacket
from protocol.layout import block_count, block_layout, raw_block_length
from protocol.manifest import DIGEST_SIZE, Manifest, block_digest
from protocol.wire import Announce, ManifestChunk, data_header, decode_control_untrusted

from .hostile import HostileHost

FORGE_DELAY = 0.002  # seconds after the ANNOUNCE
# The forged chunks go at once: the sender sends its first chunk as soon as the last laptop
# joined, about a round trip after that ANNOUNCE. A moment is still needed for the laptops
# that heard the same ANNOUNCE to join the data group.
CHUNK_DELAY = 0.00005
ROUNDS = 3  # forgeries of the whole image, one per ANNOUNCE heard
MAX_GARBAGE_PROOF = 8  # hashes in a garbage proof at most


class Forger(HostileHost):
    """Sends a forged copy of every block (and with ``manifest``, of the manifest)."""

    def __init__(self, seed: int, max_blocks: int = 64, manifest: bool = False) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        self._max_blocks = max_blocks
        self._manifest = manifest
        self._forgery: list[tuple[bytes, Addr]] = []
        self._chunks: list[tuple[bytes, Addr]] = []
        self._chunks_due: float | None = None
        self.forged_datagrams = 0  # forged data symbols sent
        self.forged_chunks = 0  # forged manifest chunks sent
        self._rounds = 0

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        try:
            msg = decode_control_untrusted(data)
        except BadPacket:
            return
        if not isinstance(msg, Announce) or self._due is not None or self._rounds >= ROUNDS:
            return
        self._rounds += 1  # again at the next ANNOUNCEs: laptops that missed one join late
        group = (msg.data_host, msg.data_port)
        encoder = BlockEncoder()
        nblocks = min(block_count(msg.image_size, msg.block_size), self._max_blocks)
        digests = []
        for index in range(nblocks):
            length = raw_block_length(index, msg.image_size, msg.block_size)
            raw = self._rng.randbytes(length)
            digests.append(block_digest(raw))
            kind, payload = encoder.encode(raw)
            lay = block_layout(len(payload), msg.symbol_size)
            size = lay.symbol_size
            for i in range(lay.source_count):  # as the sender's first pass cuts them
                header = data_header(0, kind, msg.session_id, index, i % lay.group_count,
                                     i // lay.group_count, len(payload), 0)
                self._forgery.append((header + payload[i * size : (i + 1) * size], group))
        # A moment later, once the laptops that heard the same ANNOUNCE joined the group.
        self._due = now + FORGE_DELAY
        if self._manifest:
            self._chunks = [(chunk, group) for chunk in self._forge_manifest(msg, digests)]
            self._chunks_due = now + CHUNK_DELAY

    def _forge_manifest(self, msg: Announce, digests: list[bytes]) -> list[bytes]:
        """Every chunk of a manifest of our blocks (random digests past ``max_blocks``), for
        the session's id and shape, each with our own tree's proof and with garbage."""
        rng = self._rng
        missing = block_count(msg.image_size, msg.block_size) - len(digests)
        ours = Manifest(b"".join(digests) + rng.randbytes(DIGEST_SIZE * missing))
        chunks = []
        for index in range(ours.nchunks):
            garbage = [rng.randbytes(DIGEST_SIZE)
                       for _ in range(rng.randint(1, MAX_GARBAGE_PROOF))]
            for proof in (ours.proof(index), garbage):
                chunks.append(ManifestChunk(msg.session_id, index, ours.chunk(index),
                                            proof).encode())
        return chunks

    def handle_timer(self, now: float) -> None:
        if self._chunks_due is not None and now >= self._chunks_due:
            self._chunks_due = None
            self._out.extend(self._chunks)
            self.forged_chunks += len(self._chunks)
            self._chunks = []
        if self._due is not None and now >= self._due:
            self._due = None
            self._out.extend(self._forgery)
            self.forged_datagrams += len(self._forgery)
            self._forgery = []

    def get_timer(self) -> float | None:
        return min((t for t in (self._chunks_due, self._due) if t is not None), default=None)
