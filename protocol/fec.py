"""The erasure code: the single place that knows it is zfec (Reed–Solomon over GF(2^8), MDS).

A group of k source symbols (all the same length) has encoding symbol ids (esi) 0..255: esi < k
is source symbol esi itself, k <= esi < 256 is a repair symbol computed on demand. Any k distinct
symbols of a group rebuild its sources. Both directions release the GIL while computing.

Thread safety: zfec's Encoder/Decoder only read their precomputed matrix during encode/decode
(all scratch is on the C stack), so one cached instance per k is shared by every thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zfec

MAX_SYMBOLS_PER_GROUP = 256  # k + repairs, the code's limit (esi in 0..255)
MAX_GROUP_K = 64  # largest number of source symbols per group we use

# zfec has no stubs; the instances are immutable once built, so racing first builds are harmless.
_encoders: dict[int, Any] = {}
_decoders: dict[int, Any] = {}


def _encoder(k: int) -> Any:
    enc = _encoders.get(k)
    if enc is None:
        enc = _encoders.setdefault(k, zfec.Encoder(k, MAX_SYMBOLS_PER_GROUP))
    return enc


def _decoder(k: int) -> Any:
    dec = _decoders.get(k)
    if dec is None:
        dec = _decoders.setdefault(k, zfec.Decoder(k, MAX_SYMBOLS_PER_GROUP))
    return dec


def _check_lengths(symbols: Sequence[bytes | memoryview]) -> None:
    # zfec only compares lengths against the first non-empty one, so check them all here.
    size = len(symbols[0])
    for s in symbols:
        if len(s) != size:
            raise ValueError("symbols must all have the same length")


def encode_symbols(sources: Sequence[bytes | memoryview], esis: Sequence[int]) -> list[bytes]:
    """Return the symbols with the given encoding symbol ids for a group whose source symbols
    are `sources` (all the same length, k = len(sources) in 1..MAX_GROUP_K). esi < k is the
    source symbol itself; k <= esi < 256 is repair symbol esi. Always returns bytes objects."""
    k = len(sources)
    if not 1 <= k <= MAX_GROUP_K:
        raise ValueError(f"k={k} outside 1..{MAX_GROUP_K}")
    _check_lengths(sources)
    wanted = list(esis)
    for esi in wanted:
        # zfec does not range-check these: a bad id would index past its matrix.
        if not 0 <= esi < MAX_SYMBOLS_PER_GROUP:
            raise ValueError(f"esi {esi} outside 0..{MAX_SYMBOLS_PER_GROUP - 1}")
    if not wanted:
        return []
    try:
        out = _encoder(k).encode(tuple(sources), wanted)
    except zfec.Error as e:
        raise ValueError(str(e)) from e
    # Source esis come back as the caller's own objects (maybe memoryviews); bytes() of an
    # exact bytes object is that object, so this copies only when it must.
    return [bytes(s) for s in out]


def decode_symbols(
    k: int, symbols: Sequence[bytes | memoryview], esis: Sequence[int]
) -> list[bytes]:
    """Given exactly k distinct symbols (same length) with their esis, return the k source
    symbols in order (as bytes). Raise ValueError on bad arguments (wrong count, duplicate esi,
    esi out of range, unequal lengths)."""
    if not 1 <= k <= MAX_GROUP_K:
        raise ValueError(f"k={k} outside 1..{MAX_GROUP_K}")
    if len(symbols) != k or len(esis) != k:
        raise ValueError(f"need exactly k={k} symbols and esis, got {len(symbols)}/{len(esis)}")
    ids = list(esis)
    for esi in ids:
        if not 0 <= esi < MAX_SYMBOLS_PER_GROUP:
            raise ValueError(f"esi {esi} outside 0..{MAX_SYMBOLS_PER_GROUP - 1}")
    # A duplicate source esi sends zfec's reordering loop spinning forever.
    if len(set(ids)) != k:
        raise ValueError("duplicate esi")
    _check_lengths(symbols)
    try:
        # A fresh list: zfec reorders the sequence it is given in place.
        out = _decoder(k).decode(list(symbols), ids)
    except zfec.Error as e:
        raise ValueError(str(e)) from e
    return [bytes(s) for s in out]
