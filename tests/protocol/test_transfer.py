"""Transfer: one followed session's blocks. Data symbols placed by hand (no sender), what
``place`` asks of the session, blocks handed out with their place on the target, the manifest
gate, the NAK's content and the driver's answers."""

from __future__ import annotations

import hashlib
import random
from collections import deque

import pytest

from protocol.blockcodec import BlockEncoder, BlockKind
from protocol.errors import LocalProtocolError
from protocol.events import BlockReady, Event
from protocol.manifest import Manifest, block_digest
from protocol.receiver_stats import ReceiverStats
from protocol.transfer import AWAITING_CHUNK, FIRST_DATA, NEW_LOSS, Transfer
from protocol.wire import (
    FLAG_REPAIR,
    Announce,
    ManifestChunk,
    data_header,
    decode_data_untrusted,
)

SID = 77
BLOCK = 3000
SYMBOL = 512
RNG = random.Random(3)
# Four blocks: random, zero, random, and a short random last one.
IMAGE = RNG.randbytes(BLOCK) + bytes(BLOCK) + RNG.randbytes(BLOCK) + RNG.randbytes(1000)
DIGESTS = b"".join(block_digest(IMAGE[i : i + BLOCK]) for i in range(0, len(IMAGE), BLOCK))


def announce(manifest: bytes = b"") -> Announce:
    return Announce(SID, "lab", len(IMAGE), hashlib.sha256(IMAGE).digest(), BLOCK, SYMBOL,
                    "239.1.1.1", 9771, "10.0.0.1", 9000, 0.0, manifest=manifest)


def transfer(manifest: bytes = b"", max_pending: int = 128) -> tuple[
    Transfer, ReceiverStats, deque[Event]
]:
    stats, events = ReceiverStats(), deque[Event]()
    return Transfer(announce(manifest), stats, events, max_pending), stats, events


def datagrams(index: int, seq: int = 0, flags: int = 0) -> list[bytes]:
    """Block ``index``'s source symbols as DATA datagrams, numbered from ``seq``."""
    kind, payload = BlockEncoder().encode(IMAGE[index * BLOCK : (index + 1) * BLOCK])
    if kind == BlockKind.ZERO:
        return [data_header(flags, kind, SID, index, 0, 0, 0, seq)]
    count = -(-len(payload) // SYMBOL)
    groups = -(-count // 128)
    return [
        data_header(flags, kind, SID, index, i % groups, i // groups, len(payload), seq + i)
        + payload[i * SYMBOL : (i + 1) * SYMBOL]
        for i in range(count)
    ]


def place(t: Transfer, datagram: bytes, now: float = 0.0) -> int:
    """As the session does: the header unpacked, the datagram handed over."""
    h, _symbol = decode_data_untrusted(datagram)
    return t.place(datagram, now, h.flags | h.kind, h.kind, h.block, h.group, h.esi,
                   h.encoded_length, h.seq)


def place_all(t: Transfer, dgs: list[bytes], now: float = 0.0) -> int:
    asks = 0
    for dg in dgs:
        asks |= place(t, dg, now)
    return asks


def test_a_new_transfer_starts_from_its_announce() -> None:
    t, _stats, _events = transfer()
    assert (t.nblocks, t.blocks_done, t.cursor, t.seq_seen) == (4, 0, 0, -1)
    assert t.first_data_at is None and t.holding and t.sender_key == b""
    assert t.lacks_any(0, 4) and t.missing() == ([], []) and t.chunks_needed() == []


def test_the_first_datagram_asks_for_an_early_report_and_counts_from_its_seq() -> None:
    t, stats, _events = transfer()
    first, second = datagrams(0, seq=100)[:2]
    assert place(t, first, 1.5) == FIRST_DATA
    assert (t.seq_first, t.seq_seen, t.first_data_at) == (100, 100, 1.5)
    assert place(t, second, 1.6) == 0
    assert (t.seq_seen, t.first_data_at, stats.received, stats.data_arrived) == (101, 1.5, 2, 2)


def test_a_sync_before_data_counts_loss_from_after_it() -> None:
    t, _stats, _events = transfer()
    t.sync_seq(41)
    assert (t.seq_first, t.seq_seen) == (42, 41)
    assert place(t, datagrams(0, seq=42)[0]) == 0  # not the first we heard of: no FIRST_DATA
    assert t.first_data_at is None


def test_complete_blocks_are_held_until_released_then_handed_out_with_their_place() -> None:
    t, stats, events = transfer()
    place_all(t, datagrams(3))  # the short last block
    assert stats.received == len(datagrams(3)) and not events
    (held,) = t.release_held()
    assert (held.index, held.offset, held.length, held.digest) == (3, 3 * BLOCK, 1000, b"")
    t.holding = False
    place_all(t, datagrams(1))  # a zero block
    (ready,) = events
    assert isinstance(ready, BlockReady)
    assert (ready.index, ready.offset, ready.length) == (1, BLOCK, BLOCK)
    assert ready.assembly.kind == BlockKind.ZERO


def test_symbols_of_complete_blocks_are_stale_and_duplicates_are_counted() -> None:
    t, stats, _events = transfer()
    dgs = datagrams(0)
    place(t, dgs[0])
    place(t, dgs[0])
    assert (stats.received, stats.duplicates) == (1, 1)
    place_all(t, dgs[1:])
    place(t, dgs[0])
    assert stats.stale == 1


def test_the_cursor_passing_a_block_we_lack_is_new_loss() -> None:
    t, _stats, _events = transfer()
    assert place_all(t, datagrams(0)) == FIRST_DATA  # block 0 complete: nothing lacking
    assert place(t, datagrams(1, seq=9)[0]) & NEW_LOSS == 0  # block 0 is not lacking
    assert place(t, datagrams(3, seq=10)[0]) & NEW_LOSS  # passed block 2: nothing of it
    assert t.cursor == 3
    assert t.missing() == ([], [(2, 3)])
    assert place(t, datagrams(2, flags=FLAG_REPAIR)[0]) == 0  # repairs do not move it
    assert t.advance_cursor(99) and t.cursor == 4  # a SYNC past the end: clamped
    need, whole = t.missing()
    assert [b for b, _counts in need] == [2, 3] and whole == []


def test_a_signed_manifest_holds_blocks_back_until_their_chunk_proves_itself() -> None:
    m = Manifest(DIGESTS)
    t, stats, events = transfer(manifest=m.root)
    t.holding = False
    assert place_all(t, datagrams(0)) & AWAITING_CHUNK
    assert not events and t.awaits_chunks and t.chunks_needed() == [0]
    t.add_chunk(ManifestChunk(SID, 0, block_digest(b"evil") * 4, m.proof(0)))
    assert stats.garbled == 1 and not events  # forged: it does not prove itself
    t.add_chunk(ManifestChunk(SID, 0, m.chunk(0), m.proof(0)))
    (ready,) = events
    assert isinstance(ready, BlockReady) and ready.digest == block_digest(IMAGE[:BLOCK])
    assert not t.awaits_chunks and t.chunks_needed() == []
    assert place_all(t, datagrams(2)) & AWAITING_CHUNK == 0  # its chunk is known by now
    assert [e.index for e in events if isinstance(e, BlockReady)] == [0, 2]


def test_blocks_in_memory_are_bounded() -> None:
    t, stats, _events = transfer(max_pending=2)
    place(t, datagrams(0)[0])
    place(t, datagrams(2)[0])
    place(t, datagrams(3)[0])
    assert stats.overflow == 1
    need, whole = t.missing()  # the cursor passed 0 to 2 (block 3 is not tracked)
    assert [b for b, _ in need] == [0, 2] and whole == [(1, 2)]


def test_store_and_reject_take_only_blocks_handed_out() -> None:
    t, stats, _events = transfer()
    with pytest.raises(LocalProtocolError, match="not handed out"):
        t.store(0)
    place_all(t, datagrams(0) + datagrams(1))
    t.store(0)
    assert t.blocks_done == 1
    assert t.reject(1) == 1 and stats.rejected == 1
    with pytest.raises(LocalProtocolError, match="not handed out"):
        t.reject(1)  # forgotten: asked for again whole
    place_all(t, datagrams(1))
    assert t.reject(1) == 2


def test_resume_takes_blocks_not_yet_complete_and_drops_their_partial_copy() -> None:
    t, stats, _events = transfer()
    place_all(t, datagrams(0))  # complete: being decoded, not taken
    place(t, datagrams(2)[0])  # partial: taken, its copy dropped
    assert t.resume([0, 2, 2, 3, -1, 4, 99]) == 2
    assert t.blocks_done == 2
    place(t, datagrams(2)[1])
    assert stats.stale == 1
    assert not t.lacks_any(2, 4) and t.lacks_any(1, 2)


def test_dropping_what_is_pending_forgets_partial_held_and_awaiting_blocks() -> None:
    t, _stats, events = transfer(manifest=Manifest(DIGESTS).root)
    place_all(t, datagrams(0))  # awaiting its chunk
    place(t, datagrams(2)[0])  # partial
    place(t, datagrams(3)[0])  # partial, and the cursor passes block 2
    assert t.awaits_chunks and [b for b, _ in t.missing()[0]] == [2]
    t.drop_pending()
    assert not t.awaits_chunks and t.release_held() == []
    assert t.missing() == ([], [(1, 2)])  # no partial copy left to report
    assert not events
