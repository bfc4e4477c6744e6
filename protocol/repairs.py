"""Repair queues: the symbols the sender owes its receivers, and the repairs still in flight.

A STATUS (NAK) says how many symbols each group of a block still needs. Repair symbols sent
after the receiver's ``seq_seen`` are still in flight and discounted; the rest is merged with
what is owed by taking the maximum, so one answer serves every receiver at once. What is owed
waits in ``pending``, served before the first pass goes on, or in ``catchup``, served after it.
"""

from __future__ import annotations

import math
from collections import deque


class RepairQueues:
    def __init__(self) -> None:
        self.pending: dict[int, list[int]] = {}  # block → symbols still to send per group
        # Whole blocks a receiver never saw (it joined late, or lost every symbol): sent after
        # the first pass, so a late laptop does not slow down the ones that were on time.
        self.catchup: dict[int, list[int]] = {}
        self.sent_log: dict[int, deque[tuple[int, int]]] = {}  # block → (seq, group) repairs
        self.grew = False  # a count went up since the sender last looked: work to send

    def merge_need(
        self, index: int, group_k: tuple[int, ...], counts: list[int] | None, seq_seen: int,
        whole: bool, defer: bool, credit: float = math.inf,
    ) -> int:
        """Queue what a receiver lacks of block ``index`` (``group_k`` source symbols per
        group); returns the symbols this added to the repairs served before the first pass
        goes on, never more than ``credit`` (beyond it the block waits in the catch-up queue).
        ``defer`` (a lagging receiver) and ``whole`` (a block it never saw) queue it for
        after the first pass, unless it is served now anyway."""
        if whole and index in self.catchup:
            return 0  # already owed in full: a late joiner repeats its ranges in every NAK
        groups = len(group_k)
        if counts is None or len(counts) != groups:
            # Nothing usable arrived, or the receiver built a wrong layout from a corrupted
            # header: send enough for the whole block.
            counts = list(group_k)
        in_flight = [0] * groups
        log = self.sent_log.get(index)
        if log:
            for seq, group in reversed(log):
                if seq <= seq_seen:
                    break
                in_flight[group] += 1
        wants = [min(counts[g], k) - in_flight[g] for g, k in enumerate(group_k)]
        if index in self.pending or not (defer or whole):
            queued = self.pending.get(index) or [0] * len(wants)
            owed = self.catchup.get(index)
            if owed is not None:
                # Someone has part of a block owed whole: no longer a catch-up, all of it is
                # served now if this receiver's credit covers it (else only its own need).
                merged = [max(w, o) for w, o in zip(wants, owed, strict=True)]
                added = sum(max(0, w - q) for w, q in zip(merged, queued, strict=True))
                if added <= credit:
                    del self.catchup[index]
                    self.owe(self.pending, index, merged)
                    return added
            added = sum(max(0, w - q) for w, q in zip(wants, queued, strict=True))
            if added <= credit:
                self.owe(self.pending, index, wants)
                return added
        self.owe(self.catchup, index, wants)
        return 0

    def owe(self, queue: dict[int, list[int]], index: int, wants: list[int]) -> None:
        """Owe at least ``wants`` symbols of each group of block ``index`` in ``queue``."""
        pending = queue.get(index)
        for g, want in enumerate(wants):
            if want > 0:
                if pending is None:
                    pending = queue[index] = [0] * len(wants)
                if want > pending[g]:
                    pending[g] = want
                    self.grew = True

    def log_of(self, index: int) -> deque[tuple[int, int]]:
        """Where the repairs of block ``index`` are logged as they are generated."""
        return self.sent_log.setdefault(index, deque())

    def prune(self, low: int) -> None:
        """Forget repair sends every receiver still counted has seen past (``low``): no
        longer in flight."""
        if not self.sent_log:
            return
        for index in list(self.sent_log):
            log = self.sent_log[index]
            while log and log[0][0] <= low:
                log.popleft()
            if not log:
                del self.sent_log[index]

    def backlog(self) -> int:
        """Symbols owed, in both queues."""
        return sum(sum(c) for queue in (self.pending, self.catchup) for c in queue.values())
