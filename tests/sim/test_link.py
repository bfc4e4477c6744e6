"""The link model on its own: rates over many samples, queue timing, burstiness."""

from __future__ import annotations

import random

import pytest

from netsim.link import GilbertElliott, Link, LinkSpec

N = 20_000


def offer(spec: LinkSpec, n: int = N, seed: int = 1, gap: float = 1.0) -> list[list[float]]:
    link = Link(spec, random.Random(seed))
    return [link.transmit(i * gap, 100) for i in range(n)]


def test_perfect_link_delivers_once_after_delay() -> None:
    link = Link(LinkSpec(delay=0.25), random.Random(0))
    assert link.perfect and link.transmit(2.0, 1400) == [2.25]
    assert link.maybe_corrupt(b"abc") == b"abc"


@pytest.mark.parametrize("loss", [0.01, 0.05, 0.2, 0.5])
def test_bernoulli_loss_rate(loss: float) -> None:
    link = Link(LinkSpec(loss=loss), random.Random(3))
    lost = sum(not link.transmit(float(i), 100) for i in range(N))
    assert lost == link.dropped_loss
    assert abs(lost / N - loss) < max(0.01, loss * 0.1)


def test_gilbert_elliott_bursts_and_average() -> None:
    ge = GilbertElliott(p_good_to_bad=0.0625, p_bad_to_good=0.25)
    assert ge.mean_loss() == pytest.approx(0.2)
    lost = [not times for times in offer(LinkSpec(burst_loss=ge), n=5 * N, gap=0.0001)]
    assert abs(sum(lost) / len(lost) - 0.2) < 0.02
    bursts, run = [], 0
    for x in lost:
        if x:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    mean_burst = sum(bursts) / len(bursts)
    assert 3.0 < mean_burst < 5.0  # 1 / p_bad_to_good = 4; Bernoulli 20 % would give 1.25


def test_a_burst_ends_in_time_even_without_traffic() -> None:
    # One datagram a second (ANNOUNCEs before a transfer): every one starts a fresh burst
    # draw, so losses are as independent as the stationary rate says, not seconds-long.
    ge = GilbertElliott(p_good_to_bad=0.0625, p_bad_to_good=0.25, max_burst=0.05)
    lost = [not times for times in offer(LinkSpec(burst_loss=ge), n=N, gap=1.0)]
    longest, run = 0, 0
    for x in lost:
        run = run + 1 if x else 0
        longest = max(longest, run)
    assert longest <= 4


def test_rate_limit_serializes_fifo_and_queue_tail_drops() -> None:
    # 1 Mbit/s: a 972-byte payload + 28 header bytes = 1000 bytes = 8 ms on the wire.
    link = Link(LinkSpec(rate_bps=1e6, queue_bytes=2500, delay=0.001), random.Random(0))
    assert link.transmit(0.0, 972) == [pytest.approx(0.009)]
    assert link.transmit(0.0, 972) == [pytest.approx(0.017)]
    assert link.transmit(0.0, 972) == []  # backlog 2000 + 1000 > 2500
    assert link.dropped_queue == 1
    assert link.transmit(0.008, 972) == [pytest.approx(0.025)]  # the first one has left
    assert link.transmit(1.0, 972) == [pytest.approx(1.009)]  # idle again: no queueing


def test_rate_limit_throughput_matches_rate() -> None:
    link = Link(LinkSpec(rate_bps=8e6), random.Random(0))  # 1 MB/s
    times = [link.transmit(0.0, 972)[0] for _ in range(1000)]
    assert times == sorted(times)
    assert times[-1] == pytest.approx(1.0)


def test_duplicate_rate() -> None:
    deliveries = offer(LinkSpec(duplicate=0.1))
    twice = sum(len(times) == 2 for times in deliveries)
    assert abs(twice / N - 0.1) < 0.01
    assert all(len(times) in (1, 2) for times in deliveries)


def test_reorder_rate_and_overtaking() -> None:
    spec = LinkSpec(delay=0.01, reorder=0.1, reorder_delay=0.5)
    deliveries = offer(spec, gap=0.1)
    late = sum(times[0] > i * 0.1 + 0.011 for i, times in enumerate(deliveries))
    assert abs(late / N - 0.1) < 0.01
    arrival_order = sorted(range(N), key=lambda i: deliveries[i][0])
    assert arrival_order != list(range(N))


def test_jitter_is_bounded() -> None:
    deliveries = offer(LinkSpec(delay=0.01, jitter=0.005))
    extra = [times[0] - i - 0.01 for i, times in enumerate(deliveries)]
    assert 0.0 <= min(extra) < 0.0001 and 0.0049 < max(extra) <= 0.005


def test_corrupt_rate_flips_one_to_three_bits() -> None:
    link = Link(LinkSpec(corrupt=0.05), random.Random(5))
    data = bytes(range(256)) * 4
    changed = 0
    for _ in range(N):
        out = link.maybe_corrupt(data)
        assert len(out) == len(data)
        if out != data:
            changed += 1
            flipped = sum(bin(a ^ b).count("1") for a, b in zip(out, data, strict=True))
            assert 1 <= flipped <= 3
    assert changed == link.corrupted
    assert abs(changed / N - 0.05) < 0.01


def test_same_seed_same_decisions() -> None:
    spec = LinkSpec(loss=0.1, jitter=0.01, duplicate=0.05, reorder=0.05, reorder_delay=0.1)
    assert offer(spec, n=2000, seed=9) == offer(spec, n=2000, seed=9)
    assert offer(spec, n=2000, seed=9) != offer(spec, n=2000, seed=10)


@pytest.mark.parametrize("kwargs", [{"loss": 1.5}, {"delay": -1.0}, {"rate_bps": 0.0},
                                    {"queue_bytes": 1000}])
def test_spec_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LinkSpec(**kwargs)  # type: ignore[arg-type]
