"""A hostile host for the simulator: it hears the ANNOUNCE and, before the real sender's first
pass reaches each block, sends a complete forged version of it with the session's id, every
group's source symbols, encoded exactly as ours (so even the block's own xxh3 check passes).
Only the signed manifest can tell it from the real block. Bounded: ``ROUNDS`` forgeries.
"""

from __future__ import annotations

import random

from protocol.blockcodec import BlockEncoder
from protocol.config import Addr
from protocol.errors import BadPacket
from protocol.layout import block_count, block_layout, raw_block_length
from protocol.wire import Announce, data_header, decode_control_untrusted

FORGE_DELAY = 0.002  # seconds after the ANNOUNCE
ROUNDS = 3  # forgeries of the whole image, one per ANNOUNCE heard


class Forger:
    """A sans-I/O session (the simulator drives it like any other) that only sends."""

    def __init__(self, seed: int, max_blocks: int = 64) -> None:
        self._rng = random.Random(seed)
        self._max_blocks = max_blocks
        self._out: list[tuple[bytes, Addr]] = []
        self._forgery: list[tuple[bytes, Addr]] = []
        self._due: float | None = None
        self.forged_datagrams = 0
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
        for index in range(nblocks):
            length = raw_block_length(index, msg.image_size, msg.block_size)
            kind, payload = encoder.encode(self._rng.randbytes(length))
            lay = block_layout(len(payload), msg.symbol_size)
            size = lay.symbol_size
            for i in range(lay.source_count):  # as the sender's first pass cuts them
                header = data_header(0, kind, msg.session_id, index, i % lay.group_count,
                                     i // lay.group_count, len(payload), 0)
                self._forgery.append((header + payload[i * size : (i + 1) * size], group))
        # A moment later, once the laptops that heard the same ANNOUNCE joined the group.
        self._due = now + FORGE_DELAY

    def handle_timer(self, now: float) -> None:
        if self._due is not None and now >= self._due:
            self._due = None
            self._out, self._forgery = self._forgery, []
            self.forged_datagrams += len(self._out)

    def get_timer(self) -> float | None:
        return self._due

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return None
