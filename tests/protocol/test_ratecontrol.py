"""Delivery windows and the rate policy of ratecontrol.py, without a session."""

from __future__ import annotations

import pytest

from protocol.ratecontrol import (
    HEADROOM,
    LAG_RATIO,
    LOSS_WEIGHT,
    MAX_INCREASE,
    OVERRUN_CUT,
    PROBE_SLOPE,
    WINDOW_DATAGRAMS,
    Delivery,
    RateController,
)

W = WINDOW_DATAGRAMS


def window(fraction: float, overran: bool = False, start: int = 0, sent: int = 1000) -> Delivery:
    """A Delivery whose last window began at ``start``, with that share of ``sent`` arrived."""
    d = Delivery()
    d.begin(start)
    assert d.report(start + sent, round(fraction * sent), 1 if overran else 0)
    return d


# --- Delivery.report ---------------------------------------------------------------------------


def test_no_sample_before_a_window_of_datagrams_was_sent() -> None:
    d = Delivery()
    assert not d.report(100, 10, 0)  # the first report only starts the window
    assert not d.report(100 + W - 1, 10 + W - 1, 0)
    assert not d.sampled and d.used
    assert d.report(100 + W, 10 + W, 0)
    assert d.sampled and not d.used
    assert d.fraction == 1.0 and not d.overran
    assert d.window_start == 100


def test_fraction_is_arrived_delta_over_seq_delta() -> None:
    d = Delivery()
    d.report(1000, 500, 0)
    assert d.report(1400, 800, 0)
    assert d.fraction == pytest.approx(300 / 400)
    assert d.loss == pytest.approx(0.25)


def test_fraction_is_capped_at_one() -> None:
    d = Delivery()
    d.report(0, 0, 0)
    assert d.report(W, 3 * W, 0)  # more arrived than the seq moved (datagrams from before)
    assert d.fraction == 1.0
    assert d.loss == 0.0


def test_the_next_window_starts_where_the_last_closed() -> None:
    d = Delivery()
    d.report(0, 0, 0)
    assert d.report(W, W // 2, 0)
    assert not d.report(2 * W - 1, W // 2 + 10, 0)
    assert d.report(2 * W, W // 2 + W, 0)
    assert d.window_start == W
    assert d.fraction == 1.0


def test_overran_follows_the_overruns_delta_of_the_window() -> None:
    d = Delivery()
    d.report(0, 0, 5)
    assert d.report(W, W, 6)
    assert d.overran
    assert d.report(2 * W, 2 * W, 6)  # no new overrun in this window
    assert not d.overran


def test_a_report_before_any_data_is_ignored() -> None:
    d = Delivery()
    assert not d.report(-1, 0, 0)
    assert d.start_seq == -1
    assert not d.report(-1, 0, 0)
    d.report(10, 0, 0)  # the window starts at the first real seq
    assert not d.report(10 + W - 1, W - 1, 0)
    assert d.report(10 + W, W, 0)
    assert d.window_start == 10


def test_a_report_with_seq_seen_below_zero_does_not_close_an_open_window() -> None:
    d = Delivery()
    d.begin(0)
    assert not d.report(-1, 5 * W, 0)
    assert d.start_seq == 0
    assert d.report(W, W // 4, 0)
    assert d.fraction == pytest.approx(0.25)


@pytest.mark.parametrize("back", ["arrived", "seq"])
def test_a_counter_going_backwards_restarts_the_window(back: str) -> None:
    d = Delivery()
    d.report(1000, 1000, 0)
    seq, arrived = (2000, 10) if back == "arrived" else (500, 2000)
    assert not d.report(seq, arrived, 0)  # e.g. the receiver restarted
    assert not d.sampled
    assert (d.start_seq, d.start_arrived) == (seq, arrived)
    assert not d.report(seq + W - 1, arrived + W - 1, 0)
    assert d.report(seq + W, arrived + W // 2, 0)
    assert d.fraction == pytest.approx(0.5)
    assert d.window_start == seq


def test_begin_makes_the_first_status_yield_a_sample() -> None:
    d = Delivery()
    d.begin(5000)
    assert d.report(5000 + 400, 100, 0)  # counted from zero arrived at seq 5000
    assert d.fraction == pytest.approx(0.25)
    assert d.window_start == 5000
    # Without begin, the same STATUS only starts a window.
    fresh = Delivery()
    assert not fresh.report(5400, 100, 0)


def test_begin_then_an_early_status_waits_for_a_full_window() -> None:
    d = Delivery()
    d.begin(100)
    assert not d.report(100 + W - 1, 10, 0)
    assert not d.sampled
    assert d.report(100 + W, 10, 0)


def test_loss_is_the_first_sample_then_smoothed() -> None:
    d = Delivery()
    d.report(0, 0, 0)
    d.report(1000, 600, 0)
    assert d.loss == pytest.approx(0.4)
    d.report(2000, 1600, 0)  # lossless window
    assert d.loss == pytest.approx(0.4 + LOSS_WEIGHT * (0.0 - 0.4))
    d.report(3000, 1800, 0)  # 80 % lost
    assert d.loss == pytest.approx(0.3 + LOSS_WEIGHT * (0.8 - 0.3))
    assert d.fraction == pytest.approx(0.2)


# --- RateController.classify -------------------------------------------------------------------


def test_classify_is_empty_until_every_receiver_is_sampled() -> None:
    rc = RateController(100e6, 1e6)
    low = window(0.1)
    unsampled = Delivery()
    assert rc.classify([window(1.0), low, unsampled]) == []
    assert not low.lagging  # not judged before the room is heard
    unsampled.begin(0)
    unsampled.report(1000, 1000, 0)
    room = rc.classify([low, unsampled])
    assert room == [unsampled]
    assert low.lagging


def test_lagging_is_below_lag_ratio_of_the_best() -> None:
    rc = RateController(100e6, 1e6)
    best, ok, slow = window(0.9), window(0.9 * LAG_RATIO + 0.01), window(0.9 * LAG_RATIO - 0.01)
    assert rc.classify([best, ok, slow]) == [best, ok]
    assert (best.lagging, ok.lagging, slow.lagging) == (False, False, True)


def test_a_receiver_recovering_is_no_longer_lagging() -> None:
    rc = RateController(100e6, 1e6)
    fast, slow = window(1.0), window(0.2)
    rc.classify([fast, slow])
    assert slow.lagging
    slow.report(2000, 200 + 950, 0)
    assert rc.classify([fast, slow]) == [fast, slow]
    assert not slow.lagging


def test_a_lone_receiver_is_never_lagging() -> None:
    rc = RateController(100e6, 1e6)
    alone = window(0.01)
    assert rc.classify([alone]) == [alone]
    assert not alone.lagging


def test_a_lagging_receiver_alone_again_is_the_room() -> None:
    rc = RateController(100e6, 1e6)
    fast, slow = window(1.0), window(0.1)
    rc.classify([fast, slow])
    assert slow.lagging
    assert rc.classify([slow]) == [slow]  # the fast one finished
    assert not slow.lagging


# --- RateController.decide ---------------------------------------------------------------------


def test_heavy_loss_drops_the_rate_to_what_arrived_plus_headroom() -> None:
    rc = RateController(100e6, 1e6)
    assert rc.decide([window(0.5)], next_seq=7000, now=1.0) == pytest.approx(100e6 * 0.5 * HEADROOM)
    assert rc.rate == pytest.approx(55e6)
    assert rc.changed_at_seq == 7000
    assert (rc.decreases, rc.increases) == (1, 0)


def test_heavy_loss_follows_the_worst_fresh_window() -> None:
    rc = RateController(100e6, 1e6)
    room = [window(0.95), window(0.4), window(0.6, overran=True)]
    assert rc.decide(room, 1, now=1.0) == pytest.approx(100e6 * 0.4 * HEADROOM)


def test_an_overrun_without_heavy_loss_cuts_the_rate() -> None:
    rc = RateController(100e6, 1e6)
    assert rc.decide([window(1.0), window(0.9, overran=True)], 1, now=1.0) == pytest.approx(
        100e6 * OVERRUN_CUT)
    assert rc.decreases == 1


def test_an_overrun_with_heavy_loss_is_answered_as_heavy_loss() -> None:
    rc = RateController(100e6, 1e6)
    assert rc.decide([window(0.2, overran=True)], 1, now=1.0) == pytest.approx(
        100e6 * 0.2 * HEADROOM)


def test_light_loss_is_clean_and_probes_upwards() -> None:
    rc = RateController(100e6, 1e6)
    rc.rate, rc.decided_at = 40e6, 0.0
    # A second after the last decision: a twentieth of the ceiling more.
    assert rc.decide([window(0.8)], 3, now=1.0) == pytest.approx(40e6 + PROBE_SLOPE * 100e6)
    assert (rc.decreases, rc.increases) == (0, 1)
    assert rc.changed_at_seq == 3
    assert rc.decided_at == 1.0
    # After a long quiet spell, at most MAX_INCREASE at once.
    assert rc.decide([window(0.8, start=3)], 4, now=100.0) == pytest.approx(
        (40e6 + PROBE_SLOPE * 100e6) * MAX_INCREASE)


def test_the_first_decision_only_starts_the_clock_for_probing() -> None:
    rc = RateController(100e6, 1e6)
    rc.rate = 40e6
    assert rc.decide([window(1.0)], 3, now=5.0) is None
    assert rc.decided_at == 5.0


def test_sessions_sharing_a_link_converge_on_equal_shares() -> None:
    """Three senders, one 100 Mbit/s link that drops what exceeds it, the same share of each
    sender's datagrams (a FIFO that overflows): starting at 10, 40 and 90 Mbit/s, additive
    probing and proportional cuts leave them within 5 % of a third of the link each."""
    link = 100e6
    senders = [RateController(900e6, 1e6) for _ in range(3)]
    for rc, start in zip(senders, (10e6, 40e6, 90e6), strict=True):
        rc.rate, rc.decided_at = start, 0.0
    seq = 0
    for step in range(1, 400):  # 20 s in decisions 50 ms apart
        total = sum(rc.rate for rc in senders)
        fraction = min(1.0, link / total)
        for rc in senders:
            seq += 1000
            d = Delivery()
            d.begin(seq)
            d.report(seq + 1000, round(fraction * 1000), 0)
            d.loss = 1.0 - fraction  # smoothed over windows like these
            rc.decide([d], seq + 1000, now=step * 0.05)
    rates = [rc.rate for rc in senders]
    assert max(rates) / min(rates) < 1.05, rates


def test_probing_stops_at_the_ceiling() -> None:
    rc = RateController(100e6, 1e6)
    rc.rate, rc.decided_at = 95e6, 0.0
    assert rc.decide([window(1.0)], 1, now=1.0) == 100e6
    assert rc.decide([window(1.0, start=1)], 2, now=1.0) is None  # already at the ceiling
    assert rc.rate == 100e6
    assert rc.increases == 1
    assert rc.changed_at_seq == 1


def test_the_rate_never_goes_below_the_floor() -> None:
    rc = RateController(100e6, 5e6)
    assert rc.decide([window(0.01)], 1, now=1.0) == 5e6
    assert rc.decide([window(0.01, start=1)], 2, now=1.0) is None  # at the floor: unchanged
    assert rc.rate == 5e6
    assert rc.decreases == 1


def test_windows_that_began_before_the_last_change_are_ignored() -> None:
    rc = RateController(100e6, 1e6)
    assert rc.decide([window(0.5, start=0)], next_seq=2000, now=1.0) is not None
    late = window(0.5, start=1999)  # saw the old rate: its loss is already answered
    assert rc.decide([late], 3000, now=1.0) is None
    assert not late.used
    assert rc.rate == pytest.approx(55e6)
    fresh = window(0.5, start=2000)
    assert rc.decide([late, fresh], 4000, now=1.0) == pytest.approx(55e6 * 0.5 * HEADROOM)
    assert fresh.used


def test_each_window_is_used_once() -> None:
    rc = RateController(100e6, 1e6)
    d = window(0.5)
    assert rc.decide([d], 0, now=1.0) is not None
    assert d.used
    assert rc.decide([d], 0, now=1.0) is None
    assert rc.rate == pytest.approx(55e6)
    assert rc.decreases == 1


def test_no_fresh_window_keeps_the_rate() -> None:
    rc = RateController(100e6, 1e6)
    assert rc.decide([], 0, now=1.0) is None
    assert rc.decide([Delivery()], 0, now=1.0) is None  # never sampled: counts as used
    assert rc.rate == 100e6
    assert rc.changed_at_seq == -1


def test_one_congested_moment_is_answered_once_for_the_whole_room() -> None:
    rc = RateController(100e6, 1e6)
    first, second = window(0.5, start=100), window(0.5, start=120)
    assert rc.decide([first], next_seq=1200, now=1.0) == pytest.approx(55e6)
    # The other receiver's report of the same moment arrives later: no second cut.
    assert rc.decide([first, second], next_seq=1300, now=1.0) is None
    assert rc.rate == pytest.approx(55e6)


def test_one_noisy_window_is_not_congestion_once_the_receiver_was_clean() -> None:
    d = window(1.0)
    d.report(2000, 1000 + 600, 0)  # a bursty window: 40 % lost, smoothed only to 10 %
    assert 1.0 - d.fraction > 0.3 and d.loss < 0.3
    rc = RateController(100e6, 1e6)
    rc.rate, rc.decided_at = 50e6, 0.0
    assert rc.decide([d], 0, now=1.0) == pytest.approx(50e6 + PROBE_SLOPE * 100e6)


def test_in_a_large_room_a_few_congested_windows_hold_the_rate() -> None:
    rc = RateController(100e6, 1e6)
    rc.rate = 50e6
    room = [window(1.0) for _ in range(99)] + [window(0.5)]
    assert rc.decide(room, 1, now=1.0) is None  # 2 of 100 are needed: neither cut nor probe
    assert rc.rate == 50e6


def test_in_a_large_room_the_quorum_th_worst_window_sets_the_rate() -> None:
    rc = RateController(100e6, 1e6)
    room = [window(1.0) for _ in range(97)] + [window(0.2), window(0.5), window(0.6)]
    assert rc.decide(room, 1, now=1.0) == pytest.approx(100e6 * 0.5 * HEADROOM)
