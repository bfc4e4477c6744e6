"""Token-bucket pacer: how many bytes may leave now, and when the next may."""

from __future__ import annotations


class TokenBucket:
    """``rate`` bytes per second with a bucket ``burst`` bytes deep.

    Tokens may go negative by one datagram: a datagram is sent whenever the balance is
    positive, so no datagram size can stall the pacer.
    """

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def try_consume(self, size: int, now: float) -> bool:
        """Take ``size`` bytes if the balance is positive; False means wait for ``next_time``."""
        self._refill(now)
        if self._tokens <= 0:
            return False
        self._tokens -= size
        return True

    def next_time(self, want: float = 0.0) -> float:
        """The earliest time the balance exceeds ``want`` bytes (``try_consume`` succeeds once
        it exceeds 0). Waiting for more than one datagram's worth lets a sender wake once per
        batch instead of once per datagram."""
        want = min(want, self.burst)
        if self._tokens > want:
            return self._stamp
        return self._stamp + (want - self._tokens) / self.rate + 1e-9

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self.rate = rate
