"""Delta re-imaging: a laptop whose disk holds an earlier version of the image receives only
the blocks that changed.

A delta receiver (``mcast-receive --delta``) says so in its JOIN. Once accepted it gets the
used-block map and the whole manifest (the sender multicasts both, paced, when such a receiver
joins), reads every used block of its disk at disk speed and takes those whose SHA-256
matches the signed manifest as stored, as a resumed run takes its journal's. What it still
lacks goes back to the sender as used-map runs, cut into LACKS pieces; the STATUS says how
many pieces there are until a LACKS_ACK with nothing missing confirms the report.

The sender does not start while a delta receiver that joined is still comparing. Its first
pass then sends only what some receiver lacks (``PassPlan``): nothing but the changed blocks
when every laptop compared, everything used as soon as one plain receiver is in the room. A
report that comes after the start (a late joiner) adds what it lacks to the rest of the first
pass; what the pass has already left behind, that laptop asks for whole, as any late joiner
does.
"""

from __future__ import annotations

from .errors import BadPacket
from .usedmap import MAX_PIECES, UsedBlocks, decode_runs_untrusted

MAX_ACKED = 64  # missing pieces one LACKS_ACK names (the STATUS cadence fetches the rest)


class LackAssembly:
    """The sender's copy of one receiver's LACKS report, piece by piece."""

    __slots__ = ("count", "_pieces")

    def __init__(self) -> None:
        self.count = 0  # pieces in all (0: not known yet)
        self._pieces: dict[int, bytes] = {}

    def expect(self, count: int) -> bool:
        """The receiver's STATUS says its report has ``count`` pieces. False if that is
        implausible or contradicts what its pieces said."""
        if not 0 < count <= MAX_PIECES or self.count and count != self.count:
            return False
        self.count = count
        return True

    def add(self, index: int, count: int, data: bytes) -> bool:
        """One piece. False if it does not fit the report."""
        if not self.expect(count) or not 0 <= index < count:
            return False
        self._pieces.setdefault(index, data)
        return True

    @property
    def whole(self) -> bool:
        return bool(self.count) and len(self._pieces) == self.count

    def missing(self) -> list[int]:
        """Pieces still missing, a few."""
        return [i for i in range(self.count) if i not in self._pieces][:MAX_ACKED]

    def runs(self, nblocks: int) -> list[tuple[int, int]]:
        """The runs of the whole report. BadPacket (and the pieces forgotten, to be sent
        again) if they do not decode into the image."""
        encoded = b"".join(self._pieces[i] for i in range(self.count))
        try:
            return decode_runs_untrusted(encoded, nblocks)
        except BadPacket:
            self._pieces.clear()
            raise


class PassPlan:
    """Which blocks the sender's first pass sends: the used ones (all, without a map) and,
    while every receiver in the room compared its disk, only those some receiver lacks."""

    __slots__ = ("used_flags", "flags")

    def __init__(self, nblocks: int, used: UsedBlocks | None) -> None:
        self.used_flags = bytes(used.flags) if used is not None else b"\x01" * nblocks
        self.flags = bytearray(self.used_flags)

    def next_sent(self, index: int) -> int:
        """The first block at or after ``index`` the pass sends (len: none)."""
        found = self.flags.find(1, index)
        return len(self.flags) if found < 0 else found

    def only_lacked(self, reports: list[list[tuple[int, int]]]) -> None:
        """At the start, every receiver compared: send what any of them lacks."""
        self.flags = bytearray(len(self.used_flags))
        for runs in reports:
            self.add_lacked(runs, 0)

    def add_lacked(self, runs: list[tuple[int, int]], cursor: int) -> None:
        """A report taken after the start: what it lacks from ``cursor`` on is sent too."""
        flags, used = self.flags, self.used_flags
        for start, end in runs:
            start = max(start, cursor)
            if start < end:
                # Block flags are 0 or 1: or-ing the spans as integers ors each block's.
                merged = (int.from_bytes(flags[start:end], "little")
                          | int.from_bytes(used[start:end], "little"))
                flags[start:end] = merged.to_bytes(end - start, "little")

    def send_all_from(self, cursor: int) -> None:
        """A receiver that compared nothing joined: from ``cursor`` on, every used block."""
        self.flags[cursor:] = self.used_flags[cursor:]
