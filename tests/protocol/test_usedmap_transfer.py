"""The used-block map on both sides: the sender's first pass never sends a free block and
multicasts the map first; a receiver takes the map only whole and matching its signed digest,
marks the free blocks, discards them, never asks for them and finishes on the used ones."""

from __future__ import annotations

import hashlib
import random
from collections import deque

from protocol.config import SenderConfig
from protocol.events import Event, FreeBlocks
from protocol.receiver_stats import ReceiverStats
from protocol.sender import SenderSession
from protocol.transfer import Transfer
from protocol.usedmap import UsedBlocks, encode_runs, map_digest, pieces
from protocol.wire import (
    Announce,
    Join,
    PacketType,
    UsedMapPiece,
    decode_control_untrusted,
    decode_data_untrusted,
    packet_type_untrusted,
)

BLOCK = 4096
NBLOCKS = 10
RUNS = ((0, 2), (5, 8))  # blocks 2-4 and 8-9 are free
SID = 5


def announce(digest: bytes) -> Announce:
    return Announce(SID, "lab", NBLOCKS * BLOCK, bytes(32), BLOCK, 1024, "239.1.1.1", 9771,
                    "10.0.0.1", 9000, 0.0, used_map=digest)


def map_pieces_of(runs: tuple[tuple[int, int], ...]) -> list[UsedMapPiece]:
    chunks = pieces(encode_runs(runs))
    return [UsedMapPiece(SID, i, len(chunks), chunk) for i, chunk in enumerate(chunks)]


def test_a_receiver_takes_the_map_whole_and_marks_the_free_blocks() -> None:
    digest = map_digest(encode_runs(RUNS))
    stats, events = ReceiverStats(), deque[Event]()
    t = Transfer(announce(digest), stats, events, 128)
    assert not t.map_known and t.map_pieces_needed() == [0]
    assert not t.complete
    (piece,) = map_pieces_of(RUNS)
    free = t.add_map_piece(piece)
    assert free == [(2 * BLOCK, 3 * BLOCK), (8 * BLOCK, 2 * BLOCK)]
    assert t.map_known and t.used_count == 5 and t.map_pieces_needed() == []
    assert not t.lacks_any(2, 5)  # free blocks are not missing
    t.cursor = NBLOCKS
    assert t.missing()[1] == [(0, 2), (5, 8)]  # only used blocks are asked for whole
    assert t.add_map_piece(piece) is None  # once known, repeats change nothing


def test_a_map_that_does_not_match_its_signed_digest_is_refused() -> None:
    digest = map_digest(encode_runs(RUNS))
    stats = ReceiverStats()
    t = Transfer(announce(digest), stats, deque(), 128)
    (forged,) = map_pieces_of(((0, NBLOCKS),))  # "nothing is free": would skip nothing
    assert t.add_map_piece(forged) is None
    assert not t.map_known and stats.garbled == 1
    assert t.map_pieces_needed() == [0]  # asked for again
    (real,) = map_pieces_of(RUNS)
    assert t.add_map_piece(real) is not None and t.map_known


def test_a_map_in_several_pieces_is_collected_in_any_order() -> None:
    runs = tuple((i * 3, i * 3 + 1) for i in range(1200))  # 2400 bytes: three pieces
    nblocks = 3600
    digest = map_digest(encode_runs(runs))
    ann = Announce(SID, "lab", nblocks * BLOCK, bytes(32), BLOCK, 1024, "239.1.1.1", 9771,
                   "10.0.0.1", 9000, 0.0, used_map=digest)
    t = Transfer(ann, ReceiverStats(), deque(), 128)
    parts = map_pieces_of(runs)
    assert len(parts) == 3
    assert t.add_map_piece(parts[2]) is None
    assert t.map_pieces_needed() == [0, 1]
    assert t.add_map_piece(parts[0]) is None
    assert t.add_map_piece(parts[1]) is not None
    assert t.used_count == 1200


def test_the_sender_never_sends_a_free_block_and_sends_the_map_first() -> None:
    config = SenderConfig(image_size=NBLOCKS * BLOCK, image_sha256=bytes(32),
                          control_addr=("10.0.0.1", 9000), block_size=BLOCK, symbol_size=1024,
                          used_runs=RUNS, fec_overhead=0.0)
    sender = SenderSession(config, random.Random(1), 0.0)
    sender.handle_timer(0.0)
    sender.receive_datagram(Join(sender.session_id, 42).encode(), ("10.0.0.2", 5000), 0.0)
    wanted, sent_blocks, first = set(), set(), []
    now = 0.0
    for _ in range(2000):
        while (event := sender.next_event()) is not None:
            index = getattr(event, "index", None)
            if index is not None:
                wanted.add(index)
                raw = bytes([index + 1]) * BLOCK
                sender.feed_block(index, 1, hashlib.sha256(raw).digest()[:16] + raw)
        for datagram, _addr in sender.datagrams_to_send(now):
            ptype = packet_type_untrusted(datagram)
            first.append(ptype)
            if ptype == PacketType.DATA:
                sent_blocks.add(decode_data_untrusted(datagram)[0].block)
            elif ptype == PacketType.USED_MAP:
                piece = decode_control_untrusted(datagram)
                assert isinstance(piece, UsedMapPiece)
                assert map_digest(piece.data) == UsedBlocks(NBLOCKS, RUNS).digest
        now += 0.001
        if sender.cursor >= NBLOCKS and len(sent_blocks) == 5:
            break
    assert wanted == sent_blocks == {0, 1, 5, 6, 7}
    assert first.index(PacketType.USED_MAP) < first.index(PacketType.DATA)
    assert sender.used_count == 5


def test_free_blocks_are_an_event_for_the_driver() -> None:
    """Through the session: the map piece arrives on the data group, FreeBlocks follows."""
    from protocol.config import ReceiverConfig
    from protocol.receiver import ReceiverSession

    digest = map_digest(encode_runs(RUNS))
    receiver = ReceiverSession(ReceiverConfig(), random.Random(2), 0.0)
    receiver.receive_datagram(announce(digest).encode(), ("10.0.0.1", 9000), 0.0)
    (piece,) = map_pieces_of(RUNS)
    receiver.receive_datagram(piece.encode(), ("10.0.0.1", 9000), 0.1)
    events = []
    while (event := receiver.next_event()) is not None:
        events.append(event)
    assert FreeBlocks(((2 * BLOCK, 3 * BLOCK), (8 * BLOCK, 2 * BLOCK))) in events
