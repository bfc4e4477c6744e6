"""Roster: taking receivers, their token bucket, credit, GRTT, and the drop decisions."""

from __future__ import annotations

import hashlib

import pytest

from protocol.config import Addr, SenderConfig
from protocol.events import Outcome
from protocol.roster import (
    MAX_PER_HOST,
    REPAIR_CREDIT_MAX,
    REPAIR_CREDIT_START,
    STATUS_BURST,
    UNHEARD_DATAGRAMS,
    Roster,
)
from protocol.sender_stats import SenderStats
from protocol.wire import Status

A: Addr = ("10.0.0.1", 5000)
B: Addr = ("10.0.0.2", 5000)


def roster(**kw: float) -> Roster:
    config = SenderConfig(1 << 20, hashlib.sha256(b"").digest(), ("10.0.0.100", 9000),
                          **kw)  # type: ignore[arg-type]
    return Roster(config, SenderStats())


def status(seq_seen: int, arrived: int, **kw: int) -> Status:
    return Status(1, 1, -1.0, 0.0, seq_seen, 0, arrived=arrived, **kw)  # type: ignore[arg-type]


def test_a_receiver_joining_mid_stream_is_judged_from_then_on() -> None:
    r = roster()
    info = r.add(1, A, 2.0, next_seq=500)
    assert r.get(1) is info and len(r) == 1
    assert (info.join_seq, info.credit_seq) == (500, 499)
    assert info.delivery.start_seq == 500
    early = r.add(2, B, 2.0, next_seq=None)  # its DONE came before its JOIN
    assert (early.join_seq, early.credit_seq, early.delivery.start_seq) == (0, -1, -1)
    assert list(r.receivers) == [1, 2]


def test_the_token_bucket_takes_a_burst_then_one_per_millisecond() -> None:
    r = roster()
    info = r.add(1, A, 0.0, next_seq=0)
    taken = sum(r.allow(info, 0.0) for _ in range(100))
    assert taken == STATUS_BURST
    assert r.stats.limited == 100 - STATUS_BURST
    assert not r.allow(info, 0.0005) and r.allow(info, 0.0011)


def test_another_host_using_a_known_id_is_an_impostor() -> None:
    r = roster()
    info = r.add(1, A, 0.0, next_seq=0)
    assert not r.impostor(info, A) and not r.impostor(None, B)
    assert r.impostor(info, B)
    assert r.stats.limited == 1


def test_one_host_and_the_session_are_capped() -> None:
    r = roster(max_receivers=MAX_PER_HOST + 2)
    for rid in range(MAX_PER_HOST):
        assert not r.crowded(A)
        r.add(rid, (A[0], 6000 + rid), 0.0, next_seq=0)
    assert r.crowded(A) and not r.crowded(B)
    r.add(100, B, 0.0, next_seq=0)
    r.add(101, ("10.0.0.3", 5000), 0.0, next_seq=0)
    assert r.crowded(("10.0.0.4", 5000))


def test_credit_is_twice_what_was_lost_since_the_last_nak_and_capped() -> None:
    r = roster()
    info = r.add(1, A, 0.0, next_seq=100)
    r.earn_credit(info, status(199, 90))  # 100 seen since it joined, 90 arrived
    assert info.repair_credit == REPAIR_CREDIT_START + 20
    r.earn_credit(info, status(150, 0))  # older than the last: nothing
    assert info.repair_credit == REPAIR_CREDIT_START + 20
    r.earn_credit(info, status(299, 190))  # lost nothing more
    assert info.repair_credit == REPAIR_CREDIT_START + 20
    r.earn_credit(info, status(10**6, 190))
    assert info.repair_credit == REPAIR_CREDIT_MAX


def test_a_status_updates_progress_delivery_and_loss() -> None:
    r = roster()
    info = r.add(1, A, 0.0, next_seq=0)
    r.take_status(info, status(99, 100, loss_ppm=50_000), 1.0)
    assert info.reported and info.loss == 0.05  # no window yet: what it said
    assert (info.last_heard, info.progress_at, info.seq_seen) == (1.0, 0.0, 99)
    msg = Status(1, 1, -1.0, 0.0, 1000, 3, arrived=700)
    r.take_status(info, msg, 2.0)
    assert info.progress_at == 2.0 and info.blocks_done == 3
    assert info.loss == pytest.approx(0.3)  # its first window closed: what arrived


def test_grtt_is_the_slowest_active_receivers_rtt_within_bounds() -> None:
    r = roster(grtt_min=0.001, grtt_max=1.0, grtt_initial=0.05)
    a = r.add(1, A, 0.0, next_seq=0)
    b = r.add(2, B, 0.0, next_seq=0)
    r.update_grtt()
    assert r.grtt == 0.05  # nobody measured yet
    r.heard(a, echo=10.0, hold=0.002, now=10.012)
    assert a.rtt == pytest.approx(0.010) and a.last_heard == 10.012
    r.sample_rtt(a, 10.0, 0.0, 10.018)  # smoothed: 7/8 old, 1/8 new
    assert a.rtt == pytest.approx(0.875 * 0.010 + 0.125 * 0.018)
    r.sample_rtt(b, 10.0, 0.0, 15.0)  # beyond grtt_max: a stale echo, ignored
    r.sample_rtt(b, -1.0, 0.0, 15.0)  # no echo
    assert b.rtt is None
    r.sample_rtt(b, 10.0, 0.0, 10.0001)
    r.update_grtt()
    assert r.grtt == pytest.approx(a.rtt)
    r.finish(a, Outcome.VERIFIED, "", 11.0)
    r.update_grtt()
    assert r.grtt == 0.001  # b's 0.1 ms, raised to grtt_min


def test_receivers_that_heard_nothing_of_much_data_are_set_aside() -> None:
    r = roster()
    quiet = r.add(1, A, 0.0, next_seq=0)
    late = r.add(2, B, 0.0, next_seq=UNHEARD_DATAGRAMS)
    gone = r.add(3, ("10.0.0.3", 1), 0.0, next_seq=0)
    r.finish(gone, Outcome.FAILED, "disk full", 0.0)
    room = r.heard_deliveries(UNHEARD_DATAGRAMS)
    assert room == [late.delivery]
    assert quiet.delivery.lagging and quiet.lagging and not late.lagging


def test_the_worst_loss_and_lowest_seq_ignore_lagging_and_finished_receivers() -> None:
    r = roster()
    assert r.worst_loss() is None and r.lowest_seq_seen() is None
    a, b, c = (r.add(i, (f"10.0.0.{i}", 1), 0.0, next_seq=0) for i in range(3))
    for info, loss, seen in ((a, 0.01, 500), (b, 0.5, 100), (c, 0.2, 50)):
        info.reported, info.loss, info.seq_seen = True, loss, seen
    b.delivery.lagging = True
    r.finish(c, Outcome.DROPPED, "silent", 0.0)
    assert r.worst_loss() == 0.01
    assert r.lowest_seq_seen() == 500
    assert r.active_count() == 2


def test_silent_and_stalled_receivers_are_to_drop_with_their_reasons() -> None:
    r = roster(receiver_timeout=10.0, stall_timeout=60.0)
    silent = r.add(1, A, 0.0, next_seq=0)
    stalled = r.add(2, B, 0.0, next_seq=0)
    done = r.add(3, ("10.0.0.3", 1), 0.0, next_seq=0)
    stalled.last_heard = done.last_heard = 70.0
    done.blocks_done = 8
    assert r.to_drop(70.0, served_since=None, nblocks=8, rate_bps=1e6) == [
        (silent, "silent for 10 s: dropped")
    ]  # before the first pass is over, nobody is stalled
    assert r.to_drop(70.0, served_since=5.0, nblocks=8, rate_bps=2.5e6) == [
        (silent, "silent for 10 s: dropped"),
        (stalled, "stored nothing for 60 s although served (it gets 100 % of the datagrams "
                  "at 2.5 Mbit/s): dropped"),
    ]
    assert r.to_drop(70.0, served_since=20.0, nblocks=8, rate_bps=1e6) == [
        (silent, "silent for 10 s: dropped")
    ]  # served only 50 s


def test_the_room_is_finished_once_everyone_has_an_outcome() -> None:
    r = roster()
    assert not r.all_finished()  # nobody joined
    a = r.add(1, A, 0.0, next_seq=0)
    b = r.add(2, B, 0.0, next_seq=0)
    r.finish(a, Outcome.VERIFIED, "", 3.0)
    assert not r.all_finished()
    r.finish(b, Outcome.DROPPED, "silent for 10 s: dropped", 4.0)
    assert r.all_finished() and r.verified_count() == 1
    assert (b.outcome, b.reason, b.finished_at) == (Outcome.DROPPED, "silent for 10 s: dropped",
                                                    4.0)
