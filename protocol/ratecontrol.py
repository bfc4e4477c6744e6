"""How fast to send, from what the receivers say reached them.

Each STATUS carries how many data datagrams reached the receiver (``arrived``) and how many its
kernel dropped for lack of socket buffer (``overruns``). Over windows of at least
``WINDOW_DATAGRAMS`` sent, the sender learns each receiver's *delivery*: the share of what it
sent that arrived.

The policy, in the order it is applied:

* **Lagging receivers do not set the pace.** A receiver that gets less than ``LAG_RATIO`` of
  what the best-served one gets sits behind a slower link or CPU than the room. It is marked
  lagging: its losses neither slow the room down nor raise the proactive repair, and its NAKs
  are served after the first pass (see ``SenderSession``), so the others finish at their own
  speed and it completes on the later passes — when it is alone, at a rate it can take.
* **Congestion is heavy loss or an overrun.** Random loss on a LAN is a few percent; losing
  more than ``CONGESTION_LOSS`` means we send faster than some link or receiver takes. Both the
  last window and the receiver's smoothed loss must say so: a single window of a bursty link
  is noisy. In a large room it also takes ``CONGESTION_QUORUM`` of the receivers (one, in a
  classroom of fewer than 50): among a thousand bursty links a few always look congested. The
  rate then drops to what the quorum-th worst of them got, plus ``HEADROOM``. A socket overrun
  without heavy loss (a CPU-starved receiver) cuts the rate by ``OVERRUN_CUT``.
* **Otherwise probe upwards**, by ``PROBE_SLOPE`` of the ceiling per second since the last
  decision (at most ``MAX_INCREASE`` at once), up to the ceiling. Additive in time, not
  multiplicative: sessions that share a link all see its loss, so all cut by the same factor,
  and a multiplicative increase would then keep whatever ratio their rates had (the first to
  start keeping the most). Adding the same amount per second to each shrinks their
  differences at every cut, so they converge on equal shares, as TCP's AIMD does. Per second
  and not per window: a faster sender closes more windows a second.

Windows that began before the last change are ignored, so one congested moment is answered
once, not once per receiver that saw it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

WINDOW_DATAGRAMS = 256  # datagrams sent per delivery sample, at least (±3 % at 5 % loss)
LAG_RATIO = 0.5
CONGESTION_LOSS = 0.3
CONGESTION_QUORUM = 0.02  # share of the room that must look congested (at least one)
HEADROOM = 1.1
OVERRUN_CUT = 0.85
PROBE_SLOPE = 0.05  # share of the ceiling a second probing adds (900M: 45 Mbit/s a second)
MAX_INCREASE = 1.25  # a probe multiplies the rate by at most this (a long quiet spell)
LOSS_WEIGHT = 0.25  # share of the newest window in a receiver's smoothed loss


class Delivery:
    """One receiver's delivery windows, fed from its STATUS messages."""

    __slots__ = ("start_seq", "start_arrived", "start_overruns", "fraction", "overran",
                 "window_start", "loss", "sampled", "used", "lagging")

    def __init__(self) -> None:
        self.start_seq = -1  # seq_seen at the current window's start (-1: not started)
        self.start_arrived = 0
        self.start_overruns = 0
        self.fraction = 1.0  # share of the datagrams of the last window that arrived
        self.overran = False  # its socket overflowed during the last window
        self.window_start = -1  # seq the last complete window began at
        self.loss = 0.0  # smoothed 1 - fraction, for proactive repair
        self.sampled = False
        self.used = True  # the last window was already taken into a rate decision
        self.lagging = False

    def begin(self, seq: int) -> None:
        """The receiver joined when ``seq`` was the next data seq: its first window starts
        there, so its first STATUS already yields a sample."""
        self._restart(seq, 0, 0)

    def report(self, seq_seen: int, arrived: int, overruns: int) -> bool:
        """A STATUS arrived; True if it closed a window."""
        if seq_seen < 0:
            return False  # nothing sent yet
        if self.start_seq < 0 or arrived < self.start_arrived or seq_seen < self.start_seq:
            self._restart(seq_seen, arrived, overruns)
            return False
        sent = seq_seen - self.start_seq
        if sent < WINDOW_DATAGRAMS:
            return False
        self.fraction = min(1.0, (arrived - self.start_arrived) / sent)
        self.overran = overruns > self.start_overruns
        self.window_start = self.start_seq
        loss = 1.0 - self.fraction
        self.loss = loss if not self.sampled else self.loss + LOSS_WEIGHT * (loss - self.loss)
        self.sampled = True
        self.used = False
        self._restart(seq_seen, arrived, overruns)
        return True

    def _restart(self, seq_seen: int, arrived: int, overruns: int) -> None:
        self.start_seq, self.start_arrived, self.start_overruns = seq_seen, arrived, overruns


class RateController:
    """Picks the pacing rate between ``floor`` and ``ceiling`` (bits per second)."""

    def __init__(self, ceiling: float, floor: float) -> None:
        self.ceiling = ceiling
        self.floor = floor
        self.rate = ceiling
        self.changed_at_seq = -1  # first seq sent at the current rate
        self.decided_at: float | None = None  # when fresh windows were last decided on
        self.decreases = 0
        self.increases = 0

    def classify(self, receivers: Iterable[Delivery]) -> list[Delivery]:
        """Mark the lagging receivers; return the others (the room that sets the pace). Empty
        until every receiver reported a window: one laptop's loss says nothing about the room
        before the others are heard (a slow link looks like congestion when alone)."""
        active = list(receivers)
        if not all(d.sampled for d in active):
            return []
        best = max((d.fraction for d in active), default=1.0)
        room = []
        for d in active:
            d.lagging = len(active) > 1 and d.fraction < LAG_RATIO * best
            if not d.lagging:
                room.append(d)
        return room

    def decide(self, room: Iterable[Delivery], next_seq: int, now: float) -> float | None:
        """The new rate from the room's fresh windows, or None to keep the current one."""
        room = list(room)
        fresh = [d for d in room if not d.used and d.window_start >= self.changed_at_seq]
        if not fresh:
            return None
        for d in fresh:
            d.used = True
        since = 0.0 if self.decided_at is None else max(0.0, now - self.decided_at)
        self.decided_at = now
        congested = sorted(d.fraction for d in fresh
                           if 1.0 - d.fraction > CONGESTION_LOSS and d.loss > CONGESTION_LOSS)
        quorum = max(1, math.ceil(CONGESTION_QUORUM * len(room)))
        if len(congested) >= quorum:
            rate = self.rate * congested[quorum - 1] * HEADROOM
        elif congested:
            return None  # a few of a large room: hold, neither cut nor probe
        elif any(d.overran for d in fresh):
            rate = self.rate * OVERRUN_CUT
        else:
            rate = min(self.rate * MAX_INCREASE, self.rate + PROBE_SLOPE * self.ceiling * since)
        rate = min(self.ceiling, max(self.floor, rate))
        if rate == self.rate:
            return None
        if rate < self.rate:
            self.decreases += 1
        else:
            self.increases += 1
        self.rate = rate
        self.changed_at_seq = next_seq
        return rate
