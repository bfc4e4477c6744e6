"""Delta re-imaging by hand: the LACKS report piece by piece, the sender's pass plan, a sender
that waits for its delta receivers and then sends only what they lack, and a receiver that
compares before it asks for anything."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from protocol.config import Addr, ReceiverConfig, SenderConfig
from protocol.delta import LackAssembly, PassPlan
from protocol.errors import BadPacket, LocalProtocolError
from protocol.events import CompareDisk, Event
from protocol.manifest import Manifest, block_digest
from protocol.receiver import ReceiverSession, ReceiverState
from protocol.sender import SenderSession, SenderState
from protocol.usedmap import UsedBlocks, encode_runs, pieces
from protocol.wire import (
    Accept,
    Announce,
    Join,
    Lacks,
    LacksAck,
    ManifestChunk,
    PacketType,
    Status,
    UsedMapPiece,
    decode_control_untrusted,
    decode_data_untrusted,
    packet_type_untrusted,
)

BLOCK = 4096
NBLOCKS = 60  # three manifest chunks
RUNS = ((0, 40), (50, 60))  # blocks 40-49 are free
CONTROL: Addr = ("10.0.0.1", 9000)
R1: Addr = ("10.0.0.11", 5001)
R2: Addr = ("10.0.0.12", 5002)
IMAGE = random.Random(3).randbytes(NBLOCKS * BLOCK)


# --- the report ----------------------------------------------------------------------------

def test_a_report_is_taken_whole_in_any_order_and_names_what_is_missing() -> None:
    runs = [(i * 3, i * 3 + 1) for i in range(1200)]  # three pieces
    parts = pieces(encode_runs(runs))
    report = LackAssembly()
    assert report.expect(len(parts)) and report.missing() == [0, 1, 2]
    assert report.add(2, 3, parts[2]) and report.add(2, 3, b"again")  # a repeat changes nothing
    assert report.missing() == [0, 1] and not report.whole
    assert report.add(0, 3, parts[0]) and report.add(1, 3, parts[1])
    assert report.whole and report.runs(3600) == runs


def test_a_report_that_contradicts_itself_or_the_image_is_refused() -> None:
    report = LackAssembly()
    assert not report.expect(0) and not report.expect(5000)  # none, or beyond MAX_PIECES
    assert report.add(0, 2, b"\x05")
    assert not report.add(1, 3, b"")  # another count
    assert not report.add(2, 2, b"")  # beyond it
    assert report.add(1, 2, b"\x7f")  # [5, 132): beyond a 60-block image
    with pytest.raises(BadPacket):
        report.runs(NBLOCKS)
    assert report.missing() == [0, 1]  # forgotten: sent again


def test_the_plan_sends_what_any_receiver_lacks_and_everything_for_a_plain_one() -> None:
    plan = PassPlan(NBLOCKS, UsedBlocks(NBLOCKS, RUNS))
    assert plan.next_sent(40) == 50  # free blocks are never sent
    plan.only_lacked([[(3, 5)], [(4, 6), (45, 52)]])
    assert [b for b in range(NBLOCKS) if plan.flags[b]] == [3, 4, 5, 50, 51]
    plan.add_lacked([(0, 2), (55, 57)], cursor=1)  # the pass is past block 0 already
    assert [b for b in range(NBLOCKS) if plan.flags[b]] == [1, 3, 4, 5, 50, 51, 55, 56]
    plan.send_all_from(52)
    assert plan.next_sent(52) == 52 and sum(plan.flags[52:]) == 8


# --- the sender ----------------------------------------------------------------------------

def delta_sender(**kw: Any) -> SenderSession:
    digests = b"".join(block_digest(IMAGE[i : i + BLOCK]) for i in range(0, len(IMAGE), BLOCK))
    manifest = Manifest(digests)
    config = SenderConfig(image_size=len(IMAGE), image_sha256=manifest.root,
                          control_addr=CONTROL, block_size=BLOCK, symbol_size=1024,
                          used_runs=RUNS, fec_overhead=0.0, **kw)
    return SenderSession(config, random.Random(1), 0.0, manifest=manifest)


def state(sender: SenderSession) -> SenderState:
    return sender.state  # a call, so mypy does not narrow it across session calls


def sent(session: SenderSession | ReceiverSession, now: float) -> list[tuple[bytes, Addr]]:
    return session.datagrams_to_send(now)


def controls(out: list[tuple[bytes, Addr]]) -> list[Any]:
    return [decode_control_untrusted(dg) for dg, _a in out
            if packet_type_untrusted(dg) != PacketType.DATA]


def report(sender: SenderSession, rid: int, addr: Addr, runs: list[tuple[int, int]],
           now: float) -> None:
    parts = pieces(encode_runs(runs))
    for i, part in enumerate(parts):
        sender.receive_datagram(Lacks(sender.session_id, rid, i, len(parts), part).encode(),
                                addr, now)


def serve_blocks(sender: SenderSession, now: float) -> set[int]:
    """Run the first pass to its end; the blocks it sent data of."""
    blocks: set[int] = set()
    for step in range(5000):
        while (event := sender.next_event()) is not None:
            index = getattr(event, "index", None)
            if index is not None:
                raw = IMAGE[index * BLOCK : (index + 1) * BLOCK]
                sender.feed_block(index, 1, hashlib.sha256(raw).digest()[:16] + raw)
        for dg, _a in sent(sender, now + step * 0.001):
            if packet_type_untrusted(dg) == PacketType.DATA:
                blocks.add(decode_data_untrusted(dg)[0].block)
        if sender.first_pass_done_at is not None:
            return blocks
    raise AssertionError("the first pass never ended")


def test_a_delta_join_gets_the_map_and_every_used_chunk_multicast() -> None:
    sender = delta_sender()
    sender.handle_timer(0.0)
    sent(sender, 0.0)
    sender.receive_datagram(Join(sender.session_id, 1, delta=True).encode(), R1, 0.0)
    out = controls(sent(sender, 0.0))
    assert [type(m) for m in out][:3] == [Accept, UsedMapPiece, ManifestChunk]
    assert sorted(m.index for m in out if isinstance(m, ManifestChunk)) == [0, 1, 2]


def test_the_start_waits_for_the_report_and_the_pass_sends_only_what_is_lacked() -> None:
    sender = delta_sender(min_receivers=2)
    sender.handle_timer(0.0)
    for rid, addr in ((1, R1), (2, R2)):
        sender.receive_datagram(Join(sender.session_id, rid, delta=True).encode(), addr, 0.0)
    sent(sender, 0.0)
    report(sender, 1, R1, [(3, 5)], 0.1)
    assert state(sender) is SenderState.WAITING  # the other one still compares
    acks = [m for m in controls(sent(sender, 0.1)) if isinstance(m, LacksAck)]
    assert acks == [LacksAck(sender.session_id, 1, [])]
    # The other's report lost its first piece: its STATUS says how many there are.
    parts = pieces(encode_runs([(10, 11), (55, 56)]))
    status = Status(sender.session_id, 2, -1.0, 0.0, -1, 0, lacks_pieces=len(parts))
    sender.receive_datagram(status.encode(), R2, 0.2)
    assert [m for m in controls(sent(sender, 0.2)) if isinstance(m, LacksAck)] == [
        LacksAck(sender.session_id, 2, [0])]
    sender.receive_datagram(Lacks(sender.session_id, 2, 0, 1, parts[0]).encode(), R2, 0.3)
    assert state(sender) is SenderState.SENDING
    assert serve_blocks(sender, 0.3) == {3, 4, 10, 55}


def test_a_plain_receiver_joining_before_the_pass_gets_every_used_block() -> None:
    sender = delta_sender(min_receivers=1, late_join_window=10.0)
    sender.handle_timer(0.0)
    sender.receive_datagram(Join(sender.session_id, 1, delta=True).encode(), R1, 0.0)
    report(sender, 1, R1, [(2, 3)], 0.0)
    assert state(sender) is SenderState.SENDING
    sender.receive_datagram(Join(sender.session_id, 2).encode(), R2, 0.0)
    assert serve_blocks(sender, 0.0) == {*range(40), *range(50, 60)}


def test_a_delta_receiver_that_goes_silent_while_comparing_no_longer_holds_the_room() -> None:
    sender = delta_sender(min_receivers=1, receiver_timeout=5.0)
    sender.handle_timer(0.0)
    sender.receive_datagram(Join(sender.session_id, 1, delta=True).encode(), R1, 0.0)
    sender.receive_datagram(Join(sender.session_id, 2).encode(), R2, 0.0)
    assert state(sender) is SenderState.WAITING
    for t in range(1, 8):  # the plain one keeps reporting
        sender.receive_datagram(Status(sender.session_id, 2, -1.0, 0.0, -1, 0).encode(), R2,
                                float(t))
        sender.handle_timer(float(t))
    assert state(sender) is SenderState.SENDING


# --- the receiver --------------------------------------------------------------------------

def delta_receiver(sender: SenderSession, now: float = 0.0) -> tuple[ReceiverSession,
                                                                      list[Event]]:
    """A delta receiver accepted into ``sender``'s session at its next ANNOUNCE from ``now``,
    and the events so far."""
    receiver = ReceiverSession(ReceiverConfig(delta=True), random.Random(7), now)
    while receiver.announce is None:
        sender.handle_timer(now)
        for dg, _a in sent(sender, now):
            if isinstance(decode_control_untrusted(dg), Announce):
                receiver.receive_datagram(dg, CONTROL, now)
        now += 0.01
    (join_dg, _a), = sent(receiver, now)
    join = decode_control_untrusted(join_dg)
    assert isinstance(join, Join) and join.delta
    sender.receive_datagram(join_dg, R1, now)
    for dg, _a in sent(sender, now):  # the ACCEPT, the map and the manifest
        receiver.receive_datagram(dg, CONTROL, now)
    events = []
    while (event := receiver.next_event()) is not None:
        events.append(event)
    return receiver, events


def test_a_delta_receiver_compares_once_it_holds_the_map_and_manifest() -> None:
    sender = delta_sender()
    receiver, events = delta_receiver(sender)
    assert receiver.state is ReceiverState.COMPARING
    assert CompareDisk() in events
    listed = list(receiver.blocks_to_compare())
    assert [b[0] for b in listed] == [*range(40), *range(50, 60)]  # used blocks only
    assert listed[3] == (3, 3 * BLOCK, BLOCK, block_digest(IMAGE[3 * BLOCK : 4 * BLOCK]))


def test_what_the_comparison_leaves_is_reported_until_the_sender_confirms() -> None:
    sender = delta_sender()
    receiver, _events = delta_receiver(sender)
    with pytest.raises(LocalProtocolError):  # only a comparing receiver may answer
        ReceiverSession(ReceiverConfig(), random.Random(1), 0.0).compared([], 0.0)
    matching = [b for b in (*range(40), *range(50, 60)) if b not in (7, 8, 59)]
    assert receiver.compared(matching, 0.1) == 47
    assert receiver.state is ReceiverState.RECEIVING
    out = controls(sent(receiver, 0.1))
    (lacks,) = [m for m in out if isinstance(m, Lacks)]
    assert lacks.count == 1
    runs = LackAssembly()
    runs.add(lacks.index, lacks.count, lacks.data)
    assert runs.runs(NBLOCKS) == [(7, 9), (59, 60)]
    # Its STATUS says so until the sender confirms; a piece named missing is sent again.
    receiver.handle_timer(1.0)
    (status,) = [m for m in controls(sent(receiver, 1.0)) if isinstance(m, Status)]
    assert status.lacks_pieces == 1
    receiver.receive_datagram(LacksAck(sender.session_id, receiver.receiver_id, [0]).encode(),
                              CONTROL, 1.1)
    assert [m for m in controls(sent(receiver, 1.1)) if isinstance(m, Lacks)] == [lacks]
    receiver.receive_datagram(LacksAck(sender.session_id, receiver.receiver_id, []).encode(),
                              CONTROL, 1.2)
    receiver.handle_timer(2.0)
    (status,) = [m for m in controls(sent(receiver, 2.0)) if isinstance(m, Status)]
    assert status.lacks_pieces == 0


def test_a_late_delta_joiner_asks_for_nothing_whole_while_comparing() -> None:
    sender = delta_sender(min_receivers=1, late_join_window=10.0)
    sender.handle_timer(0.0)
    sender.receive_datagram(Join(sender.session_id, 2).encode(), R2, 0.0)  # a plain one: go
    serve_blocks(sender, 0.0)
    receiver, _events = delta_receiver(sender, 0.5)  # every block is overdue by now
    assert receiver.state is ReceiverState.COMPARING
    report(sender, 99, R2, [], 0.0)  # (not a receiver of the session: ignored)
    for t in (1.0, 1.1, 1.2):
        sender.handle_timer(t)
        for dg, _a in sent(sender, t):  # SYNCs: the first pass is over
            receiver.receive_datagram(dg, CONTROL, t)
    receiver.handle_timer(1.5)
    statuses = [m for m in controls(sent(receiver, 1.5)) if isinstance(m, Status)]
    assert statuses and all(m.need == [] and m.whole == [] for m in statuses)
    receiver.compared([], 1.6)  # a blank disk after all: now it asks for every used block
    receiver.handle_timer(2.5)
    (status,) = [m for m in controls(sent(receiver, 2.5)) if isinstance(m, Status)]
    assert status.whole == [(0, 40), (50, 60)]


def test_without_a_manifest_a_delta_receiver_receives_in_full() -> None:
    config = SenderConfig(image_size=len(IMAGE), image_sha256=bytes(32), control_addr=CONTROL,
                          block_size=BLOCK, symbol_size=1024)
    sender = SenderSession(config, random.Random(1), 0.0)
    receiver = ReceiverSession(ReceiverConfig(delta=True), random.Random(7), 0.0)
    sender.handle_timer(0.0)
    for dg, _a in sent(sender, 0.0):
        receiver.receive_datagram(dg, CONTROL, 0.0)
    (join_dg, _a), = sent(receiver, 0.0)
    join = decode_control_untrusted(join_dg)
    assert isinstance(join, Join) and not join.delta
