"""BlockCache: asking for blocks once, the LRU, fresh esis across evictions, repair symbols."""

from __future__ import annotations

import random

import pytest

from protocol.blockcache import (
    BlockCache,
    EncodedBlock,
    group_sources,
    initial_esi,
    precompute_repairs,
    proactive_count,
)
from protocol.errors import LocalProtocolError
from protocol.fec import MAX_SYMBOLS_PER_GROUP, encode_symbols
from protocol.layout import block_layout
from protocol.sender_stats import SenderStats

SYMBOL = 512
PAYLOAD = random.Random(1).randbytes(40_016)  # 79 symbols in groups of 40 and 39
K = (40, 39)


def cache(capacity: int = 4, nblocks: int = 10) -> BlockCache:
    return BlockCache(nblocks, SYMBOL, capacity, SenderStats())


def feed(c: BlockCache, index: int, passed: bool = False, fec: float = 0.05,
         repairs: list[dict[int, bytes]] | None = None) -> None:
    c.feed(index, 1, PAYLOAD, repairs, passed, fec)


def test_a_block_is_asked_for_once_until_it_is_fed() -> None:
    c = cache()
    assert c.want(2) and not c.want(2)
    assert c.requested == {2}
    feed(c, 2)
    assert c.requested == set() and 2 in c and not c.want(2)
    assert c.layout_of(2) == block_layout(len(PAYLOAD), SYMBOL) and c.layout_of(3) is None


def test_a_block_outside_the_image_or_encoded_differently_is_refused() -> None:
    c = cache(nblocks=3)
    with pytest.raises(LocalProtocolError, match="outside"):
        feed(c, 3)
    feed(c, 1)
    with pytest.raises(LocalProtocolError, match="differently"):
        c.feed(1, 1, PAYLOAD[:-1], None, False, 0.05)


def test_fresh_esis_start_after_the_sources_and_the_first_passs_repairs() -> None:
    lay = block_layout(len(PAYLOAD), SYMBOL)
    assert initial_esi(lay, passed=False, fec_overhead=0.05) == [40, 39]
    assert initial_esi(lay, passed=True, fec_overhead=0.05) == [42, 41]
    assert proactive_count(40, 0.05) == 2 and proactive_count(39, 0.0) == 0
    c = cache()
    feed(c, 0, passed=True)
    block = c.get(0)
    assert block is not None
    assert [block.fresh_esi(0) for _ in range(3)] == [42, 43, 44]
    block.next_esi[1] = MAX_SYMBOLS_PER_GROUP - 1
    assert [block.fresh_esi(1) for _ in range(2)] == [255, 0]  # round again


def test_a_zero_block_repeats_its_marker() -> None:
    block = EncodedBlock(0, 0, b"", block_layout(0, SYMBOL), [])
    block.next_esi = [1]
    assert [block.fresh_esi(0) for _ in range(3)] == [0, 0, 0]


def test_the_least_recently_used_block_not_in_use_is_evicted() -> None:
    c = cache(capacity=3)
    for index in range(4):
        feed(c, index)
    c.touch(0)
    c.evict(cursor=1, in_use={2}, fec_overhead=0.05)  # 1 is the first pass's, 2 is owed
    assert list(c.blocks) == [1, 2, 0]
    feed(c, 4)
    c.evict(cursor=1, in_use={0, 2, 4}, fec_overhead=0.05)
    assert list(c.blocks) == [1, 2, 0, 4]  # nothing may go: over capacity until one may


def test_an_evicted_block_goes_on_with_its_fresh_esis_when_fed_again() -> None:
    c = cache(capacity=1)
    feed(c, 0, passed=True)
    block = c.get(0)
    assert block is not None
    block.fresh_esi(0)
    feed(c, 1, passed=True)
    c.evict(cursor=5, in_use=(), fec_overhead=0.05)
    assert list(c.blocks) == [1] and c.saved_esi == {0: bytes([43, 41])}
    feed(c, 2, passed=True)
    c.evict(cursor=5, in_use=(), fec_overhead=0.05)  # block 1 sent no repair: nothing kept
    assert list(c.blocks) == [2] and c.saved_esi == {0: bytes([43, 41])}
    feed(c, 0, passed=True)
    again = c.get(0)
    assert again is not None and again.next_esi == [43, 41] and c.saved_esi == {}


def test_repair_symbols_use_the_ready_ones_and_make_the_rest() -> None:
    lay = block_layout(len(PAYLOAD), SYMBOL)
    sources = group_sources(PAYLOAD, lay)
    ready = precompute_repairs(PAYLOAD, SYMBOL, 0.05)
    assert sorted(ready[0]) == list(range(40, 40 + 2 + 4))  # proactive, then 4 for NAKs
    assert ready[0][41] == encode_symbols(sources[0], [41])[0]
    c = cache()
    feed(c, 0, repairs=ready)
    block = c.get(0)
    assert block is not None
    syms = c.repair_symbols(block, 1, [39, 100, 40])
    assert syms == encode_symbols(sources[1], [39, 100, 40])
    assert c.stats.repairs_made_inline == 1  # esi 100 was not made ahead
    assert 39 not in block.ready[1]  # a ready symbol is sent once
    assert precompute_repairs(b"", SYMBOL, 0.05) == []
    assert [sorted(g) for g in precompute_repairs(PAYLOAD, SYMBOL, 0.0)] == [[], []]
