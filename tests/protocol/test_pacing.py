from __future__ import annotations

import pytest

from protocol.pacing import TokenBucket


def test_rate_is_kept_over_time() -> None:
    bucket = TokenBucket(rate=1_000_000, burst=10_000, now=0.0)
    now, sent = 0.0, 0
    while now < 10.0:
        while bucket.try_consume(1500, now):
            sent += 1500
        now = bucket.next_time()
    # 10 s at 1 MB/s, plus at most one burst and one datagram of overdraft
    assert 10_000_000 <= sent <= 10_000_000 + 10_000 + 1500


def test_next_time_is_when_tokens_return() -> None:
    bucket = TokenBucket(rate=1000, burst=1000, now=0.0)
    assert bucket.try_consume(1500, 0.0)
    assert not bucket.try_consume(1, 0.0)
    assert bucket.next_time() == pytest.approx(0.5, abs=1e-6)
    assert bucket.try_consume(1, 0.5001)


def test_next_time_can_wait_for_a_batch() -> None:
    bucket = TokenBucket(rate=1000, burst=800, now=0.0)
    assert bucket.try_consume(900, 0.0)  # balance -100
    assert bucket.next_time(500) == pytest.approx(0.6, abs=1e-6)
    assert bucket.next_time(5000) == pytest.approx(0.9, abs=1e-6)  # never beyond the burst


def test_set_rate_applies_from_now() -> None:
    bucket = TokenBucket(rate=1000, burst=100, now=0.0)
    assert bucket.try_consume(200, 0.0)
    bucket.set_rate(100, 0.0)
    assert bucket.next_time() == pytest.approx(1.0, abs=1e-6)


def test_invalid_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
