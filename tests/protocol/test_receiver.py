"""ReceiverSession driven by hand with explicit ``now``: discovery, data intake and its junk,
a whole image, NAK contents, time-outs and the memory window."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netsim.drivers import MemorySink, MemorySource
from protocol.assembly import decode_block
from protocol.blockcodec import BlockDecoder, BlockKind
from protocol.config import Addr, ReceiverConfig, SenderConfig
from protocol.errors import LocalProtocolError
from protocol.events import (
    BlockReady,
    Event,
    Finished,
    Joined,
    Outcome,
    SessionFound,
    VerifyImage,
)
from protocol.receiver import FIRST_JOIN_RETRY, ReceiverSession, ReceiverState
from protocol.sender import SenderSession, SenderState
from protocol.trust import NONCE_SIZE
from protocol.wire import (
    DATA_HEADER_SIZE,
    FLAG_REPAIR,
    Accept,
    Announce,
    DataHeader,
    Done,
    DoneAck,
    Join,
    PacketType,
    Refuse,
    Status,
    Sync,
    decode_control_untrusted,
    decode_data_untrusted,
    packet_type_untrusted,
)

CONTROL: Addr = ("10.0.0.1", 9000)
ME: Addr = ("10.0.0.11", 5001)
SYMBOL = 512
BLOCK = 40_000  # random blocks: 40016 encoded bytes, 79 symbols in groups of 40 and 39


# --- helpers -----------------------------------------------------------------------------------


def mixed_image() -> bytes:
    rng = random.Random(11)
    return (
        rng.randbytes(BLOCK)  # RAW
        + bytes(BLOCK)  # ZERO
        + (b"the same words again " * 2000)[:BLOCK]  # ZSTD
        + rng.randbytes(12_345)  # RAW, short last block
    )


def random_image(blocks: int, seed: int = 2) -> bytes:
    return random.Random(seed).randbytes(blocks * BLOCK)


def make_sender(image: bytes, **kw: Any) -> tuple[SenderSession, MemorySource]:
    kw.setdefault("block_size", BLOCK)
    kw.setdefault("symbol_size", SYMBOL)
    cfg = SenderConfig(len(image), hashlib.sha256(image).digest(), CONTROL, name="lab", **kw)
    sender = SenderSession(cfg, random.Random(42), 0.0)
    return sender, MemorySource(sender, image)


def announce_of(sender: SenderSession, now: float = 0.0) -> bytes:
    sender.handle_timer(now)
    for dg, _addr in sender.datagrams_to_send(now):
        if isinstance(decode_control_untrusted(dg), Announce):
            return dg
    raise AssertionError("no ANNOUNCE")


def state(receiver: ReceiverSession) -> ReceiverState:
    return receiver.state  # a call, so mypy does not narrow it across session calls


def events_of(session: ReceiverSession) -> list[Event]:
    out = []
    while (ev := session.next_event()) is not None:
        out.append(ev)
    return out


def sent_by(session: ReceiverSession, now: float) -> list[tuple[Any, Addr]]:
    return [(decode_control_untrusted(dg), addr) for dg, addr in session.datagrams_to_send(now)]


def new_receiver(now: float = 0.0, **kw: Any) -> ReceiverSession:
    return ReceiverSession(ReceiverConfig(**kw), random.Random(7), now)


def join_session(sender: SenderSession, receiver: ReceiverSession, now: float = 0.0) -> None:
    """ANNOUNCE → JOIN → ACCEPT between the two, by hand."""
    receiver.receive_datagram(announce_of(sender, now), CONTROL, now)
    for dg, addr in receiver.datagrams_to_send(now):
        assert addr == CONTROL
        sender.receive_datagram(dg, ME, now)
    for dg, addr in sender.datagrams_to_send(now):
        if addr == ME:
            receiver.receive_datagram(dg, CONTROL, now)
    assert state(receiver) is ReceiverState.RECEIVING


def first_pass(sender: SenderSession, source: MemorySource, now: float = 0.0) -> list[bytes]:
    """The perfect loop of the sender alone: every multicast datagram of its first pass (DATA
    and SYNC, in order), following its own timer and feeding the blocks it wants."""
    out: list[bytes] = []
    group = sender.config.data_addr
    while True:
        sender.handle_timer(now)
        for _ in range(10_000):
            while (ev := sender.next_event()) is not None:
                source.on_event(ev, now)
            batch = sender.datagrams_to_send(now)
            out += [dg for dg, addr in batch if addr == group]
            if not batch:
                break
        if sender.first_pass_done_at is not None:
            # The SYNC that tells every block is overdue now goes out at once.
            sender.handle_timer(now)
            out += [dg for dg, addr in sender.datagrams_to_send(now) if addr == group]
            return out
        timer = sender.get_timer()
        assert timer is not None
        now = max(now, timer)


def header(dg: bytes) -> DataHeader | None:
    if packet_type_untrusted(dg) != PacketType.DATA:
        return None
    return decode_data_untrusted(dg)[0]


def setup(image: bytes, rcv: dict[str, Any] | None = None, **kw: Any) -> tuple[
    SenderSession, ReceiverSession, list[bytes]
]:
    """A sender and a joined receiver, and the sender's first pass (not yet delivered)."""
    sender, source = make_sender(image, **kw)
    receiver = new_receiver(**(rcv or {}))
    join_session(sender, receiver)
    events_of(receiver)
    return sender, receiver, first_pass(sender, source)


def feed(receiver: ReceiverSession, datagrams: list[bytes], now: float = 0.0) -> None:
    for dg in datagrams:
        receiver.receive_datagram(dg, CONTROL, now)


def next_joins(receiver: ReceiverSession, now: float) -> tuple[list[Join], float]:
    """Run the receiver's timer from ``now`` until it sends JOINs; returns them and when."""
    joins: list[Join] = []
    while not joins:
        timer = receiver.get_timer()
        assert timer is not None
        now = max(now, timer)
        receiver.handle_timer(now)
        joins = [m for m, _ in sent_by(receiver, now) if isinstance(m, Join)]
    return joins, now


def next_status(receiver: ReceiverSession, now: float) -> tuple[Status, float]:
    """Run the receiver's timer from ``now`` until it sends a STATUS."""
    for _ in range(100):
        timer = receiver.get_timer()
        assert timer is not None
        now = max(now, timer)
        receiver.handle_timer(now)
        for msg, addr in sent_by(receiver, now):
            if isinstance(msg, Status):
                assert addr == CONTROL
                return msg, now
    raise AssertionError("no STATUS")


# --- discovery ---------------------------------------------------------------------------------


def test_discovering_ignores_everything_but_announce() -> None:
    sender, receiver, datagrams = setup(mixed_image())
    other = new_receiver()
    sid = sender.session_id
    junk = datagrams[:20] + [
        Sync(sid, 0.0, 0.05, 3, 10, 0.01).encode(),
        Accept(sid, other.receiver_id).encode(),
        DoneAck(sid, other.receiver_id).encode(),
        Status(sid, 5, -1.0, 0.0, 0, 0).encode(),
        Join(sid, 5).encode(),
        b"garbage",
    ]
    feed(other, junk)
    assert other.state is ReceiverState.DISCOVERING
    assert events_of(other) == []
    assert other.datagrams_to_send(0.0) == []
    assert other.get_timer() is None
    assert other.stats.received == 0
    other.handle_timer(100.0)
    assert other.state is ReceiverState.DISCOVERING  # no sender time-out before a session


def test_session_name_filter() -> None:
    sender, _ = make_sender(mixed_image())  # name "lab"
    ann = announce_of(sender)
    picky = new_receiver(session_name="other")
    picky.receive_datagram(ann, CONTROL, 0.0)
    assert picky.state is ReceiverState.DISCOVERING
    assert events_of(picky) == [] and picky.datagrams_to_send(0.0) == []
    fine = new_receiver(session_name="lab")
    fine.receive_datagram(ann, CONTROL, 0.0)
    assert fine.state is ReceiverState.JOINING


def test_announce_joins_and_accept_completes_the_join() -> None:
    image = mixed_image()
    sender, _ = make_sender(image)
    receiver = new_receiver()
    receiver.receive_datagram(announce_of(sender, 3.0), ("192.168.1.1", 1234), 3.5)
    assert state(receiver) is ReceiverState.JOINING
    assert events_of(receiver) == [
        SessionFound(sender.session_id, "lab", len(image), sender.config.data_addr, CONTROL)
    ]
    ((join, addr),) = sent_by(receiver, 3.5)
    assert addr == CONTROL
    assert isinstance(join, Join) and len(join.nonce) == NONCE_SIZE
    assert join == Join(sender.session_id, receiver.receiver_id, 3.0, 0.0, join.nonce)
    # JOIN is repeated until accepted, with the same nonce: soon, then backing off to
    # join_interval.
    now, waits = 3.5, []
    for _ in range(8):
        joins, later = next_joins(receiver, now)
        assert joins == [Join(sender.session_id, receiver.receiver_id, 3.0, later - 3.5,
                              join.nonce)]
        waits.append(later - now)
        now = later
    assert waits[0] == pytest.approx(FIRST_JOIN_RETRY)
    assert waits[:5] == pytest.approx([FIRST_JOIN_RETRY * 2**i for i in range(5)])
    assert waits[-1] == pytest.approx(receiver.config.join_interval)
    # Another receiver's ACCEPT is not ours.
    receiver.receive_datagram(Accept(sender.session_id, receiver.receiver_id ^ 1).encode(),
                              CONTROL, 4.1)
    assert state(receiver) is ReceiverState.JOINING
    receiver.receive_datagram(Accept(sender.session_id, receiver.receiver_id).encode(),
                              CONTROL, 4.2)
    assert state(receiver) is ReceiverState.RECEIVING
    assert events_of(receiver) == [Joined(sender.session_id)]
    # Repeated ACCEPTs and other sessions' ANNOUNCEs change nothing.
    receiver.receive_datagram(Accept(sender.session_id, receiver.receiver_id).encode(),
                              CONTROL, 4.3)
    other, _ = make_sender(b"x" * 10)
    other.session_id ^= 1
    receiver.receive_datagram(announce_of(other), CONTROL, 4.4)
    assert receiver.session_id == sender.session_id
    assert receiver.stats.foreign == 1
    assert events_of(receiver) == []


def test_announce_without_control_host_uses_the_source_address() -> None:
    sender, _ = make_sender(mixed_image())
    ann = decode_control_untrusted(announce_of(sender))
    assert isinstance(ann, Announce)
    blank = Announce(ann.session_id, ann.name, ann.image_size, ann.image_sha256, ann.block_size,
                     ann.symbol_size, ann.data_host, ann.data_port, "", 7777, 0.0)
    receiver = new_receiver()
    receiver.receive_datagram(blank.encode(), ("192.168.1.9", 4444), 0.0)
    assert receiver.sender_addr == ("192.168.1.9", 7777)
    assert [a for _, a in sent_by(receiver, 0.0)] == [("192.168.1.9", 7777)]


@pytest.mark.parametrize(
    "change",
    [{"block_size": 0}, {"symbol_size": 0}, {"symbol_size": 70_000}, {"image_sha256": b"x"}],
)
def test_implausible_announces_are_garbled(change: dict[str, Any]) -> None:
    sender, _ = make_sender(mixed_image())
    ann = decode_control_untrusted(announce_of(sender))
    assert isinstance(ann, Announce)
    receiver = new_receiver()
    receiver.receive_datagram(dataclasses.replace(ann, **change).encode(), CONTROL, 0.0)
    assert state(receiver) is ReceiverState.DISCOVERING
    assert receiver.stats.garbled == 1


def test_an_announce_of_an_absurd_image_does_not_raise() -> None:
    sender, _ = make_sender(mixed_image())
    ann = decode_control_untrusted(announce_of(sender))
    assert isinstance(ann, Announce)
    huge = Announce(ann.session_id, ann.name, 2**64 - 1, ann.image_sha256, 1, SYMBOL,
                    ann.data_host, ann.data_port, ann.control_host, ann.control_port, 0.0)
    receiver = new_receiver()
    # Regression: bytearray(image_size // block_size) raised OverflowError here.
    receiver.receive_datagram(huge.encode(), CONTROL, 0.0)
    assert state(receiver) is ReceiverState.DISCOVERING
    assert receiver.stats.garbled == 1


# --- data intake and its junk ----------------------------------------------------------------


def data_only(datagrams: list[bytes]) -> list[bytes]:
    return [dg for dg in datagrams if header(dg) is not None]


def test_foreign_garbled_duplicate_and_stale_data_are_counted() -> None:
    _sender, receiver, datagrams = setup(mixed_image(), fec_overhead=0.05)
    data = data_only(datagrams)
    first = data[0]
    h = header(first)
    assert h is not None and (h.block, h.group, h.esi) == (0, 0, 0)
    foreign = first[:8] + bytes(a ^ 0xFF for a in first[8:12]) + first[12:]
    feed(receiver, [foreign])
    assert receiver.stats.foreign == 1
    bad = [
        first[:20],  # truncated inside the header
        first[:-1],  # a source symbol one byte short
        first[:12] + (10**6).to_bytes(4, "little") + first[16:],  # block out of range
        first[:6] + (9).to_bytes(2, "little") + first[8:],  # group out of range
        first[:16] + (123).to_bytes(4, "little") + first[20:],  # implausible encoded length
        first[:4] + bytes((first[4] & 0xF0 | 0x07,)) + first[5:],  # unknown block kind
    ]
    feed(receiver, bad)
    assert receiver.stats.garbled == len(bad)
    assert receiver.stats.received == 0
    feed(receiver, [first, first])
    assert (receiver.stats.received, receiver.stats.duplicates) == (1, 1)
    # The rest of block 0 completes it; its proactive repairs then come too late: stale.
    block0 = [dg for dg in data if (hh := header(dg)) is not None and hh.block == 0]
    feed(receiver, block0[1:])
    assert [type(e) for e in events_of(receiver)] == [BlockReady]
    assert receiver.stats.received == 79
    assert receiver.stats.stale == len(block0) - 79
    feed(receiver, [first])
    assert receiver.stats.stale == len(block0) - 78
    assert receiver.stats.duplicates == 1 and receiver.stats.garbled == len(bad)


def test_symbols_beyond_k_for_a_complete_group_are_duplicates() -> None:
    _sender, receiver, datagrams = setup(mixed_image(), fec_overhead=0.5)
    block0 = [dg for dg in data_only(datagrams) if (h := header(dg)) and h.block == 0]
    group0 = [dg for dg in block0 if (h := header(dg)) and h.group == 0]
    # 40 sources + 20 proactive repairs of group 0: the last 20 are more than it needs.
    feed(receiver, group0)
    assert receiver.stats.received == 40
    assert receiver.stats.duplicates == 20
    assert events_of(receiver) == []


@cache
def intake_fixture() -> tuple[bytes, list[bytes]]:
    sender, _source = make_sender(mixed_image(), fec_overhead=0.1)
    ann = announce_of(sender)
    receiver = new_receiver()
    receiver.receive_datagram(ann, CONTROL, 0.0)
    for dg, _ in receiver.datagrams_to_send(0.0):
        sender.receive_datagram(dg, ME, 0.0)
    return ann, data_only(first_pass(sender, _source))


def receiving(ann: bytes) -> ReceiverSession:
    receiver = new_receiver()
    receiver.receive_datagram(ann, CONTROL, 0.0)
    announce = receiver.announce
    assert announce is not None
    receiver.receive_datagram(Accept(announce.session_id, receiver.receiver_id).encode(),
                              CONTROL, 0.0)
    return receiver


def counted(receiver: ReceiverSession) -> int:
    s = receiver.stats
    return s.received + s.duplicates + s.stale + s.foreign + s.garbled + s.overflow


def is_data_path(dg: bytes) -> bool:
    return len(dg) >= DATA_HEADER_SIZE and dg[:4] == b"MC\x02\x01"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    _ann, data = intake_fixture()
    dg = bytearray(draw(st.sampled_from(data)))
    for _ in range(draw(st.integers(1, 4))):
        # Mostly the header, where a flip changes the meaning, sometimes the symbol.
        pos = draw(st.integers(0, DATA_HEADER_SIZE - 1) | st.integers(0, len(dg) - 1))
        dg[pos] = draw(st.integers(0, 255))
    cut = draw(st.none() | st.integers(0, len(dg) + 8))
    if cut is not None:
        dg = dg[:cut] if cut <= len(dg) else dg + bytes(cut - len(dg))
    return bytes(dg)


@given(st.lists(st.binary(max_size=700) | mutated(), min_size=1, max_size=30))
@settings(max_examples=150, deadline=None)
def test_no_datagram_makes_the_receiver_raise(datagrams: list[bytes]) -> None:
    ann, data = intake_fixture()
    receiver = receiving(ann)
    for i, dg in enumerate(datagrams):
        before = counted(receiver)
        receiver.receive_datagram(dg, CONTROL, float(i))
        if is_data_path(dg):
            assert counted(receiver) == before + 1  # every data datagram lands in one count
        for ev in events_of(receiver):
            if isinstance(ev, BlockReady):
                receiver.block_rejected(ev.index)
        receiver.handle_timer(float(i))
        receiver.datagrams_to_send(float(i))
    # Whatever came before, the real first pass is taken in as usual (counted once each).
    before = counted(receiver)
    feed(receiver, data, float(len(datagrams)))
    assert counted(receiver) == before + len(data)


# --- a whole image -----------------------------------------------------------------------------


@pytest.mark.parametrize("good", [True, False])
def test_a_whole_image_in_order(good: bool) -> None:
    image = mixed_image()
    sha = hashlib.sha256(image).digest()
    sender, receiver, datagrams = setup(image)
    assert receiver.nblocks == 4
    feed(receiver, datagrams, 0.1)
    ready = events_of(receiver)
    assert [type(e) for e in ready] == [BlockReady] * 4
    assert [e.index for e in ready if isinstance(e, BlockReady)] == [0, 1, 2, 3]
    assert receiver.stats.garbled == receiver.stats.foreign == receiver.stats.overflow == 0
    decoder = BlockDecoder()
    kinds = []
    for ev in ready:
        assert isinstance(ev, BlockReady)
        kinds.append(ev.assembly.kind)
        raw = image[ev.index * BLOCK : (ev.index + 1) * BLOCK]
        assert (ev.offset, ev.length) == (ev.index * BLOCK, len(raw))  # the last one short
        assert decode_block(ev.assembly, len(raw), decoder) == raw
        assert events_of(receiver) == []  # nothing to verify before every block is stored
        receiver.block_stored(ev.index)
    assert kinds == [BlockKind.RAW, BlockKind.ZERO, BlockKind.ZSTD, BlockKind.RAW]
    assert state(receiver) is ReceiverState.VERIFYING
    assert events_of(receiver) == [VerifyImage()]
    digest = sha if good else hashlib.sha256(b"something else").digest()
    receiver.image_verified(digest, 0.2)
    ((done, addr),) = sent_by(receiver, 0.2)
    assert addr == CONTROL
    assert isinstance(done, Done)
    assert (done.receiver_id, done.ok, done.digest) == (receiver.receiver_id, good, digest)
    assert state(receiver) is ReceiverState.REPORTING
    # DONE is repeated until acknowledged.
    timer = receiver.get_timer()
    assert timer is not None and 0.2 < timer <= 0.2 + receiver.config.done_interval
    receiver.handle_timer(timer)
    assert [type(m) for m, _ in sent_by(receiver, timer)] == [Done]
    # The sender's acknowledgement ends it.
    sender.receive_datagram(done.encode(), ME, timer)
    ((ack, to),) = [(m, a) for m, a in ((decode_control_untrusted(d), a) for d, a in
                                        sender.datagrams_to_send(timer)) if isinstance(m, DoneAck)]
    assert to == ME
    receiver.receive_datagram(ack.encode(), CONTROL, timer)
    assert state(receiver) is ReceiverState.FINISHED
    (fin,) = events_of(receiver)
    assert isinstance(fin, Finished) and fin.ok is good
    assert (fin.reason == "") is good
    assert receiver.get_timer() is None


def test_done_gives_up_after_done_attempts() -> None:
    image = mixed_image()
    _sender, receiver, datagrams = setup(image, rcv={"done_attempts": 3})
    feed(receiver, datagrams)
    for ev in events_of(receiver):
        if isinstance(ev, BlockReady):
            receiver.block_stored(ev.index)
    receiver.image_verified(hashlib.sha256(image).digest(), 1.0)
    dones = 0
    now = 1.0
    while receiver.state is not ReceiverState.FINISHED:
        dones += sum(isinstance(m, Done) for m, _ in sent_by(receiver, now))
        timer = receiver.get_timer()
        assert timer is not None and timer > now
        now = timer
        receiver.handle_timer(now)
    assert dones == 3
    # The image did verify: only the confirmation is missing.
    assert events_of(receiver)[-1] == Finished(True, "the sender did not confirm our report")


# --- NAKs -------------------------------------------------------------------------------------


def test_block_rejected_is_asked_for_again_whole() -> None:
    _sender, receiver, datagrams = setup(random_image(3))
    data = data_only(datagrams)
    block0 = [dg for dg in data if (h := header(dg)) and h.block == 0]
    feed(receiver, block0)
    (ready,) = events_of(receiver)
    assert isinstance(ready, BlockReady)
    assert ready.index == 0
    first_of_1 = next(dg for dg in data if (h := header(dg)) and h.block == 1)
    feed(receiver, [first_of_1])  # the cursor moves past block 0
    assert events_of(receiver) == []
    status, now = next_status(receiver, 0.0)
    assert status.whole == [] and status.need == []
    receiver.block_rejected(0)
    assert receiver.stats.rejected == 1
    status, now = next_status(receiver, now)
    assert status.whole == [(0, 1)]
    # The block is collected afresh.
    feed(receiver, block0, now)
    assert [e.index for e in events_of(receiver) if isinstance(e, BlockReady)] == [0]
    with pytest.raises(LocalProtocolError, match="not handed out"):
        receiver.block_rejected(1)


def test_nak_lists_blocks_only_once_the_cursor_passed_them() -> None:
    sender, receiver, datagrams = setup(random_image(4), fec_overhead=0.05)  # 2 proactive per group

    def lose(dg: bytes) -> bool:
        h = header(dg)
        assert h is not None
        if h.block == 0:  # group 0: 3 sources and both repairs; group 1: 3 sources
            return (h.group == 0 and (h.esi in (5, 6, 7) or h.esi >= 40)) or (
                h.group == 1 and h.esi in (0, 1, 38)
            )
        if h.block == 2:
            return True  # nothing of block 2
        return h.block == 3 and h.esi % 2 == 0
    data = data_only(datagrams)
    by_block = {b: [dg for dg in data if (h := header(dg)) and h.block == b and not lose(dg)]
                for b in range(4)}
    now = 0.0
    feed(receiver, by_block[0], now)
    status, now = next_status(receiver, now)
    assert (status.need, status.whole) == ([], [])  # block 0 is not overdue yet
    assert receiver.get_timer() == pytest.approx(now + receiver.config.status_interval)
    feed(receiver, by_block[1][:1], now)  # the cursor passes block 0: a NAK is armed
    timer = receiver.get_timer()
    assert timer is not None and timer <= now + 2.0 * 0.05
    status, now = next_status(receiver, now)
    assert now == timer
    assert status.need == [(0, [3, 1])]
    assert status.whole == []
    feed(receiver, by_block[1][1:] + by_block[3], now)
    status, now = next_status(receiver, now)
    assert status.need == [(0, [3, 1])]
    assert status.whole == [(2, 3)]  # block 3 is partial but its first pass may go on
    assert status.seq_seen == max(h.seq for dg in by_block[3] if (h := header(dg)))
    # The sender's SYNC after its first pass moves the cursor to the end.
    syncs = [m for dg in datagrams
             if header(dg) is None and isinstance(m := decode_control_untrusted(dg), Sync)]
    assert syncs[-1].cursor == 4
    receiver.receive_datagram(syncs[-1].encode(), CONTROL, now)
    status, now = next_status(receiver, now)
    assert status.need[0] == (0, [3, 1])
    assert status.need[1][0] == 3
    got3 = [h for dg in by_block[3] if (h := header(dg))]
    k3 = (40, 39)
    assert status.need[1][1] == [k - sum(h.group == g for h in got3) for g, k in enumerate(k3)]
    assert status.whole == [(2, 3)]
    assert status.seq_seen == syncs[-1].last_seq
    assert receiver.stats.naks_sent >= 2
    # Those counts are what the sender needs to repair everything.
    sender.receive_datagram(status.encode(), ME, now)
    assert sender.stats.naks_received == 1


def test_an_idle_sender_draws_the_nak_at_once() -> None:
    """A SYNC with backlog 0 means whatever is still missing was lost: NAK within the
    backoff, not at the (room-size dependent) NAK interval."""
    sender, receiver, datagrams = setup(random_image(2), fec_overhead=0.0)
    sid = receiver.session_id

    def sync(now: float, backlog: int) -> None:
        msg = Sync(sid, now, 0.001, 1, receiver.stats.received, 5.0, backlog=backlog)
        receiver.receive_datagram(msg.encode(), CONTROL, now)

    sync(0.0, backlog=10)  # a large room: NAKs at most every 5 s
    data = data_only(datagrams)
    feed(receiver, data[1:], 0.0)  # block 0 lost one symbol; block 1 moved the cursor past it
    status, now = next_status(receiver, 0.0)
    assert status.need and now <= 2 * 0.001
    sync(now, backlog=10)  # the sender is still busy: the repair may be on its way
    timer = receiver.get_timer()
    assert timer is not None and timer > now + 0.25  # (the heartbeat comes first)
    sync(now, backlog=0)  # the sender is idle: our repair was lost, ask again now
    timer = receiver.get_timer()
    assert timer is not None and timer <= now + 2 * 0.001


# --- time-outs ---------------------------------------------------------------------------------


def test_the_receiver_gives_up_when_the_sender_goes_silent() -> None:
    sender, receiver, datagrams = setup(mixed_image(), rcv={"sender_timeout": 4.0})
    feed(receiver, datagrams[:10], 1.0)
    now = 1.0
    while True:
        timer = receiver.get_timer()
        assert timer is not None
        now = max(now, timer)
        receiver.handle_timer(now)
        receiver.datagrams_to_send(now)
        if receiver.state is ReceiverState.FINISHED:
            break
        assert now < 5.0
    assert now == pytest.approx(5.0)
    assert events_of(receiver)[-1] == Finished(
        False, "the sender went silent for 4 s (stopped, crashed or unreachable)")
    assert receiver.sender_lost
    assert receiver.get_timer() is None


def test_a_session_that_never_accepts_us_is_given_up_and_nothing_is_written() -> None:
    sender, _other, datagrams = setup(mixed_image())  # a session under way with another
    receiver = new_receiver(sender_timeout=3.0)
    announce = announce_of(sender, 1.0)
    receiver.receive_datagram(announce, CONTROL, 0.0)
    events_of(receiver)
    # Data of the session arrives (a sender that talks but never accepts us): collected, but
    # no block is handed out for writing.
    feed(receiver, data_only(datagrams))
    assert receiver.stats.received > 0 and events_of(receiver) == []
    now = 0.0
    joins = 0
    while receiver.state is ReceiverState.JOINING:
        timer = receiver.get_timer()
        assert timer is not None
        now = max(now, timer)
        receiver.receive_datagram(announce, CONTROL, now)
        receiver.handle_timer(now)
        joins += sum(isinstance(m, Join) for m, _ in sent_by(receiver, now))
    assert now == pytest.approx(3.0)
    assert joins >= 10
    (finished,) = events_of(receiver)
    assert finished == Finished(False, "the session never accepted us within 3 s (a replayed "
                                       "announcement, or a sender that ignores us); nothing "
                                       "was written")


# --- the memory window -------------------------------------------------------------------------


def test_a_third_partial_block_overflows_a_window_of_two() -> None:
    _sender, receiver, datagrams = setup(random_image(4), rcv={"max_pending_blocks": 2})
    data = data_only(datagrams)
    of = {b: [dg for dg in data if (h := header(dg)) and h.block == b] for b in (0, 2, 3)}
    feed(receiver, [of[0][0], of[2][0]])
    feed(receiver, of[3][:5])
    assert receiver.stats.overflow == 5
    feed(receiver, of[0][1:])  # block 0 completes: room for one more
    assert [e.index for e in events_of(receiver) if isinstance(e, BlockReady)] == [0]
    feed(receiver, of[3])
    assert receiver.stats.overflow == 5
    assert [e.index for e in events_of(receiver) if isinstance(e, BlockReady)] == [3]


def run_loop(sender: SenderSession, source: MemorySource, receiver: ReceiverSession,
             sink: MemorySink, drop: Callable[[bytes], bool], limit: float = 30.0) -> float:
    """A perfect zero-delay LAN between one sender and one receiver, except what ``drop``
    drops on the way to the receiver. Returns when both are done."""
    now = 0.0
    groups = (sender.config.discovery_addr, sender.config.data_addr)
    while True:
        sender.handle_timer(now)
        receiver.handle_timer(now)
        for _ in range(100_000):
            moved = False
            while (ev := sender.next_event()) is not None:
                source.on_event(ev, now)
            for dg, addr in sender.datagrams_to_send(now):
                moved = True
                if (addr in groups or addr == ME) and not drop(dg):
                    receiver.receive_datagram(dg, CONTROL, now)
            while (ev := receiver.next_event()) is not None:
                sink.on_event(ev, now)
            for dg, addr in receiver.datagrams_to_send(now):
                moved = True
                assert addr == CONTROL
                sender.receive_datagram(dg, ME, now)
            if not moved and sender.next_event() is None:
                break
        if receiver.state is ReceiverState.FINISHED and sender.state is SenderState.COMPLETE:
            return now
        timers = [t for t in (sender.get_timer(), receiver.get_timer()) if t is not None]
        now = max(now, min(timers))
        assert now < limit, "the transfer did not finish"


def test_the_transfer_completes_through_an_overflowing_window() -> None:
    rng = random.Random(5)
    image = rng.randbytes(8 * 10_000) + bytes(10_000) + rng.randbytes(3_000)
    sender, source = make_sender(image, block_size=10_000, fec_overhead=0.0)
    receiver = new_receiver(max_pending_blocks=2)
    sink = MemorySink(receiver)
    loss = random.Random(6)

    def drop(dg: bytes) -> bool:
        h = header(dg)
        if h is None:
            return False
        # Every first pass loses its first symbol (so every block stays partial and a third
        # one overflows the window), and 3 % of everything is lost besides.
        return (not h.flags & FLAG_REPAIR and h.group == 0 and h.esi == 0
                and h.kind != BlockKind.ZERO) or loss.random() < 0.03

    end = run_loop(sender, source, receiver, sink, drop)
    assert receiver.stats.overflow > 0
    assert receiver.result == (True, "")
    assert sink.finished == Finished(True, "")
    assert bytes(sink.image) == image
    assert sink.written >= 10
    assert sender.stats.repair_datagrams > 0
    assert end < 5.0
    ok = sum(1 for r in sender.receivers.values() if r.outcome is Outcome.VERIFIED)
    assert ok == 1


def test_other_sessions_on_the_discovery_group_are_remembered_for_the_user() -> None:
    image = random_image(2)
    first, _ = make_sender(image)
    receiver = new_receiver()
    join_session(first, receiver)
    other = SenderSession(dataclasses.replace(first.config, name="win11"), random.Random(9), 0.0)
    announce = announce_of(other)
    for _ in range(3):
        receiver.receive_datagram(announce, ("10.0.0.9", 9000), 0.0)
    assert list(receiver.other_sessions.values()) == [("win11", "10.0.0.9")]
    assert receiver.session_id == first.session_id


def test_the_receiver_estimates_loss_from_sequence_numbers() -> None:
    image = random_image(4)
    sender, source = make_sender(image)
    receiver = new_receiver()
    join_session(sender, receiver)
    datagrams = first_pass(sender, source)
    for i, dg in enumerate(datagrams):
        if i % 10 != 3:  # lose every tenth
            receiver.receive_datagram(dg, CONTROL, 0.0)
    assert receiver.loss == pytest.approx(0.1, abs=0.02)


def test_a_laptop_that_gives_up_tells_the_sender_why_more_than_once() -> None:
    from protocol.receiver import FAIL_REPORT_COPIES
    from protocol.wire import CAUSE_DISK

    sender, _source = make_sender(random_image(2))
    receiver = new_receiver()
    join_session(sender, receiver)
    receiver.fail("the disk holding /x is full", 1.0, CAUSE_DISK)
    sent = sent_by(receiver, 1.0)
    assert len(sent) == FAIL_REPORT_COPIES > 1
    assert all(isinstance(msg, Done) and not msg.ok and "full" in msg.reason
               and msg.cause == CAUSE_DISK for msg, _ in sent)
    assert receiver.result == (False, "the disk holding /x is full")


def test_the_laptop_names_itself_in_every_join_and_done() -> None:
    host = (("mac", "52:54:00:12:34:56"), ("disk_serial", "NVME0001"))
    image = mixed_image()
    sender, receiver, datagrams = setup(image, rcv={"host": host})
    assert sender.receivers[receiver.receiver_id].host == dict(host)  # its JOIN said so
    feed(receiver, datagrams)
    for ev in events_of(receiver):
        if isinstance(ev, BlockReady):
            receiver.block_stored(ev.index)
    receiver.image_verified(hashlib.sha256(image).digest(), 1.0)
    ((done, _),) = sent_by(receiver, 1.0)
    assert isinstance(done, Done) and done.ok and done.host == dict(host)
    failing = new_receiver(host=host)
    join_session(make_sender(random_image(2))[0], failing)
    failing.fail("the disk is full", 1.0)
    assert all(msg.host == dict(host) for msg, _ in sent_by(failing, 1.0))


# --- resume from an earlier run ------------------------------------------------------------------


def found(sender: SenderSession, now: float = 0.0, **kw: Any) -> ReceiverSession:
    """A receiver that heard the sender's ANNOUNCE (JOINING, JOIN sent)."""
    receiver = new_receiver(now, **kw)
    receiver.receive_datagram(announce_of(sender, now), CONTROL, now)
    assert state(receiver) is ReceiverState.JOINING
    events_of(receiver)
    receiver.datagrams_to_send(now)
    return receiver


def test_resume_before_a_session_is_found_raises() -> None:
    receiver = new_receiver()
    with pytest.raises(LocalProtocolError, match="before SessionFound"):
        receiver.resume([0], 0.0)


def test_resume_marks_blocks_stored_and_skips_junk_indexes() -> None:
    _sender, receiver, _datagrams = setup(random_image(4))
    assert receiver.resume([2, 0, 2, 4, -1, 99], 0.0) == 2
    assert receiver.blocks_done == 2
    assert receiver.resume([0, 1], 0.0) == 1  # 0 was already stored
    assert receiver.blocks_done == 3
    assert state(receiver) is ReceiverState.RECEIVING


def test_resumed_blocks_are_stale_and_never_ready() -> None:
    sender, receiver, datagrams = setup(random_image(4))
    data = data_only(datagrams)
    of1 = [dg for dg in data if (h := header(dg)) and h.block == 1]
    feed(receiver, of1[:5])  # block 1 was partial: resuming it drops the partial copy
    assert receiver.resume([1, 3], 0.0) == 2
    resumed = [dg for dg in data if (h := header(dg)) and h.block in (1, 3)]
    stale, received = receiver.stats.stale, receiver.stats.received
    feed(receiver, resumed)
    assert receiver.stats.stale == stale + len(resumed)
    assert receiver.stats.received == received
    assert events_of(receiver) == []
    feed(receiver, [dg for dg in data if dg not in resumed])
    ready = [e.index for e in events_of(receiver) if isinstance(e, BlockReady)]
    assert ready == [0, 2]
    for index in ready:
        receiver.block_stored(index)
    assert state(receiver) is ReceiverState.VERIFYING
    assert events_of(receiver) == [VerifyImage()]


def test_resuming_the_last_missing_blocks_while_receiving_starts_the_verify() -> None:
    _sender, receiver, datagrams = setup(random_image(2))
    feed(receiver, [dg for dg in data_only(datagrams) if (h := header(dg)) and h.block == 0])
    (ready,) = events_of(receiver)
    assert isinstance(ready, BlockReady)
    receiver.block_stored(0)
    assert receiver.resume([1], 0.0) == 1
    assert state(receiver) is ReceiverState.VERIFYING
    assert events_of(receiver) == [VerifyImage()]
    with pytest.raises(LocalProtocolError):
        receiver.resume([0], 0.0)


def test_resuming_every_block_verifies_once_accepted() -> None:
    sender, _ = make_sender(random_image(3))
    receiver = found(sender)
    assert receiver.resume([0, 1, 2], 0.0) == 3
    assert state(receiver) is ReceiverState.JOINING  # not before the sender took us
    assert events_of(receiver) == []
    receiver.receive_datagram(Accept(sender.session_id, receiver.receiver_id).encode(),
                              CONTROL, 0.1)
    assert state(receiver) is ReceiverState.VERIFYING
    assert events_of(receiver) == [Joined(sender.session_id), VerifyImage()]


# --- REFUSE ---------------------------------------------------------------------------------------


def test_a_refuse_for_us_while_joining_finishes_refused() -> None:
    sender, _ = make_sender(random_image(2))
    receiver = found(sender)
    reason = "the session stopped taking new receivers 5 s after it started"
    receiver.receive_datagram(Refuse(sender.session_id, receiver.receiver_id, reason).encode(),
                              CONTROL, 0.1)
    assert state(receiver) is ReceiverState.FINISHED
    assert receiver.refused and not receiver.sender_lost
    assert receiver.result == (False, reason)
    assert events_of(receiver) == [Finished(False, reason)]
    assert receiver.get_timer() is None


def test_a_refuse_for_another_receiver_is_ignored() -> None:
    sender, _ = make_sender(random_image(2))
    receiver = found(sender)
    other = Refuse(sender.session_id, receiver.receiver_id ^ 1, "not you").encode()
    receiver.receive_datagram(other, CONTROL, 0.1)
    assert state(receiver) is ReceiverState.JOINING
    assert not receiver.refused
    assert events_of(receiver) == []


def test_a_sender_past_its_late_join_window_refuses_a_new_receiver() -> None:
    sender, _ = make_sender(random_image(2), late_join_window=1.0)
    first = new_receiver()
    join_session(sender, first)  # starts the transfer at t = 0
    late = ReceiverSession(ReceiverConfig(), random.Random(8), 2.0)
    late.receive_datagram(announce_of(sender, 2.0), CONTROL, 2.0)
    for dg, _addr in late.datagrams_to_send(2.0):
        sender.receive_datagram(dg, ("10.0.0.12", 5002), 2.0)
    for dg, addr in sender.datagrams_to_send(2.0):
        if addr == ("10.0.0.12", 5002):
            late.receive_datagram(dg, CONTROL, 2.0)
    assert state(late) is ReceiverState.FINISHED
    assert late.refused
    assert late.result is not None and "1 s after it started" in late.result[1]
    assert late.receiver_id not in sender.receivers


# --- image filter and sender restarts -------------------------------------------------------------


def test_image_filter_joins_only_a_session_of_that_image() -> None:
    wanted, _ = make_sender(random_image(2, seed=1))
    other, _ = make_sender(random_image(2, seed=2))
    other.session_id ^= 1
    receiver = new_receiver(image_sha256=wanted.config.image_sha256)
    receiver.receive_datagram(announce_of(other), CONTROL, 0.0)
    assert state(receiver) is ReceiverState.DISCOVERING
    assert events_of(receiver) == [] and receiver.datagrams_to_send(0.0) == []
    receiver.receive_datagram(announce_of(wanted), CONTROL, 0.1)
    assert state(receiver) is ReceiverState.JOINING
    assert receiver.session_id == wanted.session_id


def restarted(sender: SenderSession, seed: int = 9) -> SenderSession:
    """The same image served again: a new session id."""
    again = SenderSession(sender.config, random.Random(seed), 0.0)
    assert again.session_id != sender.session_id
    return again


def test_a_silent_sender_and_a_new_session_of_our_image_is_a_restart() -> None:
    from protocol.choice import RESTART_SILENCE

    sender, receiver, datagrams = setup(random_image(3))
    feed(receiver, data_only(datagrams)[:20], 1.0)  # last heard at t = 1
    announce = announce_of(restarted(sender))
    receiver.receive_datagram(announce, CONTROL, 1.0 + RESTART_SILENCE - 0.01)
    assert state(receiver) is ReceiverState.RECEIVING  # not silent long enough
    assert list(receiver.other_sessions) == [decode_control_untrusted(announce).session_id]
    events_of(receiver)
    receiver.receive_datagram(announce, CONTROL, 1.0 + RESTART_SILENCE)
    assert state(receiver) is ReceiverState.FINISHED
    assert receiver.sender_lost and not receiver.refused
    assert receiver.result is not None and not receiver.result[0]
    assert "restarted" in receiver.result[1]
    (fin,) = events_of(receiver)
    assert isinstance(fin, Finished) and not fin.ok


def test_a_restart_is_noticed_while_joining_too() -> None:
    sender, _ = make_sender(random_image(2))
    receiver = found(sender)
    receiver.receive_datagram(announce_of(restarted(sender)), CONTROL, 3.0)
    assert state(receiver) is ReceiverState.FINISHED
    assert receiver.sender_lost


def test_our_sender_still_talking_is_no_restart() -> None:
    sender, receiver, _datagrams = setup(random_image(3))
    announce = announce_of(restarted(sender))
    receiver.receive_datagram(announce_of(sender, 4.0), CONTROL, 4.0)  # ours, still alive
    receiver.receive_datagram(announce, CONTROL, 5.0)
    assert state(receiver) is ReceiverState.RECEIVING
    assert not receiver.sender_lost


def test_a_new_session_of_another_image_is_never_a_restart() -> None:
    sender, receiver, _datagrams = setup(random_image(3))
    other, _ = make_sender(random_image(3, seed=5))
    other.session_id ^= 1
    receiver.receive_datagram(announce_of(other), CONTROL, 9.0)  # ours silent for 9 s
    assert state(receiver) is ReceiverState.RECEIVING
    assert not receiver.sender_lost
    assert other.session_id in receiver.other_sessions


# --- what STATUS tells the sender about delivery --------------------------------------------------


def heartbeat_then_first_data(receiver: ReceiverSession, datagrams: list[bytes]) -> None:
    receiver.handle_timer(0.0)  # the first heartbeat, before any data
    assert [type(m) for m, _ in sent_by(receiver, 0.0)] == [Status]
    feed(receiver, data_only(datagrams)[:3], 0.2)
    assert receiver.first_data_at == 0.2


def test_the_first_data_brings_the_next_status_forward() -> None:
    from protocol.receiver import FIRST_REPORT_DELAY

    _sender, receiver, datagrams = setup(random_image(3))
    heartbeat_then_first_data(receiver, datagrams)
    when = 0.2 + FIRST_REPORT_DELAY
    assert when < receiver.config.status_interval
    receiver.handle_timer(when)  # (woken by anything at that time)
    ((status, _addr),) = sent_by(receiver, when)
    assert isinstance(status, Status)
    assert status.arrived == 3


def test_the_first_status_comes_soon_after_the_first_data() -> None:
    from protocol.receiver import FIRST_REPORT_DELAY

    _sender, receiver, datagrams = setup(random_image(3))
    receiver.handle_timer(0.0)  # the first heartbeat, before any data
    assert [type(m) for m, _ in sent_by(receiver, 0.0)] == [Status]
    assert receiver.get_timer() == pytest.approx(receiver.config.status_interval)
    feed(receiver, data_only(datagrams)[:3], 0.2)
    assert receiver.first_data_at == 0.2
    status, now = next_status(receiver, 0.2)
    assert now == pytest.approx(0.2 + FIRST_REPORT_DELAY)
    assert now < receiver.config.status_interval
    assert status.arrived == 3


def test_status_carries_arrived_and_overruns() -> None:
    _sender, receiver, datagrams = setup(random_image(3))
    data = data_only(datagrams)
    feed(receiver, data[:10], 0.0)
    feed(receiver, data[:4], 0.0)  # duplicates arrived too
    receiver.overruns = 7
    status, now = next_status(receiver, 0.0)
    assert receiver.stats.data_arrived == 14
    assert (status.arrived, status.overruns) == (14, 7)
    assert status.seq_seen == 9
    receiver.overruns = 9
    feed(receiver, data[10:12], now)
    status, _now = next_status(receiver, now + 0.01)
    assert (status.arrived, status.overruns) == (16, 9)
