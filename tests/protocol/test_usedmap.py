"""The used-block map's encoding: exact round trips, and nothing but BadPacket on garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import BadPacket
from protocol.usedmap import (
    PIECE_SIZE,
    decode_runs_untrusted,
    encode_runs,
    map_digest,
    pieces,
    runs_of,
)


@given(st.lists(st.booleans(), max_size=3000))
def test_runs_round_trip(flags: list[bool]) -> None:
    runs = runs_of(bytes(flags))
    assert [i for s, e in runs for i in range(s, e)] == [i for i, f in enumerate(flags) if f]
    encoded = encode_runs(runs)
    assert decode_runs_untrusted(encoded, len(flags)) == runs
    assert b"".join(pieces(encoded)) == encoded
    assert all(len(p) <= PIECE_SIZE for p in pieces(encoded))


def test_a_typical_disk_is_a_few_bytes() -> None:
    runs = [(0, 3), (100, 40_000), (200_000, 260_000), (475_000, 476_837)]
    encoded = encode_runs(runs)
    assert len(encoded) < 24 and len(pieces(encoded)) == 1
    assert map_digest(encoded) != map_digest(encode_runs(runs[:-1]))


@given(st.binary(max_size=200), st.integers(0, 10_000))
def test_garbage_raises_only_bad_packet(data: bytes, nblocks: int) -> None:
    try:
        runs = decode_runs_untrusted(data, nblocks)
    except BadPacket:
        return
    assert all(0 <= s < e <= nblocks for s, e in runs)


@pytest.mark.parametrize("runs", [[(5, 5)], [(3, 6), (4, 9)], [(9, 4)]])
def test_bad_runs_are_not_encoded(runs: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        encode_runs(runs)


def test_a_run_past_the_image_is_refused() -> None:
    with pytest.raises(BadPacket, match="outside the image"):
        decode_runs_untrusted(encode_runs([(0, 11)]), 10)
