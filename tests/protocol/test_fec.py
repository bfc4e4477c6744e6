from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.fec import MAX_GROUP_K, MAX_SYMBOLS_PER_GROUP, decode_symbols, encode_symbols


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[bytes], list[int]]:
    """A group's sources and the ids of k distinct symbols that survived, mixed source/repair."""
    k = draw(st.integers(1, MAX_GROUP_K))
    size = draw(st.integers(1, 200))
    sources = [draw(st.binary(min_size=size, max_size=size)) for _ in range(k)]
    esis = draw(
        st.lists(st.integers(0, MAX_SYMBOLS_PER_GROUP - 1), min_size=k, max_size=k, unique=True)
    )
    return sources, esis


@given(groups(), st.booleans())
@settings(max_examples=300)
def test_any_k_symbols_rebuild_the_group(
    group: tuple[list[bytes], list[int]], as_views: bool
) -> None:
    sources, esis = group
    k = len(sources)
    inputs: list[bytes | memoryview] = [memoryview(s) if as_views else s for s in sources]
    symbols = encode_symbols(inputs, esis)
    assert all(type(s) is bytes and len(s) == len(sources[0]) for s in symbols)
    for esi, sym in zip(esis, symbols, strict=True):
        if esi < k:
            assert sym == sources[esi]
    received: list[bytes | memoryview] = [memoryview(s) if as_views else s for s in symbols]
    decoded = decode_symbols(k, received, esis)
    assert decoded == sources
    assert all(type(s) is bytes for s in decoded)


def test_repair_symbols_are_deterministic() -> None:
    rng = random.Random(7)
    sources = [rng.randbytes(100) for _ in range(20)]
    esis = list(range(20, 256))
    first = encode_symbols(sources, esis)
    assert encode_symbols([bytes(s) for s in sources], esis) == first
    # Asking for one repair alone gives the same bytes as asking for it among others.
    assert encode_symbols(sources, [123]) == [first[123 - 20]]
    assert len(set(first)) == len(first)


def test_k_equals_one() -> None:
    src = [b"hello"]
    repairs = encode_symbols(src, [1, 2, 255])
    for esi, sym in zip([1, 2, 255], repairs, strict=True):
        assert decode_symbols(1, [sym], [esi]) == src
    assert decode_symbols(1, [b"hello"], [0]) == src


def test_empty_symbols_for_zero_blocks() -> None:
    # A ZERO block is one group of one empty symbol (protocol/layout.py).
    assert encode_symbols([b""], [0, 1, 7]) == [b"", b"", b""]
    assert decode_symbols(1, [b""], [9]) == [b""]


def test_decode_does_not_reorder_the_callers_list() -> None:
    sources = [bytes([i]) * 8 for i in range(4)]
    esis = [3, 200, 1, 0]
    symbols: list[bytes | memoryview] = list(encode_symbols(sources, esis))
    before = list(symbols)
    assert decode_symbols(4, symbols, esis) == sources
    assert symbols == before


def test_no_symbols_requested() -> None:
    assert encode_symbols([b"ab", b"cd"], []) == []


def test_shared_coders_across_threads() -> None:
    rng = random.Random(1)
    cases = []
    for _ in range(64):
        k = rng.randint(1, MAX_GROUP_K)
        sources = [rng.randbytes(1400) for _ in range(k)]
        cases.append((sources, rng.sample(range(MAX_SYMBOLS_PER_GROUP), k)))

    def roundtrip(case: tuple[list[bytes], list[int]]) -> bool:
        sources, esis = case
        symbols: list[bytes | memoryview] = list(encode_symbols(sources, esis))
        return decode_symbols(len(sources), symbols, esis) == sources

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(roundtrip, cases * 4))


@pytest.mark.parametrize(
    ("sources", "esis"),
    [
        ([], [0]),  # k = 0
        ([b"x"] * (MAX_GROUP_K + 1), [0]),  # k too large
        ([b"ab", b"c"], [0]),  # unequal lengths
        ([b"", b"c"], [2]),  # unequal lengths, zfec itself misses this one
        ([b"ab"], [256]),  # esi out of range
        ([b"ab"], [-1]),
    ],
)
def test_encode_rejects_bad_arguments(sources: list[bytes], esis: list[int]) -> None:
    with pytest.raises(ValueError):
        encode_symbols(sources, esis)


@pytest.mark.parametrize(
    ("k", "symbols", "esis"),
    [
        (0, [], []),
        (MAX_GROUP_K + 1, [b"x"] * (MAX_GROUP_K + 1), list(range(MAX_GROUP_K + 1))),
        (2, [b"ab"], [0]),  # too few
        (2, [b"ab", b"cd", b"ef"], [0, 1, 2]),  # too many
        (2, [b"ab", b"cd"], [0]),  # esis don't match symbols
        (2, [b"ab", b"cd"], [1, 1]),  # duplicate source esi (zfec would spin forever)
        (2, [b"ab", b"cd"], [9, 9]),  # duplicate repair esi
        (2, [b"ab", b"cd"], [0, 256]),
        (2, [b"ab", b"cd"], [-1, 0]),
        (2, [b"ab", b"c"], [0, 1]),
        (2, [b"", b"c"], [0, 1]),
    ],
)
def test_decode_rejects_bad_arguments(k: int, symbols: list[bytes], esis: list[int]) -> None:
    with pytest.raises(ValueError):
        decode_symbols(k, list(symbols), esis)
