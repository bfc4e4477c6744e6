"""Link models: what one direction of one link does to a datagram.

``LinkSpec`` is the description (a value); ``Link`` is the stateful model (queue, Gilbert–Elliott
state, drop counters) drawing from the simulator's single ``random.Random``. ``Link.transmit``
runs once per datagram per receiver, so it precomputes flags and keeps a fast path for the common
perfect and loss-only links.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

IP_UDP_HEADER = 28  # IPv4 + UDP: counted against rate_bps, as SenderConfig.rate_bps does


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Two-state bursty loss: the state steps once per datagram, then the datagram is lost with
    the state's probability. Mean burst length is ``1 / p_bad_to_good`` (with loss_in_bad=1).

    A bad state also ends after ``max_burst`` seconds: a burst is an event in time, and with
    sparse traffic (one ANNOUNCE a second) a per-datagram chain would otherwise stretch one
    burst over many seconds, which no real switch does."""

    p_good_to_bad: float
    p_bad_to_good: float
    loss_in_bad: float = 1.0
    loss_in_good: float = 0.0
    max_burst: float = 0.05

    def mean_loss(self) -> float:
        """Stationary loss rate."""
        total = self.p_good_to_bad + self.p_bad_to_good
        bad = self.p_good_to_bad / total if total else 0.0
        return bad * self.loss_in_bad + (1.0 - bad) * self.loss_in_good


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One direction of one link. All defaults: a perfect link (no loss, no delay, no limit)."""

    loss: float = 0.0  # Bernoulli loss probability (applied after burst_loss)
    burst_loss: GilbertElliott | None = None
    delay: float = 0.0  # one-way propagation delay, seconds
    jitter: float = 0.0  # extra uniform 0..jitter seconds per datagram (reorders too)
    reorder: float = 0.0  # probability of an extra ``reorder_delay`` (overtaken by later ones)
    reorder_delay: float = 0.0
    duplicate: float = 0.0  # probability of delivering a second copy
    corrupt: float = 0.0  # probability of flipping 1-3 bits (applied per delivered copy)
    rate_bps: float | None = None  # serialization rate; datagrams queue FIFO behind each other
    queue_bytes: int | None = None  # tail-drop when the backlog would exceed this (needs rate)
    header_bytes: int = IP_UDP_HEADER  # per-datagram wire overhead counted against rate_bps

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate", "corrupt"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if min(self.delay, self.jitter, self.reorder_delay) < 0:
            raise ValueError("delays must be >= 0")
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ValueError("rate_bps must be > 0")
        if self.queue_bytes is not None and self.rate_bps is None:
            raise ValueError("queue_bytes needs rate_bps (an unlimited link never queues)")

    @property
    def loss_only(self) -> bool:
        """Delivery time is always ``now + delay`` (if not lost) and the bytes are untouched."""
        return not (self.jitter or self.reorder or self.duplicate or self.corrupt
                    or self.rate_bps is not None)

    @property
    def perfect(self) -> bool:
        """Never drops, delays by exactly ``delay``, touches nothing."""
        return self.loss_only and not self.loss and self.burst_loss is None


class Link:
    """Stateful model of one link direction. Call order per datagram: ``transmit`` (times), then
    ``maybe_corrupt`` once per delivered copy if ``spec.corrupt``."""

    __slots__ = ("spec", "rng", "delay", "perfect", "loss_only", "lossy", "bernoulli",
                 "corrupts", "busy_until", "_loss", "_ge", "_bad", "_bad_since", "_sec_per_byte",
                 "_bytes_per_sec", "_queue", "_header", "_jitter", "_reorder", "_reorder_delay",
                 "_duplicate", "_corrupt", "dropped_loss", "dropped_queue", "duplicated",
                 "reordered", "corrupted")

    def __init__(self, spec: LinkSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.delay = spec.delay
        self.perfect = spec.perfect
        self.loss_only = spec.loss_only
        self.lossy = bool(spec.loss) or spec.burst_loss is not None
        # Plain Bernoulli loss probability, or -1 if ``lost()`` must run (burst state to step).
        self.bernoulli = spec.loss if spec.burst_loss is None else -1.0
        self.corrupts = bool(spec.corrupt)
        self.busy_until = 0.0  # when the serializer finishes what is already queued
        self._loss = spec.loss
        self._ge = spec.burst_loss
        self._bad = False
        self._bad_since = 0.0
        rate = spec.rate_bps
        self._sec_per_byte = 8.0 / rate if rate else 0.0
        self._bytes_per_sec = rate / 8.0 if rate else 0.0
        self._queue = spec.queue_bytes
        self._header = spec.header_bytes
        self._jitter = spec.jitter
        self._reorder = spec.reorder
        self._reorder_delay = spec.reorder_delay
        self._duplicate = spec.duplicate
        self._corrupt = spec.corrupt
        self.dropped_loss = 0
        self.dropped_queue = 0
        self.duplicated = 0
        self.reordered = 0
        self.corrupted = 0

    def lost(self, now: float) -> bool:
        """Draw the loss decision for one datagram (steps the burst state); counts drops."""
        rng = self.rng
        ge = self._ge
        if ge is not None:
            if self._bad:
                if rng.random() < ge.p_bad_to_good or now - self._bad_since > ge.max_burst:
                    self._bad = False
            elif rng.random() < ge.p_good_to_bad:
                self._bad = True
                self._bad_since = now
            p = ge.loss_in_bad if self._bad else ge.loss_in_good
            if p and rng.random() < p:
                self.dropped_loss += 1
                return True
        if self._loss and rng.random() < self._loss:
            self.dropped_loss += 1
            return True
        return False

    def transmit(self, now: float, size: int) -> list[float]:
        """Delivery times of a ``size``-byte datagram offered at ``now``: [] if dropped, two
        entries if duplicated. Order: queue and serialization, loss, jitter/reorder, duplicate."""
        if self.perfect:
            return [now + self.delay]
        if self._sec_per_byte:
            wire = size + self._header
            busy = self.busy_until
            if busy > now:
                cap = self._queue
                if cap is not None and (busy - now) * self._bytes_per_sec + wire > cap:
                    self.dropped_queue += 1
                    return []
                now = busy
            now += wire * self._sec_per_byte  # the last bit leaves the serializer
            self.busy_until = now
        if self.lossy and self.lost(now):
            return []
        t = now + self.delay
        if self.loss_only:
            return [t]
        rng = self.rng
        first = t + rng.random() * self._jitter if self._jitter else t
        if self._reorder and rng.random() < self._reorder:
            self.reordered += 1
            first += self._reorder_delay
        if self._duplicate and rng.random() < self._duplicate:
            self.duplicated += 1
            return [first, t + rng.random() * self._jitter if self._jitter else t]
        return [first]

    def maybe_corrupt(self, data: bytes) -> bytes:
        """With probability ``spec.corrupt``, a copy of ``data`` with 1-3 distinct bits flipped."""
        rng = self.rng
        if not self._corrupt or not data or rng.random() >= self._corrupt:
            return data
        self.corrupted += 1
        buf = bytearray(data)
        nbits = len(buf) * 8
        for bit in rng.sample(range(nbits), min(rng.randint(1, 3), nbits)):
            buf[bit >> 3] ^= 1 << (bit & 7)
        return bytes(buf)
