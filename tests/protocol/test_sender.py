"""SenderSession driven by hand with explicit ``now``: start-up, first pass, pacing, NAK merging,
DONE handling and junk."""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from typing import Any

import pytest

from netsim.drivers import MemorySource
from protocol.assembly import BlockAssembly, decode_block
from protocol.blockcodec import BlockDecoder, BlockEncoder, BlockKind
from protocol.config import Addr, SenderConfig
from protocol.errors import LocalProtocolError
from protocol.events import (
    BlockWanted,
    Event,
    Outcome,
    ReceiverFinished,
    ReceiverJoined,
    SessionComplete,
    TransferStarted,
)
from protocol.fec import encode_symbols
from protocol.layout import block_layout
from protocol.ratecontrol import PROBE_SLOPE
from protocol.roster import MAX_PER_HOST, REPAIR_CREDIT_START, STATUS_BURST, UNHEARD_DATAGRAMS
from protocol.seal import SEAL_OVERHEAD, Sealer
from protocol.sender import (
    ADAPT_INTERVAL,
    FEC_CAP,
    FRAME_OVERHEAD,
    PACING_QUANTUM,
    SenderSession,
    SenderState,
    _Trigger,
    overhead_for_loss,
)
from protocol.wire import (
    CAUSE_DISK,
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
    session_tag,
)
from tests.protocol.test_assembly import padded_sources

CONTROL: Addr = ("10.0.0.1", 9000)
R1: Addr = ("10.0.0.11", 5001)
R2: Addr = ("10.0.0.12", 5002)
R3: Addr = ("10.0.0.13", 5003)
SYMBOL = 512


def random_image(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def sender_for(image: bytes, now: float = 0.0, **kw: Any) -> tuple[SenderSession, MemorySource]:
    kw.setdefault("block_size", 40_000)  # 40016 encoded bytes: 79 symbols in 2 FEC groups
    kw.setdefault("symbol_size", SYMBOL)
    cfg = SenderConfig(len(image), hashlib.sha256(image).digest(), CONTROL, name="lab", **kw)
    sender = SenderSession(cfg, random.Random(42), now)
    return sender, MemorySource(sender, image)


def events_of(sender: SenderSession, source: MemorySource | None = None,
              now: float = 0.0) -> list[Event]:
    out = []
    while (ev := sender.next_event()) is not None:
        out.append(ev)
        if source is not None:
            source.on_event(ev, now)
    return out


def pump(sender: SenderSession, source: MemorySource, now: float) -> list[tuple[bytes, Addr]]:
    """Feed wanted blocks and send until the session has nothing more for this instant."""
    out: list[tuple[bytes, Addr]] = []
    for _ in range(10_000):
        events_of(sender, source, now)
        batch = sender.datagrams_to_send(now)
        out += batch
        if not batch and sender.next_event() is None:
            return out
    raise AssertionError("the sender never stops sending at one instant")


def join(sender: SenderSession, rid: int, addr: Addr, now: float) -> None:
    sender.receive_datagram(Join(sender.session_id, rid).encode(), addr, now)


def status(sender: SenderSession, rid: int, seq_seen: int, need: Any = (), whole: Any = (),
           addr: Addr = R1, now: float = 0.0, arrived: int | None = None,
           overruns: int = 0) -> None:
    """A STATUS; by default everything up to ``seq_seen`` arrived (no congestion)."""
    msg = Status(sender.session_id, rid, -1.0, 0.0, seq_seen, 0, list(need), list(whole),
                 arrived=seq_seen + 1 if arrived is None else arrived, overruns=overruns)
    sender.receive_datagram(msg.encode(), addr, now)


def data_of(out: list[tuple[bytes, Addr]]) -> list[tuple[DataHeader, bytes]]:
    res = []
    for dg, _addr in out:
        if packet_type_untrusted(dg) == PacketType.DATA:
            hdr, sym = decode_data_untrusted(dg)
            res.append((hdr, bytes(sym)))
    return res


def repairs_of(out: list[tuple[bytes, Addr]]) -> list[tuple[DataHeader, bytes]]:
    return [(h, s) for h, s in data_of(out) if h.flags & FLAG_REPAIR]


def run_until(sender: SenderSession, source: MemorySource, now: float, done: Any,
              limit: float = 60.0) -> tuple[list[tuple[bytes, Addr]], float]:
    """Follow the sender's own timer until ``done()``; everything it sent, and the time."""
    out: list[tuple[bytes, Addr]] = []
    while True:
        sender.handle_timer(now)
        out += pump(sender, source, now)
        if done():
            return out, now
        timer = sender.get_timer()
        assert timer is not None
        now = max(timer, now)
        assert now < limit


def flush(sender: SenderSession, source: MemorySource, now: float,
          span: float = 0.05) -> list[tuple[bytes, Addr]]:
    """Everything sent from ``now`` for ``span`` seconds, following the sender's timer."""
    out: list[tuple[bytes, Addr]] = []
    end = now + span
    while True:
        sender.handle_timer(now)
        out += pump(sender, source, now)
        timer = sender.get_timer()
        if timer is None or timer > end:
            return out
        now = max(now, timer)


def started(image: bytes, receivers: int = 1, **kw: Any) -> tuple[
    SenderSession, MemorySource, list[tuple[bytes, Addr]], float
]:
    """A sender whose first pass is over, with receivers 1..n joined at t=0."""
    sender, source = sender_for(image, **kw)
    for rid, addr in list(zip((1, 2, 3), (R1, R2, R3), strict=True))[:receivers]:
        join(sender, rid, addr, 0.0)
    out, now = run_until(sender, source, 0.0, lambda: sender.first_pass_done_at is not None)
    return sender, source, out, now


def state(sender: SenderSession) -> SenderState:
    return sender.state  # a call, so mypy does not narrow it across session calls


def proactive(k: int, overhead: float) -> int:
    return math.floor(k * overhead + 0.5)


# --- WAITING ---------------------------------------------------------------------------------


def test_announces_on_the_discovery_group() -> None:
    image = random_image(100_000)
    sender, _ = sender_for(image, now=10.0, announce_interval=0.5,
                           waiting_announce_interval=2.0)
    assert sender.get_timer() == 10.0
    sender.handle_timer(10.0)
    ((dg, addr),) = sender.datagrams_to_send(10.0)
    assert addr == sender.config.discovery_addr
    ann = decode_control_untrusted(dg)
    assert isinstance(ann, Announce)
    assert ann.session_id == sender.session_id
    assert (ann.name, ann.image_size, ann.image_sha256) == (
        "lab", len(image), hashlib.sha256(image).digest()
    )
    assert (ann.block_size, ann.symbol_size) == (40_000, SYMBOL)
    assert (ann.data_host, ann.data_port) == sender.config.data_addr
    assert (ann.control_host, ann.control_port) == CONTROL
    assert ann.sender_time == 10.0 and not ann.started
    sent_at = []
    now = 10.0
    while now < 16.0:
        timer = sender.get_timer()
        assert timer is not None and timer > now
        now = timer
        sender.handle_timer(now)
        for dg, addr in sender.datagrams_to_send(now):
            assert addr == sender.config.discovery_addr
            assert isinstance(decode_control_untrusted(dg), Announce)
            sent_at.append(now)
    assert sent_at == [12.0, 14.0, 16.0]
    assert state(sender) is SenderState.WAITING
    assert events_of(sender) == []


def test_join_is_accepted_and_the_transfer_starts_at_min_receivers() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=2)
    join(sender, 1, R1, 0.5)
    ((dg, addr),) = sender.datagrams_to_send(0.5)
    assert addr == R1
    assert decode_control_untrusted(dg) == Accept(sender.session_id, 1)
    assert events_of(sender) == [ReceiverJoined(1, R1)]
    # A repeated JOIN (our ACCEPT was lost) is accepted again, but is no new receiver.
    join(sender, 1, R1, 0.6)
    assert [a for _, a in sender.datagrams_to_send(0.6)] == [R1]
    assert events_of(sender) == []
    assert state(sender) is SenderState.WAITING
    join(sender, 2, R2, 0.7)
    assert state(sender) is SenderState.SENDING
    assert sender.started_at == 0.7
    evs = events_of(sender)
    assert evs[:2] == [ReceiverJoined(2, R2), TransferStarted(2)]
    assert evs[2:] and all(isinstance(e, BlockWanted) for e in evs[2:])
    assert evs[2] == BlockWanted(0)
    out = sender.datagrams_to_send(0.7)
    accept = [decode_control_untrusted(d) for d, a in out if a == R2]
    assert accept == [Accept(sender.session_id, 2)]


def test_the_transfer_starts_at_max_wait_with_one_receiver_and_not_before() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=5, max_wait=3.0)
    sender.handle_timer(0.0)
    join(sender, 1, R1, 1.0)
    now = 1.0
    while True:
        timer = sender.get_timer()
        assert timer is not None and timer <= 3.0
        now = timer
        sender.handle_timer(now)
        if sender.state is not SenderState.WAITING:
            break
        assert now < 3.0
    assert now == 3.0
    assert events_of(sender)[:2] == [ReceiverJoined(1, R1), TransferStarted(1)]


def test_max_wait_without_receivers_waits_for_the_first_one() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=5, max_wait=3.0)
    sender.handle_timer(3.0)
    sender.handle_timer(4.0)
    assert state(sender) is SenderState.WAITING
    join(sender, 1, R1, 4.5)  # the wait is over: the first JOIN starts the transfer
    assert state(sender) is SenderState.SENDING
    assert events_of(sender)[:2] == [ReceiverJoined(1, R1), TransferStarted(1)]


def test_a_state_change_the_table_lacks_is_refused() -> None:
    sender, _ = sender_for(random_image(100_000))
    with pytest.raises(LocalProtocolError, match="all finished"):
        sender._transition(_Trigger.ALL_FINISHED)  # nobody joined: nobody can finish
    assert state(sender) is SenderState.WAITING
    join(sender, 1, R1, 0.0)
    assert state(sender) is SenderState.SENDING
    with pytest.raises(LocalProtocolError, match="start"):
        sender._transition(_Trigger.START)
    assert state(sender) is SenderState.SENDING


def test_spent_max_wait_deadline_does_not_spin_the_timer() -> None:
    # Regression: the spent start deadline stayed in get_timer(), so a driver spun on it.
    sender, _ = sender_for(random_image(100_000), min_receivers=5, max_wait=3.0)
    sender.handle_timer(3.0)
    sender.datagrams_to_send(3.0)
    timer = sender.get_timer()
    assert timer is not None and timer > 3.0


# --- first pass and pacing ---------------------------------------------------------------------


def test_first_pass_is_sources_plus_proactive_repairs_per_group() -> None:
    rng = random.Random(9)
    block = 40_000
    image = (
        rng.randbytes(block)  # RAW, 79 symbols in 2 groups
        + bytes(block)  # ZERO
        + (b"compressible " * 3000)[:12_345]  # ZSTD, short last block
    )
    overhead = 0.5  # big enough that even a one-symbol group gets one
    sender, source = sender_for(image, fec_overhead=overhead)
    join(sender, 1, R1, 0.0)
    out, _now = run_until(sender, source, 0.0, lambda: sender.first_pass_done_at is not None)
    assert all(addr == sender.config.data_addr for dg, addr in out
               if packet_type_untrusted(dg) == PacketType.DATA)
    data = data_of(out)
    assert [h.seq for h, _ in data] == list(range(len(data)))
    assert [h.block for h, _ in data] == sorted(h.block for h, _ in data)
    assert all(h.flags == 0 and h.session_tag == session_tag(sender.session_id) for h, _ in data)
    encoder = BlockEncoder()
    kinds = []
    for index in range(3):
        kind, payload = encoder.encode(image[index * block : (index + 1) * block])
        kinds.append(kind)
        lay = block_layout(len(payload), SYMBOL)
        mine = [(h, s) for h, s in data if h.block == index]
        assert all(h.kind == kind and h.encoded_length == len(payload) for h, _ in mine)
        if kind == BlockKind.ZERO:
            assert [(h.group, h.esi, s) for h, s in mine] == [(0, 0, b"")] * (
                1 + proactive(1, overhead)
            )
            continue
        # Sources come first, in payload order, then the proactive repairs.
        nsrc = lay.source_count
        assert b"".join(s for _, s in mine[:nsrc]) == payload
        assert [(h.group, h.esi) for h, _ in mine[:nsrc]] == [
            (i % lay.group_count, i // lay.group_count) for i in range(nsrc)
        ]
        esis = Counter((h.group, h.esi) for h, _ in mine)
        assert max(esis.values()) == 1
        for g, k in enumerate(lay.group_k):
            reps = [(h.esi, s) for h, s in mine[nsrc:] if h.group == g]
            assert [e for e, _ in reps] == list(range(k, k + proactive(k, overhead)))
            syms = encode_symbols(padded_sources(payload, lay, g), [e for e, _ in reps])
            assert [s for _, s in reps] == syms
        # What went out rebuilds the block.
        asm = BlockAssembly(index, kind, len(payload), SYMBOL)
        for h, s in mine:
            asm.add(h.group, h.esi, memoryview(s))
        raw_len = min(block, len(image) - index * block)
        assert decode_block(asm, raw_len, BlockDecoder()) == image[index * block:][:raw_len]
    assert kinds == [BlockKind.RAW, BlockKind.ZERO, BlockKind.ZSTD]
    assert sender.cursor == 3
    assert sender.stats.first_pass_datagrams == len(data)
    assert sender.stats.repair_datagrams == 0


def test_proactive_repairs_are_the_first_repair_esis() -> None:
    # Regression: they went out as esis k+p..k+2p-1, and k..k+p-1 were never sent.
    sender, _source, out, _now = started(IMAGE, fec_overhead=0.05)
    for block in range(2):
        for g, k in enumerate(K):
            esis = sorted(h.esi for h, _ in data_of(out) if (h.block, h.group) == (block, g))
            assert esis == list(range(k + P[g]))


def loss_report(sender: SenderSession, rid: int, addr: Addr, loss: float) -> None:
    msg = Status(sender.session_id, rid, -1.0, 0.0, 0, 0, loss_ppm=round(loss * 1e6))
    sender.receive_datagram(msg.encode(), addr, 0.0)


def test_proactive_repair_follows_the_worst_receivers_loss() -> None:
    sender, source = sender_for(random_image(600_000), fec_overhead=0.02, min_receivers=3)
    join(sender, 1, R1, 0.0)
    join(sender, 2, R2, 0.0)
    assert sender.fec_overhead == 0.02  # nobody reported yet: the configured start
    loss_report(sender, 1, R1, 0.0)
    assert sender.fec_overhead == 0.0  # a clean LAN pays nothing up front
    loss_report(sender, 2, R2, 0.05)
    loss_report(sender, 1, R1, 0.01)
    assert sender.fec_overhead == overhead_for_loss(0.05)
    assert 0.0526 < sender.fec_overhead < 0.08  # what replaces 5 %, plus some margin
    assert overhead_for_loss(0.9) == FEC_CAP
    # The first pass of every block after that carries that many repairs per group.
    join(sender, 3, R3, 0.0)  # the third: the transfer starts
    out, _now = run_until(sender, source, 0.0, lambda: sender.first_pass_done_at is not None)
    data = data_of(out)
    assert {h.block for h, _ in data} == set(range(sender.nblocks))
    for index in range(sender.nblocks):
        mine = [h for h, _ in data if h.block == index]
        lay = block_layout(mine[0].encoded_length, SYMBOL)
        for g, k in enumerate(lay.group_k):
            esis = {h.esi for h in mine if h.group == g}
            assert esis == set(range(k + proactive(k, sender.fec_overhead)))


def test_fixed_fec_ignores_the_reports() -> None:
    sender, _source = sender_for(random_image(100_000), fec_overhead=0.03, adapt_fec=False)
    join(sender, 1, R1, 0.0)
    loss_report(sender, 1, R1, 0.2)
    assert sender.fec_overhead == 0.03


@pytest.mark.parametrize("rate_bps", [8e6, 40e6])
def test_pacing_keeps_the_rate(rate_bps: float) -> None:
    burst = 8192
    image = random_image(400_000)
    sender, source = sender_for(image, rate_bps=rate_bps, burst_bytes=burst, fec_overhead=0.05)
    join(sender, 1, R1, 0.0)  # starts at t = 0
    biggest = DATA_HEADER_SIZE + SYMBOL + FRAME_OVERHEAD
    quantum = min(burst, rate_bps / 8 * PACING_QUANTUM)  # it waits for a batch's worth
    sent = 0
    now = 0.0
    deadlines_checked = 0
    while sender.first_pass_done_at is None:
        sender.handle_timer(now)
        out = pump(sender, source, now)
        sent += sum(len(dg) + FRAME_OVERHEAD for dg, _ in out
                    if packet_type_untrusted(dg) == PacketType.DATA)
        assert sent <= rate_bps / 8 * now + burst + biggest
        timer = sender.get_timer()
        assert timer is not None
        if sender.first_pass_done_at is None and timer < now + sender.config.sync_interval / 2:
            # Out of tokens: the timer is when the next batch may leave, not earlier.
            assert now < timer <= now + (biggest + quantum) / (rate_bps / 8) + 1e-6
            # Asked earlier (another datagram woke it), it sends once the balance is positive.
            positive_at = timer - quantum / (rate_bps / 8)
            if positive_at > now:
                assert data_of(sender.datagrams_to_send((now + positive_at) / 2)) == []
            deadlines_checked += 1
        now = timer
    assert deadlines_checked > 50
    # It is paced, not throttled: the pass takes about as long as the rate demands.
    assert now == pytest.approx(sent * 8 / rate_bps, rel=0.05, abs=(burst + biggest) * 8 / rate_bps)


# --- NAK merging -----------------------------------------------------------------------------


IMAGE = random_image(80_000, seed=3)  # two RAW blocks, each 79 symbols in groups of 40 + 39
K = (40, 39)
P = (2, 2)  # proactive repairs per group at fec_overhead 0.05


def first_pass_esis(out: list[tuple[bytes, Addr]]) -> set[tuple[int, int, int]]:
    return {(h.block, h.group, h.esi) for h, _ in data_of(out)}


def last_seq(out: list[tuple[bytes, Addr]]) -> int:
    return max(h.seq for h, _ in data_of(out))


def test_nak_gets_exactly_the_fresh_repairs_asked_for() -> None:
    sender, source, out, now = started(IMAGE, fec_overhead=0.05)
    assert block_layout(40_016, SYMBOL).group_k == K
    sent = first_pass_esis(out)
    seen = last_seq(out)
    status(sender, 1, seen, need=[(0, [3, 0])], now=now)
    reps = repairs_of(flush(sender, source, now))
    assert [(h.block, h.group) for h, _ in reps] == [(0, 0)] * 3
    first = [h.esi for h, _ in reps]
    assert len(set(first)) == 3 and all(e >= K[0] + P[0] for e in first)
    assert not {(0, 0, e) for e in first} & sent
    payload = BlockEncoder().encode(IMAGE[:40_000])[1]
    lay = block_layout(len(payload), SYMBOL)
    assert [s for _, s in reps] == encode_symbols(padded_sources(payload, lay, 0), first)
    # The same NAK again, the repairs still in flight (seq_seen is older): nothing more.
    status(sender, 1, seen, need=[(0, [3, 0])], now=now)
    assert repairs_of(flush(sender, source, now)) == []
    # The NAK again after the repairs went by (they were lost): three more, all fresh.
    status(sender, 1, max(h.seq for h, _ in reps), need=[(0, [3, 0])], now=now)
    again = repairs_of(flush(sender, source, now))
    assert [(h.block, h.group) for h, _ in again] == [(0, 0)] * 3
    second = [h.esi for h, _ in again]
    assert len(set(second)) == 3 and not set(second) & set(first)
    assert not {(0, 0, e) for e in second} & sent
    assert sender.stats.repair_datagrams == 6


@pytest.mark.parametrize("sealed", [False, True])
def test_repair_bytes_are_what_the_repairs_take_of_udp_payload(sealed: bool) -> None:
    cfg = SenderConfig(len(IMAGE), hashlib.sha256(IMAGE).digest(), CONTROL, block_size=40_000,
                       symbol_size=SYMBOL, fec_overhead=0.05)
    laptop = Sealer(bytes(32), random.Random(2)) if sealed else None
    sender = SenderSession(cfg, random.Random(42), 0.0,
                           sealer=Sealer(bytes(32), random.Random(1)) if sealed else None)
    source = MemorySource(sender, IMAGE)

    def send(msg: Join | Status) -> None:
        dg = msg.encode()
        sender.receive_datagram(dg if laptop is None else laptop.seal(dg), R1, 0.0)

    def opened(dg: bytes) -> bytes:
        return dg if laptop is None else laptop.open_untrusted(dg)

    send(Join(sender.session_id, 1))
    out, now = run_until(sender, source, 0.0, lambda: sender.first_pass_done_at is not None)
    assert sender.stats.repair_bytes == 0  # the proactive repairs are the first pass's
    seen = max(h.seq for h, _ in data_of([(opened(dg), a) for dg, a in out]))
    send(Status(sender.session_id, 1, -1.0, 0.0, seen, 0, [(0, [3, 2])], [], arrived=seen + 1))
    sent = [dg for dg, _ in flush(sender, source, now)
            if repairs_of([(opened(dg), CONTROL)])]
    assert len(sent) == 5 == sender.stats.repair_datagrams
    assert sender.stats.repair_bytes == sum(len(dg) for dg in sent)
    assert sender.stats.repair_bytes == 5 * (DATA_HEADER_SIZE + SYMBOL
                                             + (SEAL_OVERHEAD if sealed else 0))


def test_partly_in_flight_repairs_are_discounted() -> None:
    sender, source, out, now = started(IMAGE, fec_overhead=0.05)
    seen = last_seq(out)
    status(sender, 1, seen, need=[(1, [2, 4])], now=now)
    reps = repairs_of(flush(sender, source, now))
    assert Counter(h.group for h, _ in reps) == {0: 2, 1: 4}
    # Seen up to the first two repairs; the rest still in flight.
    seqs = sorted(h.seq for h, _ in reps)
    status(sender, 1, seqs[1], need=[(1, [2, 4])], now=now)
    more = repairs_of(flush(sender, source, now))
    past = {h.seq for h, _ in reps if h.seq <= seqs[1]}
    lost = Counter(h.group for h, _ in reps if h.seq in past)
    assert Counter(h.group for h, _ in more) == lost


@pytest.mark.parametrize("between", [False, True])
def test_naks_of_two_receivers_merge_by_maximum(between: bool) -> None:
    sender, source, out, now = started(IMAGE, receivers=2, fec_overhead=0.05)
    seen = last_seq(out)
    status(sender, 1, seen, need=[(0, [2, 0])], addr=R1, now=now)
    reps = repairs_of(flush(sender, source, now)) if between else []
    status(sender, 2, seen, need=[(0, [5, 0])], addr=R2, now=now)
    reps += repairs_of(flush(sender, source, now))
    assert [(h.block, h.group) for h, _ in reps] == [(0, 0)] * 5
    assert len({h.esi for h, _ in reps}) == 5


def test_whole_range_gets_k_symbols_per_group() -> None:
    sender, source, out, now = started(IMAGE, fec_overhead=0.05)
    sent = first_pass_esis(out)
    status(sender, 1, last_seq(out), whole=[(0, 2)], now=now)
    reps = repairs_of(flush(sender, source, now))
    counts = Counter((h.block, h.group) for h, _ in reps)
    assert counts == {(0, 0): K[0], (0, 1): K[1], (1, 0): K[0], (1, 1): K[1]}
    assert not {(h.block, h.group, h.esi) for h, _ in reps} & sent
    assert len({(h.block, h.group, h.esi) for h, _ in reps}) == len(reps)
    # Those repairs alone rebuild both blocks.
    for index in range(2):
        kind, payload = BlockEncoder().encode(IMAGE[index * 40_000 : (index + 1) * 40_000])
        asm = BlockAssembly(index, kind, len(payload), SYMBOL)
        for h, s in reps:
            if h.block == index:
                asm.add(h.group, h.esi, memoryview(s))
        assert decode_block(asm, 40_000, BlockDecoder()) == IMAGE[index * 40_000 :][:40_000]


def test_a_nak_counts_no_more_than_k_per_group_and_odd_layouts_get_the_whole_block() -> None:
    sender, source, out, now = started(IMAGE, fec_overhead=0.05)
    seen = last_seq(out)
    status(sender, 1, seen, need=[(0, [200, 1])], now=now)
    assert Counter(h.group for h, _ in repairs_of(flush(sender, source, now))) == {0: K[0], 1: 1}
    status(sender, 1, seen + 10_000, need=[(1, [1, 1, 1])], now=now)  # three groups: wrong
    assert Counter(h.group for h, _ in repairs_of(flush(sender, source, now))) == {0: 40, 1: 39}


def test_naks_for_blocks_before_their_first_pass_are_ignored() -> None:
    image = random_image(200_000, seed=4)  # 5 blocks
    # A small burst, so the first pass takes a while and a NAK can arrive in the middle of it.
    sender, source = sender_for(image, fec_overhead=0.0, batch_max=16, burst_bytes=64 * 1024)
    join(sender, 1, R1, 0.0)
    status(sender, 1, 10**6, need=[(0, [3, 3])], whole=[(0, 5)])
    out = pump(sender, source, 0.0)
    assert repairs_of(out) == []
    # Now block 0 went out, block 1 and later did not: only block 0 can be repaired.
    now = 0.0
    while sender.first_pass_done_at is None:
        if {h.block for h, _ in data_of(out)} >= {0, 1}:
            break
        now = max(now, sender.get_timer() or now)
        sender.handle_timer(now)
        out += pump(sender, source, now)
    status(sender, 1, last_seq(out), need=[(0, [1, 1]), (3, [3, 3])], whole=[(1, 5)], now=now)
    assert sender.stats.naks_received == 2
    reps = repairs_of(flush(sender, source, now))
    assert {h.block for h, _ in reps} == {0}
    assert len(reps) == 2


# --- DONE ------------------------------------------------------------------------------------


def done(sender: SenderSession, rid: int, addr: Addr, digest: bytes, ok: bool = True,
         reason: str = "", now: float = 1.0) -> None:
    sender.receive_datagram(Done(sender.session_id, rid, ok, digest, reason).encode(), addr, now)


def joined(receivers: int, **kw: Any) -> tuple[SenderSession, bytes]:
    image = random_image(100_000)
    sender, _ = sender_for(image, min_receivers=receivers, **kw)
    for rid, addr in list(zip((1, 2, 3), (R1, R2, R3), strict=True))[:receivers]:
        join(sender, rid, addr, 0.0)
    sender.datagrams_to_send(0.0)
    assert state(sender) is SenderState.SENDING
    events_of(sender)
    return sender, hashlib.sha256(image).digest()


def done_acks(sender: SenderSession, now: float = 1.0) -> list[tuple[DoneAck, Addr]]:
    out = []
    for dg, addr in sender.datagrams_to_send(now):
        msg = decode_control_untrusted(dg)
        if isinstance(msg, DoneAck):
            out.append((msg, addr))
    return out


def test_every_receiver_done_completes_the_session() -> None:
    sender, sha = joined(3)
    sid = sender.session_id
    done(sender, 1, R1, sha)
    assert done_acks(sender) == [(DoneAck(sid, 1), R1)]
    assert events_of(sender) == [ReceiverFinished(1, R1, Outcome.VERIFIED, "")]
    done(sender, 2, R2, sha)
    assert state(sender) is SenderState.SENDING
    done(sender, 3, R3, sha)
    assert done_acks(sender) == [(DoneAck(sid, 2), R2), (DoneAck(sid, 3), R3)]
    assert events_of(sender) == [
        ReceiverFinished(2, R2, Outcome.VERIFIED, ""),
        ReceiverFinished(3, R3, Outcome.VERIFIED, ""),
        SessionComplete(3, 0),
    ]
    assert state(sender) is SenderState.COMPLETE
    assert sender.get_timer() is None
    # A repeated DONE (our ACK was lost) is acknowledged again and changes nothing.
    done(sender, 1, R1, sha, now=2.0)
    assert done_acks(sender, 2.0) == [(DoneAck(sid, 1), R1)]
    assert events_of(sender) == []


def test_wrong_digest_and_failure_reports_count_as_failed() -> None:
    sender, sha = joined(3)
    done(sender, 1, R1, sha)
    done(sender, 2, R2, bytes(32))
    done(sender, 3, R3, b"", ok=False, reason="disk full")
    evs = events_of(sender)
    assert [(e.receiver_id, e.outcome) for e in evs if isinstance(e, ReceiverFinished)] == [
        (1, Outcome.VERIFIED), (2, Outcome.FAILED), (3, Outcome.FAILED)
    ]
    assert [e.ok for e in evs if isinstance(e, ReceiverFinished)] == [True, False, False]
    assert isinstance(evs[1], ReceiverFinished) and "SHA-256" in evs[1].reason
    assert isinstance(evs[2], ReceiverFinished) and evs[2].reason == "disk full"
    assert evs[-1] == SessionComplete(1, 2)
    assert len(done_acks(sender)) == 3


def test_a_laptop_whose_disk_failed_is_a_disk_error_with_its_sentence() -> None:
    sender, _sha = joined(1)
    why = "writing /dev/sda at byte 5 failed with an input/output error: the disk is failing"
    sender.receive_datagram(Done(sender.session_id, 1, False, b"", why,
                                 cause=CAUSE_DISK).encode(), R1, 0.0)
    evs = events_of(sender)
    assert evs[0] == ReceiverFinished(1, R1, Outcome.DISK_ERROR, why)
    assert evs[1] == SessionComplete(0, 1)


HOST = {"mac": "52:54:00:12:34:56", "dmi_serial": "PF2ABCDE", "disk_model": "QEMU NVMe Ctrl",
        "disk_serial": "NVME0001"}


def test_the_roster_keeps_who_each_laptop_says_it_is() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=2)
    sid = sender.session_id
    sender.receive_datagram(Join(sid, 1, host=HOST).encode(), R1, 0.0)
    join(sender, 2, R2, 0.0)  # one that does not say
    # A laptop that failed before its JOIN arrived (a disk too small) is named by its DONE.
    sender.receive_datagram(Done(sid, 3, False, b"", "too small", host={"mac": "m3"}).encode(),
                            R3, 0.0)
    assert {rid: info.host for rid, info in sender.receivers.items()} == {
        1: HOST, 2: {}, 3: {"mac": "m3"}}


def test_ok_with_a_wrong_digest_is_not_ok() -> None:
    sender, sha = joined(1)
    done(sender, 1, R1, sha[:-1] + bytes([sha[-1] ^ 1]), ok=True)
    evs = events_of(sender)
    assert evs[0] == ReceiverFinished(1, R1, Outcome.FAILED,
                                      "its image does not match the SHA-256")
    assert evs[1] == SessionComplete(0, 1)


def test_a_silent_receiver_is_dropped_after_receiver_timeout() -> None:
    sender, sha = joined(2, receiver_timeout=3.0)
    now = 0.0
    finished: list[tuple[float, Event]] = []
    while now < 6.0:
        timer = sender.get_timer()
        assert timer is not None
        now = max(now, min(timer, math.floor(now * 4 + 1) / 4))
        # Receiver 1 keeps talking, receiver 2 is silent.
        status(sender, 1, -1, now=now)
        sender.handle_timer(now)
        sender.datagrams_to_send(now)
        finished += [(now, e) for e in events_of(sender) if isinstance(e, ReceiverFinished)]
    ((when, ev),) = finished
    assert isinstance(ev, ReceiverFinished)
    assert (ev.receiver_id, ev.addr, ev.outcome) == (2, R2, Outcome.DROPPED)
    assert ev.reason == "silent for 3 s: dropped" and not ev.ok
    assert 3.0 < when <= 3.0 + 1.0 + 1e-9  # swept once a second
    # A STATUS from the dropped receiver no longer counts; its DONE does not revive it.
    before = sender.stats.foreign
    status(sender, 2, -1, addr=R2, now=now)
    assert sender.stats.foreign == before + 1
    done(sender, 1, R1, sha, now=now)
    assert events_of(sender)[-1] == SessionComplete(1, 1)


# --- junk ------------------------------------------------------------------------------------


def test_garbled_and_foreign_datagrams_change_nothing() -> None:
    sender, source, out, now = started(IMAGE, fec_overhead=0.05)
    sid = sender.session_id
    events_of(sender)
    stats_before = {k: getattr(sender.stats, k) for k in sender.stats.__slots__}
    junk = [
        b"",
        b"MC",
        b"hello world",
        b"MC\x02\x06\xc1",  # STATUS with a bad msgpack body
        b"MC\x03\x04" + Join(sid, 9).encode()[4:],  # a future protocol version
        b"MC\x02\x01" + bytes(40),  # DATA is not for the sender
        b"MC\x02\x06\x93\x01\x02\x03",  # STATUS that is a list, not a map
        Join(sid, 9, host={f"k{i}": "v" for i in range(9)}).encode(),  # too much of a host
    ]
    foreign = [
        Join(sid ^ 1, 9).encode(),
        Status(sid ^ 1, 1, -1.0, 0.0, 0, 0, [(0, [5, 5])], []).encode(),
        Done(sid ^ 1, 1, True, bytes(32)).encode(),
        Status(sid, 77, -1.0, 0.0, 0, 0, [(0, [5, 5])], []).encode(),  # unknown receiver
    ]
    for dg in junk + foreign:
        sender.receive_datagram(dg, R3, now)
    assert sender.stats.garbled == stats_before["garbled"] + len(junk)
    assert sender.stats.foreign == stats_before["foreign"] + len(foreign)
    assert set(sender.receivers) == {1}
    assert events_of(sender) == []
    assert data_of(flush(sender, source, now)) == []
    assert sender.stats.repair_datagrams == 0
    assert state(sender) is SenderState.SENDING
    # Our own multicast looped back is ignored too.
    sender.handle_timer(now + 1.0)
    for dg, _ in sender.datagrams_to_send(now + 1.0):
        assert isinstance(decode_control_untrusted(dg), Sync | Announce)
        sender.receive_datagram(dg, CONTROL, now + 1.0)
    assert events_of(sender) == []


def test_repairs_made_ahead_by_the_driver_are_the_same_datagrams() -> None:
    """precompute_repairs (a worker thread in the daemon) changes where FEC runs, not what is
    sent: the same datagrams, and none made on the event loop for the first pass."""
    from protocol.blockcache import precompute_repairs

    image = bytes(random.Random(5).randbytes(3 * 40_000 + 100))
    streams = []
    for ahead in (False, True):
        sender = SenderSession(
            SenderConfig(len(image), hashlib.sha256(image).digest(), CONTROL, block_size=40_000,
                         symbol_size=SYMBOL, fec_overhead=0.1, rate_bps=1e12),
            random.Random(1), 0.0,
        )
        sender.receive_datagram(Join(sender.session_id, 1, -1.0, 0.0).encode(), R1, 0.0)
        out: list[bytes] = []
        for _ in range(200):
            while (ev := sender.next_event()) is not None:
                if isinstance(ev, BlockWanted):
                    raw = image[ev.index * 40_000 : (ev.index + 1) * 40_000]
                    kind, payload = BlockEncoder().encode(raw)
                    ready = precompute_repairs(payload, SYMBOL, 0.1) if ahead else None
                    sender.feed_block(ev.index, kind, payload, ready)
            out += [dg for dg, addr in sender.datagrams_to_send(0.0) if addr != R1]
        streams.append((out, sender.stats.repairs_made_inline))
    (plain, inline_plain), (ahead_out, inline_ahead) = streams
    assert ahead_out == plain
    assert inline_plain > 0 and inline_ahead == 0


# --- late-join window --------------------------------------------------------------------------


def control_to(sender: SenderSession, addr: Addr, now: float) -> list[Any]:
    return [decode_control_untrusted(dg) for dg, a in sender.datagrams_to_send(now) if a == addr]


def test_a_new_receiver_after_the_late_join_window_is_refused() -> None:
    sender, _ = sender_for(random_image(100_000), late_join_window=5.0)
    join(sender, 1, R1, 1.0)  # starts the transfer at t = 1: the window ends at t = 6
    assert sender.started_at == 1.0
    events_of(sender)
    join(sender, 2, R2, 5.9)
    assert control_to(sender, R2, 5.9) == [Accept(sender.session_id, 2)]
    assert events_of(sender)[:1] == [ReceiverJoined(2, R2)]
    assert not sender.accepting(6.0)
    join(sender, 3, R3, 6.0)
    (refuse,) = control_to(sender, R3, 6.0)
    assert isinstance(refuse, Refuse)
    assert (refuse.session_id, refuse.receiver_id) == (sender.session_id, 3)
    assert "5 s after it started" in refuse.reason
    assert "\n" not in refuse.reason
    assert set(sender.receivers) == {1, 2}
    assert events_of(sender) == []


def test_a_joined_receivers_repeated_join_after_the_window_is_accepted() -> None:
    sender, _ = sender_for(random_image(100_000), late_join_window=2.0)
    join(sender, 1, R1, 0.0)
    sender.datagrams_to_send(0.0)
    join(sender, 1, R1, 10.0)  # our ACCEPT was lost, long ago
    assert control_to(sender, R1, 10.0) == [Accept(sender.session_id, 1)]
    assert set(sender.receivers) == {1}


def test_without_a_window_late_receivers_are_always_taken() -> None:
    sender, _ = sender_for(random_image(100_000))
    join(sender, 1, R1, 0.0)
    assert sender.accepting(1000.0)
    join(sender, 2, R2, 1000.0)
    assert set(sender.receivers) == {1, 2}


def test_the_session_stays_until_the_late_join_window_ends() -> None:
    image = random_image(100_000)
    sender, source = sender_for(image, late_join_window=5.0)
    join(sender, 1, R1, 0.0)
    done(sender, 1, R1, hashlib.sha256(image).digest(), now=1.0)
    assert state(sender) is SenderState.SENDING  # every receiver is done, but one may come
    now = 1.0
    evs: list[Event] = []
    while state(sender) is SenderState.SENDING:
        assert not any(isinstance(e, SessionComplete) for e in evs)
        timer = sender.get_timer()
        assert timer is not None and timer <= 5.0
        now = max(now, timer)
        sender.handle_timer(now)
        evs = events_of(sender, source, now)
        pump(sender, source, now)
    assert now == 5.0
    assert state(sender) is SenderState.COMPLETE
    assert evs[-1] == SessionComplete(1, 0)
    assert sender.get_timer() is None


def test_a_receiver_joining_within_the_window_keeps_the_session_going() -> None:
    image = random_image(100_000)
    sha = hashlib.sha256(image).digest()
    sender, source = sender_for(image, late_join_window=5.0)
    join(sender, 1, R1, 0.0)
    done(sender, 1, R1, sha, now=1.0)
    join(sender, 2, R2, 4.0)
    flush(sender, source, 4.0, span=2.0)  # past the window's end
    assert state(sender) is SenderState.SENDING
    done(sender, 2, R2, sha, now=7.0)
    assert state(sender) is SenderState.COMPLETE
    assert events_of(sender)[-1] == SessionComplete(2, 0)


# --- stall drop --------------------------------------------------------------------------------


def progress(sender: SenderSession, rid: int, addr: Addr, blocks_done: int, now: float) -> None:
    msg = Status(sender.session_id, rid, -1.0, 0.0, -1, blocks_done, [], [])
    sender.receive_datagram(msg.encode(), addr, now)


def test_a_served_receiver_that_stores_nothing_is_dropped_after_stall_timeout() -> None:
    sender, source, _out, start = started(random_image(400_000), receivers=2, stall_timeout=3.0)
    assert sender.nblocks == 10
    events_of(sender, source, start)
    finished: list[tuple[float, ReceiverFinished]] = []
    now = start
    while now < start + 8.0:
        now += 0.25
        progress(sender, 1, R1, 0, now)  # talks, stores nothing
        progress(sender, 2, R2, min(9, int(now)), now)  # a block a second
        sender.handle_timer(now)
        finished += [(now, e) for e in events_of(sender) if isinstance(e, ReceiverFinished)]
        pump(sender, source, now)
    ((when, ev),) = finished
    assert (ev.receiver_id, ev.outcome) == (1, Outcome.DROPPED)
    assert "stored nothing for 3 s" in ev.reason
    assert start + 3.0 < when <= start + 3.0 + 1.0 + 0.25  # swept once a second
    assert sender.receivers[2].outcome is None


def test_no_stall_drop_before_the_first_pass_is_over() -> None:
    # A slow first pass: the receiver waits its turn, however long that takes.
    sender, source = sender_for(random_image(400_000), stall_timeout=1.0, rate_bps=1e6)
    join(sender, 1, R1, 0.0)
    now = 0.0
    while now < 3.0:
        now += 0.25
        progress(sender, 1, R1, 0, now)
        sender.handle_timer(now)
        pump(sender, source, now)
    assert sender.first_pass_done_at is None
    assert sender.receivers[1].outcome is None


def test_a_receiver_with_every_block_is_not_stalled() -> None:
    sender, source, _out, start = started(IMAGE, stall_timeout=1.0)
    now = start
    while now < start + 4.0:
        now += 0.25
        progress(sender, 1, R1, sender.nblocks, now)  # verifying its image: no progress
        sender.handle_timer(now)
        pump(sender, source, now)
    assert sender.receivers[1].outcome is None


# --- lagging receivers ---------------------------------------------------------------------------


def until_block(sender: SenderSession, source: MemorySource, block: int
                ) -> tuple[list[tuple[bytes, Addr]], float]:
    """Run the sender on its own timer until its first pass reached ``block``."""
    out: list[tuple[bytes, Addr]] = []
    now = 0.0
    while max((h.block for h, _ in data_of(out)), default=0) < block:
        now = max(now, sender.get_timer() or now)
        sender.handle_timer(now)
        out += pump(sender, source, now)
    return out, now


def test_a_lagging_receivers_naks_wait_for_the_end_of_the_first_pass() -> None:
    image = random_image(800_000, seed=6)  # 20 blocks
    sender, source = sender_for(image, min_receivers=2, fec_overhead=0.0, rate_bps=8e6,
                                burst_bytes=8192, adapt_rate=False)
    join(sender, 1, R1, 0.0)
    join(sender, 2, R2, 0.0)
    out, now = until_block(sender, source, 4)
    seen = last_seq(out)
    assert seen >= 256
    status(sender, 1, seen, now=now)  # everything arrived
    now += ADAPT_INTERVAL  # (the sender re-judges the room at most this often)
    status(sender, 2, seen, arrived=seen // 5, addr=R2, now=now)  # a fifth of it
    assert sender.receivers[2].lagging and not sender.receivers[1].lagging
    status(sender, 2, seen, need=[(0, [3, 3])], arrived=seen // 5, addr=R2, now=now)
    status(sender, 1, seen, need=[(1, [2, 0])], now=now)
    during = flush(sender, source, now, span=0.05)
    assert sender.first_pass_done_at is None
    assert any(not h.flags & FLAG_REPAIR for h, _ in data_of(during))  # the pass goes on
    reps = repairs_of(during)
    assert Counter((h.block, h.group) for h, _ in reps) == {(1, 0): 2}  # receiver 1 at once
    after, now = run_until(sender, source, now, lambda: sender.first_pass_done_at is not None)
    after += flush(sender, source, now, span=0.05)
    late = Counter((h.block, h.group) for h, _ in repairs_of(after))
    assert late == {(0, 0): 3, (0, 1): 3}
    first_late = min(h.seq for h, _ in repairs_of(after))
    assert first_late > max(h.seq for h, _ in data_of(after) if not h.flags & FLAG_REPAIR)


def test_a_lone_slow_receivers_naks_are_answered_at_once() -> None:
    image = random_image(800_000, seed=6)
    sender, source = sender_for(image, fec_overhead=0.0, rate_bps=8e6, burst_bytes=8192,
                                adapt_rate=False)
    join(sender, 1, R1, 0.0)
    out, now = until_block(sender, source, 4)
    seen = last_seq(out)
    status(sender, 1, seen, need=[(0, [3, 3])], arrived=seen // 5, now=now)
    assert not sender.receivers[1].lagging
    reps = repairs_of(flush(sender, source, now, span=0.05))
    assert Counter((h.block, h.group) for h, _ in reps) == {(0, 0): 3, (0, 1): 3}
    assert sender.first_pass_done_at is None


# --- rate adaptation ---------------------------------------------------------------------------


def test_heavy_loss_lowers_the_rate_to_what_arrives() -> None:
    sender, _ = sender_for(random_image(400_000), rate_bps=100e6)
    join(sender, 1, R1, 0.0)
    assert sender.rate.rate == 100e6
    status(sender, 1, 1000, arrived=100, now=0.1)  # 90 % lost over 1000 datagrams
    assert sender.rate.rate == pytest.approx(0.1 * 1.1 * 100e6)
    assert sender._pacer.rate == pytest.approx(sender.rate.rate / 8)
    # Clean windows after that probe upwards again, by a twentieth of the ceiling a second.
    status(sender, 1, 2000, arrived=1100, now=0.2)
    assert sender.rate.rate == pytest.approx(0.1 * 1.1 * 100e6 + PROBE_SLOPE * 100e6 * 0.1)


def test_a_lagging_receiver_does_not_slow_the_room() -> None:
    sender, source = sender_for(random_image(400_000), rate_bps=100e6)
    join(sender, 1, R1, 0.0)
    out = pump(sender, source, 0.0)
    join(sender, 2, R2, 0.0)  # mid-stream: its first window begins at its JOIN
    seq = last_seq(out) + 1000
    status(sender, 1, seq, arrived=seq // 2, now=0.1)
    assert sender.receivers[1].delivery.sampled
    assert sender.rate.rate == 100e6  # half of it lost, but receiver 2 is not heard yet
    # Its first STATUS closes a window; the room is judged again a moment later.
    status(sender, 2, seq, arrived=50, addr=R2, now=0.1 + ADAPT_INTERVAL)
    assert sender.receivers[2].delivery.sampled
    assert sender.receivers[2].delivery.fraction < 0.1
    assert sender.receivers[2].lagging and not sender.receivers[1].lagging
    assert sender.rate.rate == pytest.approx(100e6 * 0.5 * 1.1, rel=0.01)  # receiver 1's loss


def test_fixed_rate_ignores_the_losses() -> None:
    sender, _ = sender_for(random_image(400_000), rate_bps=100e6, adapt_rate=False)
    join(sender, 1, R1, 0.0)
    status(sender, 1, 1000, arrived=100, now=0.1)
    assert sender.rate.rate == 100e6
    assert sender._pacer.rate == pytest.approx(100e6 / 8)
    assert sender.receivers[1].delivery.fraction == pytest.approx(0.1)  # still measured


def test_set_rate_lowers_the_ceiling() -> None:
    sender, _ = sender_for(random_image(400_000), rate_bps=100e6)
    join(sender, 1, R1, 0.0)
    sender.set_rate(40e6, 0.05)
    assert (sender.rate.ceiling, sender.rate.rate) == (40e6, 40e6)
    assert sender._pacer.rate == pytest.approx(40e6 / 8)
    status(sender, 1, -1, now=0.1)
    status(sender, 1, 1000, now=0.1)  # clean: probing stays below the new ceiling
    status(sender, 1, 2000, now=0.2)
    assert sender.rate.rate == 40e6


def test_set_rate_above_an_adapted_rate_keeps_it() -> None:
    sender, _ = sender_for(random_image(400_000), rate_bps=100e6)
    join(sender, 1, R1, 0.0)
    status(sender, 1, 1000, arrived=100, now=0.1)
    sender.set_rate(50e6, 0.2)
    assert sender.rate.ceiling == 50e6
    assert sender.rate.rate == pytest.approx(11e6)


def test_a_session_at_its_ceiling_follows_a_higher_one_at_once() -> None:
    sender, _ = sender_for(random_image(400_000), rate_bps=100e6)
    join(sender, 1, R1, 0.0)
    sender.set_rate(33e6, 0.05)  # two more sessions began sending from this machine
    sender.set_rate(100e6, 0.1)  # and ended
    assert (sender.rate.ceiling, sender.rate.rate) == (100e6, 100e6)
    assert sender._pacer.rate == pytest.approx(100e6 / 8)


def test_set_rate_before_the_start_is_the_starting_rate() -> None:
    sender, _ = sender_for(random_image(400_000), rate_bps=100e6)
    sender.set_rate(20e6, 0.0)
    join(sender, 1, R1, 0.0)
    assert sender._pacer.rate == pytest.approx(20e6 / 8)


# --- JOIN with blocks from an earlier run --------------------------------------------------------




# --- one host must not starve the room ------------------------------------------------------


def test_a_status_flood_from_one_receiver_is_cut_to_one_per_millisecond() -> None:
    sender, _ = sender_for(random_image(100_000))
    join(sender, 1, R1, 0.0)
    for i in range(1000):  # 1000 STATUS within 0.1 s
        status(sender, 1, -1, now=i * 0.0001)
    taken = sender.stats.status_received
    assert STATUS_BURST + 95 <= taken <= STATUS_BURST + 100  # the burst, then 1 per ms
    assert sender.stats.limited == 1000 - taken


def test_a_status_with_another_hosts_receiver_id_is_ignored() -> None:
    sender, _ = sender_for(random_image(100_000))
    join(sender, 1, R1, 0.0)
    status(sender, 1, 50, addr=R2, now=0.1)
    assert sender.stats.status_received == 0 and sender.stats.limited == 1
    assert sender.receivers[1].seq_seen == -1
    sender.receive_datagram(Done(sender.session_id, 1, True, sender.config.image_sha256).encode(),
                            R2, 0.2)
    assert sender.receivers[1].outcome is None  # nobody else can report it done


def test_made_up_receivers_are_capped_per_host_and_per_session() -> None:
    sender, _ = sender_for(random_image(100_000), max_receivers=40)
    for rid in range(100):
        join(sender, rid, ("10.0.0.66", 7000 + rid), 0.0)
    assert len(sender.receivers) == MAX_PER_HOST
    for host in range(100):
        join(sender, 1000 + host, (f"10.0.1.{host}", 7000), 0.0)
    assert len(sender.receivers) == 40
    assert sender.stats.limited == 100 - MAX_PER_HOST + 100 - (40 - MAX_PER_HOST)


def test_a_receiver_that_lost_nothing_cannot_push_repairs_ahead_of_the_first_pass() -> None:
    """Credit comes from loss shown in its own STATUS (seq_seen − arrived): claiming every
    block is missing while everything arrived puts the claim after the first pass."""
    sender, source = sender_for(random_image(400_000), fec_overhead=0.0)  # 10 blocks
    join(sender, 1, R1, 0.0)
    join(sender, 2, R2, 0.0)
    out, now = run_until(sender, source, 0.0, lambda: sender._sent_cursor >= 3)
    seq = len(data_of(out)) - 1
    every_group = [(b, [40, 40]) for b in range(3)]
    status(sender, 1, seq, need=every_group, whole=[(0, 3)], now=now)  # lost nothing
    assert not sender.repairs.pending and set(sender.repairs.catchup) == {0, 1, 2}
    assert sender.receivers[1].repair_credit == REPAIR_CREDIT_START
    # Receiver 2 lost 90 datagrams of the 3 blocks' ~240: credit for twice that, served now.
    status(sender, 2, seq, need=[(1, [40, 40])], arrived=seq + 1 - 90, addr=R2, now=now)
    assert 1 in sender.repairs.pending
    assert 1 not in sender.repairs.catchup  # served whole now, so no longer owed later
    assert sender.receivers[2].repair_credit == REPAIR_CREDIT_START + 180 - 79


def test_a_join_flood_from_a_known_receiver_is_limited() -> None:
    """Every ACCEPT costs a signature: repeated JOINs get the STATUS token bucket."""
    sender, _ = sender_for(random_image(100_000))
    for i in range(1000):
        join(sender, 1, R1, i * 0.0001)
    accepts = [dg for dg, _ in sender.datagrams_to_send(0.1)
               if packet_type_untrusted(dg) == PacketType.ACCEPT]
    assert 1 + STATUS_BURST + 95 <= len(accepts) <= 1 + STATUS_BURST + 100
    assert sender.stats.limited == 1000 - len(accepts)


def test_a_receiver_that_hears_nothing_is_set_aside_and_the_room_still_adapts() -> None:
    """A dead link (or a host faking reports with seq_seen −1) must not keep the room
    unjudged: after UNHEARD_DATAGRAMS it is lagging, and the others set the rate."""
    sender, source = sender_for(random_image(4_000_000), rate_bps=100e6)
    join(sender, 1, R1, 0.0)
    join(sender, 2, R2, 0.0)
    out, now = run_until(sender, source, 0.0, lambda: sender._seq >= UNHEARD_DATAGRAMS + 300)
    status(sender, 2, -1, addr=R2, now=now)  # hears nothing at all
    seq = sender._seq - 1
    status(sender, 1, seq // 2, arrived=seq // 4, now=now)  # opens a window...
    status(sender, 1, seq, arrived=seq // 4 + (seq - seq // 2) // 2, now=now + 0.1)  # ...50 %
    assert sender.receivers[2].lagging and not sender.receivers[1].lagging
    assert sender.rate.decreases == 1  # receiver 1's congestion was acted on
