"""BlockAssembly + decode_block: symbols cut exactly as SenderSession cuts them, delivered in any
order with losses made good by repair symbols, rebuild the raw block; bad input is refused."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.assembly import (
    ADD_BAD,
    ADD_COMPLETE,
    ADD_DUPLICATE,
    ADD_STORED,
    BlockAssembly,
    decode_block,
)
from protocol.blockcodec import BlockCorrupt, BlockDecoder, BlockEncoder, BlockKind
from protocol.fec import MAX_GROUP_K, MAX_SYMBOLS_PER_GROUP, encode_symbols
from protocol.layout import BlockLayout, block_layout

Symbol = tuple[int, int, bytes]  # (group, esi, bytes)


def make_raw(kind: str, size: int, rng: random.Random) -> bytes:
    if kind == "random":
        return rng.randbytes(size)
    if kind == "compressible":
        words = [b"alpha ", b"beta ", b"gamma ", b"delta ", rng.randbytes(3)]
        out = bytearray()
        while len(out) < size:
            out += rng.choice(words)
        return bytes(out[:size])
    return bytes(size)


def padded_sources(payload: bytes, lay: BlockLayout, group: int) -> list[bytes]:
    """The group's source symbols, the last one zero-padded, as the sender hands them to FEC."""
    out = []
    for esi in range(lay.group_k[group]):
        start, end = lay.symbol_span(lay.source_index(group, esi))
        out.append(payload[start:end].ljust(lay.symbol_size, b"\0"))
    return out


def source_symbols(payload: bytes, lay: BlockLayout) -> list[Symbol]:
    """Source symbol i → group i % G, esi i // G; the last one short, as on the wire."""
    if lay.encoded_length == 0:
        return [(0, 0, b"")]
    size, groups = lay.symbol_size, lay.group_count
    return [
        (i % groups, i // groups, payload[i * size : (i + 1) * size])
        for i in range(lay.source_count)
    ]


def repair_symbols(payload: bytes, lay: BlockLayout, group: int, esis: list[int]) -> list[Symbol]:
    syms = encode_symbols(padded_sources(payload, lay, group), esis)
    return [(group, esi, sym) for esi, sym in zip(esis, syms, strict=True)]


def lossy_delivery(payload: bytes, lay: BlockLayout, rng: random.Random) -> list[Symbol]:
    """Exactly k symbols per group: random sources lost, each replaced by a random repair."""
    if lay.encoded_length == 0:
        return [(0, 0, b"")]
    sources = source_symbols(payload, lay)
    kept: list[Symbol] = []
    for g, k in enumerate(lay.group_k):
        mine = [s for s in sources if s[0] == g]
        lost = rng.sample(range(k), rng.choice([0, 1, rng.randint(0, k), k]))
        kept += [s for s in mine if s[1] not in lost]
        kept += repair_symbols(payload, lay, g, rng.sample(range(k, MAX_SYMBOLS_PER_GROUP),
                                                           len(lost)))
    rng.shuffle(kept)
    return kept


def assemble(kind: int, payload: bytes, symbol_size: int, symbols: list[Symbol]) -> BlockAssembly:
    asm = BlockAssembly(7, kind, len(payload), symbol_size)
    results = [asm.add(g, esi, memoryview(sym)) for g, esi, sym in symbols]
    assert results[:-1] == [ADD_STORED] * (len(symbols) - 1)
    assert results[-1] == ADD_COMPLETE
    assert asm.missing() == [0] * asm.layout.group_count
    return asm


@given(
    kind=st.sampled_from(["random", "compressible", "zero"]),
    size=st.integers(1, 64 * 1024),
    symbol_size=st.sampled_from([512, 500, 333]),
    rng=st.randoms(use_true_random=False),
)
@settings(max_examples=50, deadline=None)
def test_any_order_any_losses_rebuild_the_block(
    kind: str, size: int, symbol_size: int, rng: random.Random
) -> None:
    raw = make_raw(kind, size, rng)
    block_kind, payload = BlockEncoder().encode(raw)
    lay = block_layout(len(payload), symbol_size)
    asm = assemble(block_kind, payload, symbol_size, lossy_delivery(payload, lay, rng))
    assert decode_block(asm, len(raw), BlockDecoder()) == raw


@pytest.mark.parametrize(
    ("kind", "size", "expected"),
    [
        ("random", 64 * 1024, BlockKind.RAW),  # several FEC groups
        ("random", 64 * 1024 - 17, BlockKind.RAW),  # short last symbol
        ("random", 100, BlockKind.RAW),  # a single short symbol
        ("compressible", 50_000, BlockKind.ZSTD),
        ("zero", 65_536, BlockKind.ZERO),
        ("zero", 123, BlockKind.ZERO),  # a short last block of zeros
    ],
)
def test_each_block_kind_survives_heavy_loss(kind: str, size: int, expected: BlockKind) -> None:
    rng = random.Random(size)
    raw = make_raw(kind, size, rng)
    block_kind, payload = BlockEncoder().encode(raw)
    assert block_kind == expected
    lay = block_layout(len(payload), 512)
    if len(payload) == 64 * 1024 + 16:
        assert lay.group_count == 3 and max(lay.group_k) <= MAX_GROUP_K
    if block_kind == BlockKind.ZERO:
        symbols = [(0, 0, b"")]
    else:
        # Lose every source of group 0 and the last (short) source of the block.
        sources = source_symbols(payload, lay)
        last = sources[-1]
        symbols = [s for s in sources if s[0] != 0 and s is not last]
        symbols += repair_symbols(payload, lay, 0, list(range(150, 150 + lay.group_k[0])))
        if last[0] != 0:
            symbols += repair_symbols(payload, lay, last[0], [255])
        random.Random(1).shuffle(symbols)
    asm = assemble(block_kind, payload, 512, symbols)
    assert decode_block(asm, size, BlockDecoder()) == raw


def test_no_loss_needs_no_fec() -> None:
    raw = make_raw("random", 10_000, random.Random(3))
    kind, payload = BlockEncoder().encode(raw)
    asm = assemble(kind, payload, 512, source_symbols(payload, block_layout(len(payload), 512)))
    assert asm.repairs == [{}]
    assert decode_block(asm, len(raw), BlockDecoder()) == raw


# --- refusals --------------------------------------------------------------------------------


def encoded(size: int = 40_000, symbol_size: int = 512) -> tuple[bytes, BlockLayout, bytes]:
    raw = make_raw("random", size, random.Random(size))
    kind, payload = BlockEncoder().encode(raw)
    assert kind == BlockKind.RAW
    return raw, block_layout(len(payload), symbol_size), payload


def test_duplicates_are_reported() -> None:
    _raw, lay, payload = encoded()
    asm = BlockAssembly(0, BlockKind.RAW, len(payload), 512)
    src = source_symbols(payload, lay)
    rep = repair_symbols(payload, lay, 1, [lay.group_k[1] + 3])
    for g, esi, sym in (src[0], src[5], rep[0]):
        assert asm.add(g, esi, memoryview(sym)) == ADD_STORED
        assert asm.add(g, esi, memoryview(sym)) == ADD_DUPLICATE
    assert asm.total == 3
    assert sum(asm.counts) == 3


def test_symbols_beyond_k_are_duplicates() -> None:
    raw, lay, payload = encoded()
    asm = BlockAssembly(0, BlockKind.RAW, len(payload), 512)
    k0 = lay.group_k[0]
    group0 = [s for s in source_symbols(payload, lay) if s[0] == 0]
    for g, esi, sym in group0:
        assert asm.add(g, esi, memoryview(sym)) == ADD_STORED
    assert asm.missing()[0] == 0
    for g, esi, sym in repair_symbols(payload, lay, 0, [k0, k0 + 1, 255]):
        assert asm.add(g, esi, memoryview(sym)) == ADD_DUPLICATE
    assert asm.counts[0] == k0
    assert asm.repairs[0] == {}
    # The other groups still complete the block as usual.
    rest = [s for s in source_symbols(payload, lay) if s[0] != 0]
    results = [asm.add(g, esi, memoryview(sym)) for g, esi, sym in rest]
    assert results[-1] == ADD_COMPLETE
    assert decode_block(asm, len(raw), BlockDecoder()) == raw


def test_inconsistent_symbols_are_bad() -> None:
    _raw, lay, payload = encoded(size=40_000 - 100)  # last source symbol is short
    asm = BlockAssembly(0, BlockKind.RAW, len(payload), 512)
    sources = source_symbols(payload, lay)
    g0, e0, full = sources[0]
    gl, el, short = sources[-1]
    assert len(short) < 512
    k0 = lay.group_k[0]
    (_, er, repair), = repair_symbols(payload, lay, 0, [k0])
    bad = [
        (g0, e0, full[:-1]),  # a full source symbol cut short
        (g0, e0, full + b"x"),  # ... or too long
        (gl, el, short.ljust(512, b"\0")),  # the short last one padded
        (0, er, repair[:-1]),  # a repair symbol cut short
        (lay.group_count, 0, full),  # group out of range
        (0xFFFF, 0, full),
        (0, MAX_SYMBOLS_PER_GROUP, repair),  # esi out of range
    ]
    for g, esi, sym in bad:
        assert asm.add(g, esi, memoryview(sym)) == ADD_BAD
    assert asm.total == 0
    assert asm.missing() == list(lay.group_k)
    # The good ones still go in afterwards.
    assert asm.add(g0, e0, memoryview(full)) == ADD_STORED
    assert asm.add(gl, el, memoryview(short)) == ADD_STORED


def test_zero_block_is_one_empty_symbol() -> None:
    asm = BlockAssembly(3, BlockKind.ZERO, 0, 512)
    assert asm.missing() == [1]
    assert asm.add(0, 0, memoryview(b"x")) == ADD_BAD
    assert asm.add(1, 0, memoryview(b"")) == ADD_BAD
    assert asm.add(0, 0, memoryview(b"")) == ADD_COMPLETE
    assert asm.add(0, 0, memoryview(b"")) == ADD_DUPLICATE
    assert decode_block(asm, 1000, BlockDecoder()) == bytes(1000)


@pytest.mark.parametrize("where", ["source", "repair", "digest"])
@pytest.mark.parametrize("kind", ["random", "compressible"])
def test_a_flipped_byte_is_caught(where: str, kind: str) -> None:
    raw = make_raw(kind, 40_000, random.Random(5))
    block_kind, payload = BlockEncoder().encode(raw)
    lay = block_layout(len(payload), 512)
    sources = source_symbols(payload, lay)
    # Source 0 (group 0, esi 0: the digest and the start of the body) is replaced by a repair.
    (repair,) = repair_symbols(payload, lay, 0, [lay.group_k[0] + 1])
    symbols = [repair] + sources[1:]
    victim = {"source": 1, "repair": 0, "digest": 0}[where]
    offset = {"source": 100, "repair": 100, "digest": 3}[where]
    if where == "digest":
        symbols = sources[:]
    g, esi, sym = symbols[victim]
    flipped = bytearray(sym)
    flipped[offset] ^= 0x40
    symbols[victim] = (g, esi, bytes(flipped))
    asm = assemble(block_kind, payload, 512, symbols)
    with pytest.raises(BlockCorrupt):
        decode_block(asm, len(raw), BlockDecoder())
