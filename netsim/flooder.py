"""A hostile host for the simulator: a NAK flood from a receiver that joined the session.

It listens on the discovery and data groups. Once the live session is under way (its first
datagram on the data group: every laptop joined already, so it takes no laptop's place at the
start) it JOINs like a laptop, then floods the sender's control address, ``RATE`` datagrams a
second up to ``MAX_SENT``, with STATUS claiming everything is missing: every group of every
block (need = k), every block whole, every manifest chunk. Otherwise its reports look healthy
(the highest seq it heard, everything arrived), so the sender has no reason to set it aside as
lagging. A quarter of the flood are JOINs and STATUS under made-up ids from its own address
(the sender takes ``MAX_PER_HOST`` receivers from one host), a quarter under the laptops' own
ids (``victims``, as if it had sniffed them: the sender takes those from their address only).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from protocol.config import Addr
from protocol.errors import BadPacket
from protocol.layout import block_count, block_layout
from protocol.manifest import chunk_count
from protocol.wire import (
    DATA_HEADER_SIZE,
    Announce,
    Join,
    PacketType,
    Status,
    Sync,
    decode_control_untrusted,
    decode_data_untrusted,
    packet_type_untrusted,
    session_tag,
)

from .hostile import HostileHost

RATE = 20_000.0  # datagrams per second
TICK = 0.001  # seconds between two bursts
MAX_SENT = 20_000  # a second of flood: longer than the whole transfer takes
FRESH_IDS = 32  # made-up receivers, twice what the sender takes from one host
MAX_CHUNKS = 16  # chunks one STATUS may ask for (protocol/sender.py reads no more)


class Flooder(HostileHost):
    """Joins, then floods the sender with STATUS and JOIN."""

    def __init__(self, seed: int, victims: Sequence[int] = ()) -> None:
        super().__init__()
        rng = random.Random(seed)
        self.receiver_id = rng.getrandbits(63)
        self._fresh = [rng.getrandbits(63) for _ in range(FRESH_IDS)]
        self._victims = list(victims) or [rng.getrandbits(63)]
        self._announce: Announce | None = None
        self._lengths: dict[int, int] = {}  # block -> encoded length, from data headers
        self._seq_seen = -1
        self._arrived = 0
        self.started_at: float | None = None
        self.sent = 0

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        announce = self._announce
        try:
            if packet_type_untrusted(data) == PacketType.DATA:
                header, _ = decode_data_untrusted(data[:DATA_HEADER_SIZE])
                if announce is not None and header.session_tag == session_tag(announce.session_id):
                    self._arrived += 1
                    self._seq_seen = max(self._seq_seen, header.seq)
                    self._lengths[header.block] = header.encoded_length
                    self._begin(now)
                return
            msg = decode_control_untrusted(data)
        except BadPacket:
            return
        if isinstance(msg, Announce) and announce is None:
            self._announce = msg
        elif isinstance(msg, Sync) and announce is not None and (
            msg.session_id == announce.session_id
        ):
            self._seq_seen = max(self._seq_seen, msg.last_seq)
            self._begin(now)

    def _begin(self, now: float) -> None:
        if self.started_at is None:
            self.started_at = self._due = now
            self._send(self._join(self.receiver_id))

    def handle_timer(self, now: float) -> None:
        if self._due is None or now < self._due:
            return
        for _ in range(min(round(RATE * TICK), MAX_SENT - self.sent)):
            slot, turn = self.sent % 8, self.sent // 8
            fresh = self._fresh[turn % FRESH_IDS]
            victim = self._victims[turn % len(self._victims)]
            if slot < 4:
                self._send(self._status(self.receiver_id))
            else:
                rid = fresh if slot < 6 else victim
                self._send(self._join(rid) if slot % 2 == 0 else self._status(rid))
        self._due = now + TICK if self.sent < MAX_SENT else None

    def _send(self, datagram: bytes) -> None:
        assert self._announce is not None
        announce = self._announce
        self._out.append((datagram, (announce.control_host, announce.control_port)))
        self.sent += 1

    def _join(self, receiver_id: int) -> bytes:
        assert self._announce is not None
        return Join(self._announce.session_id, receiver_id, nonce=bytes(16)).encode()

    def _status(self, receiver_id: int) -> bytes:
        """Everything is missing, although everything arrived."""
        announce = self._announce
        assert announce is not None
        nblocks = block_count(announce.image_size, announce.block_size)
        need = [(block, list(block_layout(length, announce.symbol_size).group_k))
                for block, length in sorted(self._lengths.items())]
        return Status(
            announce.session_id, receiver_id, -1.0, 0.0, self._seq_seen, 0, need,
            [(0, nblocks)], self._arrived, 0, 0, self._arrived, 0,
            list(range(min(chunk_count(nblocks), MAX_CHUNKS))),
        ).encode()
