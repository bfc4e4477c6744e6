from __future__ import annotations

import contextlib
import os
import random
import tracemalloc

import pytest
import xxhash
import zstandard
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.blockcodec import (
    DIGEST_SIZE,
    BlockCorrupt,
    BlockDecoder,
    BlockEncoder,
    BlockKind,
)

MIB = 1 << 20
ENC = BlockEncoder()
DEC = BlockDecoder()


def text_like(rng: random.Random, size: int) -> bytes:
    words = [rng.randbytes(rng.randint(1, 9)).hex() for _ in range(200)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words).encode() + b" "
    return bytes(out[:size])


@st.composite
def blocks(draw: st.DrawFn, zero: bool = True) -> bytes:
    """Blocks of 0..70000 bytes; zero=False makes all-zero ones rare (tiny random ones)."""
    size = draw(st.integers(0 if zero else 1, 70_000))
    rng = random.Random(draw(st.integers(0, 2**32)))
    styles = ["zero", "random", "text", "sparse"] if zero else ["random", "text", "sparse"]
    style = draw(st.sampled_from(styles))
    if style == "zero":
        return bytes(size)
    if style == "random":
        return rng.randbytes(size)
    if style == "text":
        return text_like(rng, size)
    # Mostly zero with a few set bytes anywhere, e.g. a single one at the very end.
    block = bytearray(size)
    for _ in range(draw(st.integers(1, 3)) if size else 0):
        block[rng.randrange(size)] = rng.randint(1, 255)
    return bytes(block)


def roundtrip(raw: bytes | memoryview) -> tuple[BlockKind, bytes]:
    kind, payload = ENC.encode(raw)
    assert type(payload) is bytes
    assert DEC.decode(kind, payload, len(raw)) == raw
    assert DEC.decode(kind, memoryview(payload), len(raw)) == raw
    return kind, payload


@given(blocks(), st.booleans())
@settings(max_examples=200)
def test_roundtrip(raw: bytes, as_view: bool) -> None:
    kind, payload = roundtrip(memoryview(bytearray(raw)) if as_view else raw)
    if kind == BlockKind.ZERO:
        assert payload == b"" and raw == bytes(len(raw))
        return
    assert raw != bytes(len(raw))
    assert payload[:DIGEST_SIZE] == xxhash.xxh3_128_digest(raw)
    body = payload[DIGEST_SIZE:]
    if kind == BlockKind.RAW:
        assert body == raw
    else:
        assert kind == BlockKind.ZSTD and len(body) < len(raw)
        assert zstandard.frame_content_size(body) == len(raw)


def test_kinds_are_chosen_by_content() -> None:
    rng = random.Random(3)
    assert ENC.encode(bytes(MIB)) == (BlockKind.ZERO, b"")
    assert ENC.encode(b"") == (BlockKind.ZERO, b"")
    assert ENC.encode(b"abc" * 1000)[0] == BlockKind.ZSTD
    assert ENC.encode(text_like(rng, MIB))[0] == BlockKind.ZSTD
    assert ENC.encode(os.urandom(MIB))[0] == BlockKind.RAW
    assert ENC.encode(b"\x01")[0] == BlockKind.RAW
    last_byte_set = bytearray(MIB)
    last_byte_set[-1] = 1
    assert ENC.encode(bytes(last_byte_set))[0] == BlockKind.ZSTD


@pytest.mark.parametrize("style", ["zero", "random", "text"])
def test_one_mib_roundtrip(style: str) -> None:
    rng = random.Random(5)
    raw = {"zero": bytes(MIB), "random": rng.randbytes(MIB), "text": text_like(rng, MIB)}[style]
    roundtrip(raw)
    roundtrip(memoryview(raw))


def test_zero_blocks_after_a_longer_one_and_a_shorter_one() -> None:
    enc, dec = BlockEncoder(), BlockDecoder()
    for size in (10, MIB, 5, MIB, 0, 3 * MIB):
        assert enc.encode(bytes(size)) == (BlockKind.ZERO, b"")
        assert dec.decode(BlockKind.ZERO, b"", size) == bytes(size)
    assert enc.encode(b"\0" * 4 + b"\1")[0] != BlockKind.ZERO


# ---- corruption: only BlockCorrupt may ever escape ----------------------------------------


def assert_corrupt(kind: int, payload: bytes | memoryview, raw_length: int) -> None:
    with pytest.raises(BlockCorrupt):
        DEC.decode(kind, payload, raw_length)


@given(blocks(zero=False), st.data())
@settings(max_examples=300)
def test_any_flipped_payload_byte_is_caught(raw: bytes, data: st.DataObject) -> None:
    kind, payload = ENC.encode(raw)
    assume(payload)
    at = data.draw(st.integers(0, len(payload) - 1))
    bad = bytearray(payload)
    bad[at] ^= data.draw(st.integers(1, 255))
    if kind == BlockKind.RAW or at < DIGEST_SIZE:
        assert_corrupt(kind, bytes(bad), len(raw))
        return
    # A few zstd header bits (e.g. the window size) don't change the output: decoding such a
    # frame is fine as long as it yields exactly the original block.
    with contextlib.suppress(BlockCorrupt):
        assert DEC.decode(kind, bytes(bad), len(raw)) == raw


@given(blocks(zero=False), st.data())
def test_truncated_or_extended_payload_is_caught(raw: bytes, data: st.DataObject) -> None:
    kind, payload = ENC.encode(raw)
    assume(payload)
    cut = data.draw(st.integers(0, len(payload) - 1))
    assert_corrupt(kind, payload[:cut], len(raw))
    assert_corrupt(kind, payload + data.draw(st.binary(min_size=1, max_size=20)), len(raw))


@given(blocks(zero=False), st.integers(-70_003, 10_000).filter(bool))
def test_wrong_raw_length_is_caught(raw: bytes, delta: int) -> None:
    kind, payload = ENC.encode(raw)
    assume(kind != BlockKind.ZERO)
    assert_corrupt(kind, payload, max(-3, len(raw) + delta))


@given(blocks(zero=False), st.integers(-2, 300))
def test_wrong_kind_is_caught(raw: bytes, wrong: int) -> None:
    kind, payload = ENC.encode(raw)
    assume(wrong != kind)
    assert_corrupt(wrong, payload, len(raw))


@given(st.integers(-(2**70), 2**70), st.binary(max_size=300), st.integers(-(2**40), 100_000))
@settings(max_examples=500)
def test_garbage_raises_only_block_corrupt(kind: int, payload: bytes, raw_length: int) -> None:
    try:
        out = DEC.decode(kind, payload, raw_length)
    except BlockCorrupt:
        return
    # Only a ZERO block can come out of random garbage.
    assert kind == BlockKind.ZERO and payload == b"" and out == bytes(raw_length)


@given(st.binary(max_size=200), st.integers(0, 70_000), st.binary(max_size=64))
def test_garbage_behind_a_valid_zstd_header_is_caught(
    tail: bytes, raw_length: int, digest: bytes
) -> None:
    # Frame magic and a plausible header, so the garbage reaches the zstd block decoder.
    header = zstandard.ZstdCompressor().compress(bytes(raw_length))[:6]
    assert_corrupt(
        BlockKind.ZSTD, digest[:DIGEST_SIZE].ljust(DIGEST_SIZE) + header + tail, raw_length
    )


def test_zero_with_payload_and_short_payloads() -> None:
    assert_corrupt(BlockKind.ZERO, b"\0", 10)
    assert_corrupt(BlockKind.ZERO, b"", -1)
    for kind in (BlockKind.RAW, BlockKind.ZSTD):
        for size in range(DIGEST_SIZE):
            assert_corrupt(kind, bytes(size), 0)


def test_payload_of_another_block_is_caught() -> None:
    rng = random.Random(11)
    a, b = rng.randbytes(5000), rng.randbytes(5000)
    kind, pa = ENC.encode(a)
    _, pb = ENC.encode(b)
    assert_corrupt(kind, pa[:DIGEST_SIZE] + pb[DIGEST_SIZE:], len(a))


# ---- decompression bombs -------------------------------------------------------------------


def bomb(size: int, declare_size: bool) -> bytes:
    """A few KiB of zstd that inflate to `size` zero bytes, built without holding them."""
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=declare_size)
    obj = cctx.compressobj(size=size if declare_size else -1)
    chunk = bytes(MIB)
    frame = b"".join(obj.compress(chunk) for _ in range(size // MIB)) + obj.flush()
    assert len(frame) < 10_000
    return frame


def peak_while(kind: int, payload: bytes, raw_length: int) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(BlockCorrupt):
            DEC.decode(kind, payload, raw_length)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("declare_size", [True, False])
def test_zstd_bomb_is_rejected_without_allocating_it(declare_size: bool) -> None:
    frame = bomb(100 * MIB, declare_size)
    digest = xxhash.xxh3_128_digest(bytes(MIB))
    assert peak_while(BlockKind.ZSTD, digest + frame, MIB) < MIB // 2


def test_zstd_frame_lying_about_its_size_is_rejected() -> None:
    # Patch the bomb's 4-byte frame content size (after magic, descriptor and window byte)
    # down to 1 MiB: the size check passes, zstd must stop at the end of the output buffer.
    frame = bytearray(bomb(100 * MIB, declare_size=True))
    assert frame[4] >> 6 == 2 and not frame[4] & 0x20
    frame[6:10] = MIB.to_bytes(4, "little")
    assert zstandard.frame_content_size(bytes(frame)) == MIB
    digest = xxhash.xxh3_128_digest(bytes(MIB))
    assert peak_while(BlockKind.ZSTD, digest + bytes(frame), MIB) < 2 * MIB
