"""Byte ranges of a disk: which parts hold something worth copying.

``Extents`` is an immutable, sorted list of disjoint half-open ranges ``[start, end)`` with the
few operations capture needs (union, clipping to a window, the blocks they touch). Partclone's
domain log, a GNU ddrescue mapfile, parses into one.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator


class MapfileError(ValueError):
    """A ddrescue mapfile (partclone's domain log) that cannot be read."""


class Extents:
    __slots__ = ("_ranges",)

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(r for r in ranges if r[1] > r[0]):
            if start < 0:
                raise ValueError(f"range [{start}, {end}) starts before the disk")
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        self._ranges = tuple(merged)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Extents) and self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(self._ranges)

    def __repr__(self) -> str:
        return f"Extents({list(self._ranges)!r})"

    @property
    def total(self) -> int:
        """Bytes covered."""
        return sum(end - start for start, end in self._ranges)

    @property
    def end(self) -> int:
        """The end of the last range (0 if there is none)."""
        return self._ranges[-1][1] if self._ranges else 0

    def __or__(self, other: Extents) -> Extents:
        return Extents([*self._ranges, *other._ranges])

    def clip(self, start: int, end: int) -> Extents:
        """The parts inside ``[start, end)``."""
        return Extents((max(s, start), min(e, end)) for s, e in self._ranges
                       if s < end and e > start)

    def shift(self, offset: int) -> Extents:
        return Extents((s + offset, e + offset) for s, e in self._ranges)

    def covers(self, start: int, end: int) -> bool:
        """Whether every byte of ``[start, end)`` is inside one range."""
        i = bisect.bisect_right(self._ranges, start, key=lambda r: r[0]) - 1
        return i >= 0 and self._ranges[i][0] <= start and end <= self._ranges[i][1]

    def blocks(self, block_size: int) -> Iterator[int]:
        """Indexes of the ``block_size`` blocks that hold at least one covered byte."""
        last = -1
        for start, end in self._ranges:
            for index in range(max(start // block_size, last + 1), -(-end // block_size)):
                yield index
                last = index

    def within(self, start: int, end: int) -> list[tuple[int, int]]:
        """The covered ranges inside ``[start, end)``, relative to ``start``."""
        return [(s - start, e - start) for s, e in self.clip(start, end)]

    def read_masked(self, read: Callable[[int, int], bytes], start: int,
                    length: int) -> bytes:
        """The ``length`` bytes at ``start``, read with ``read(offset, length)`` where covered
        and zero elsewhere (the old data no filesystem owns): what capture keeps and a raw
        disk's serve sends."""
        pieces = self.within(start, start + length)
        if pieces == [(0, length)]:
            return read(start, length)
        block = bytearray(length)
        for begin, end in pieces:
            block[begin:end] = read(start + begin, end - begin)
        return bytes(block)


def parse_mapfile(text: str, *, status: str = "+") -> Extents:
    """The ranges of a ddrescue mapfile whose status is ``status`` (``+``: finished, which is
    what partclone's domain log calls a used block). Positions and sizes are hexadecimal, as
    ddrescue writes them; the first data line is the current position and is skipped."""
    ranges: list[tuple[int, int]] = []
    seen_position = False
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if not seen_position:
            seen_position = True  # "current_pos current_status [current_pass]"
            continue
        if len(fields) < 3:
            raise MapfileError(f"line {number} of the mapfile is not 'pos size status': {line!r}")
        try:
            pos, size = int(fields[0], 0), int(fields[1], 0)
        except ValueError:
            raise MapfileError(f"line {number} of the mapfile has no numbers: {line!r}") from None
        if pos < 0 or size < 0:
            raise MapfileError(f"line {number} of the mapfile has a negative range: {line!r}")
        if fields[2] == status:
            ranges.append((pos, pos + size))
    if not seen_position:
        raise MapfileError("the mapfile is empty: partclone wrote no domain log")
    return Extents(ranges)
