from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.fec import MAX_GROUP_K
from protocol.layout import block_count, block_layout, raw_block_length


@given(st.integers(1, 5_000_000), st.integers(1, 9000))
def test_every_source_symbol_has_exactly_one_place(length: int, size: int) -> None:
    lay = block_layout(length, size)
    assert lay.source_count == -(-length // size)
    assert sum(lay.group_k) == lay.source_count
    assert max(lay.group_k) <= MAX_GROUP_K
    assert max(lay.group_k) - min(lay.group_k) <= 1
    if lay.source_count <= 2000:
        places = sorted(
            lay.source_index(g, e) for g in range(lay.group_count) for e in range(lay.group_k[g])
        )
        assert places == list(range(lay.source_count))
    start, end = lay.symbol_span(lay.source_count - 1)
    assert end == length and 0 < end - start <= size


def test_one_mib_block_at_default_symbol_size() -> None:
    lay = block_layout(1 << 20, 1440)
    assert lay.source_count == 729 and lay.group_count == 12


def test_zero_block_is_one_empty_symbol() -> None:
    lay = block_layout(0, 1440)
    assert (lay.source_count, lay.group_count, lay.group_k) == (1, 1, (1,))


def test_image_geometry() -> None:
    assert block_count(0, 1 << 20) == 0
    assert block_count(1, 1 << 20) == 1
    assert block_count((1 << 20) + 1, 1 << 20) == 2
    assert raw_block_length(1, (1 << 20) + 1, 1 << 20) == 1
    assert raw_block_length(0, (1 << 20) + 1, 1 << 20) == 1 << 20
