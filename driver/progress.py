"""Progress of a job on this machine alone (a capture, a check, an export) as console updates:
a few a second, with the rate over the last moments and the time left."""

from __future__ import annotations

import time
from collections.abc import Callable

from .console import Console
from .report import RateMeter, TaskSnapshot

INTERVAL = 0.25


class TaskProgress:
    def __init__(self, console: Console, title: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.title = title
        self.clock = clock
        self.started = clock()
        self._next = 0.0
        self._rate = RateMeter(self.started, 0, interval=INTERVAL)

    def update(self, state: str, done: int, total: int, note: str = "") -> None:
        """``done`` of ``total`` bytes; shown at most every INTERVAL, and at the end."""
        now = self.clock()
        if now < self._next and done < total:
            return
        self._next = now + INTERVAL
        rate = self._rate.update(now, done)
        eta = (total - done) * 8 / rate if rate > 0 and total > done else None
        self.console.update(TaskSnapshot(
            title=self.title, state=state, elapsed=now - self.started,
            percent=100.0 * done / total if total else 100.0, done_bytes=done,
            total_bytes=total, rate_bps=rate, eta=eta, note=note))
