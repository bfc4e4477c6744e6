"""Extents and partclone's domain log (a ddrescue mapfile)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disk.extents import Extents, MapfileError, parse_mapfile

# As partclone.extfs 0.3.23 wrote it for a small ext4 filesystem (offset_domain 1 MiB).
DOMAIN_LOG = """\
# Domain logfile created by unset_name v0.3.23
# Source: /dev/loop0
# Offset: 0x00100000
# current_pos  current_status
0x04100000     ?
#      pos        size  status
0x00100000  0x00454800  +
0x00554800  0x003ABC00  ?
0x00900400  0x0007E000  +
0x0097E400  0x03781C00  ?
"""


def test_a_domain_log_gives_its_used_ranges() -> None:
    used = parse_mapfile(DOMAIN_LOG)
    assert list(used) == [(0x100000, 0x554800), (0x900400, 0x97E400)]
    assert used.total == 0x454800 + 0x7E000


@pytest.mark.parametrize("text", ["", "# only comments\n", "0x0 ?\n0x10 0x20\n",
                                  "0x0 ?\n0xZZ 0x20 +\n", "0x0 ?\n-0x10 0x20 +\n"])
def test_a_broken_mapfile_is_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(MapfileError, match="mapfile"):
        parse_mapfile(text)


def test_ranges_merge_and_clip() -> None:
    extents = Extents([(10, 20), (15, 30), (30, 35), (50, 60), (5, 5)])
    assert list(extents) == [(10, 35), (50, 60)]
    assert list(extents.clip(12, 55)) == [(12, 35), (50, 55)]
    assert list(extents.shift(100)) == [(110, 135), (150, 160)]
    assert extents.covers(10, 35) and not extents.covers(30, 40) and not extents.covers(0, 1)
    assert extents.within(30, 55) == [(0, 5), (20, 25)]
    assert (extents | Extents([(35, 50)])) == Extents([(10, 60)])
    assert extents.end == 60 and Extents().end == 0


def test_the_blocks_touched_are_each_listed_once() -> None:
    extents = Extents([(0, 1), (100, 4097), (4100, 4200), (12288, 12289)])
    assert list(extents.blocks(4096)) == [0, 1, 3]


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 500)), max_size=30))
def test_extents_cover_exactly_the_bytes_of_their_ranges(spans: list[tuple[int, int]]) -> None:
    ranges = [(start, start + size) for start, size in spans]
    extents = Extents(ranges)
    truth = {b for start, end in ranges for b in range(start, end)}
    assert extents.total == len(truth)
    assert {b for start, end in extents for b in range(start, end)} == truth
    assert set(extents.blocks(64)) == {b // 64 for b in truth}
    pairs = list(extents)
    assert all(a[1] < b[0] for a, b in zip(pairs, pairs[1:], strict=False))
