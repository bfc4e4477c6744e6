"""Deterministic test images: the same (size, seed, kind) always gives the same bytes.

"disklike" imitates a used disk so the block codec's three paths all run: 64 KiB-aligned
regions of 64 KiB-1 MiB (at most 1/8 of the image, so small images mix too) that are zeros
(~40 %, whole zero blocks happen), text-like bytes (~35 %, compressible) or random bytes (~25 %,
incompressible: already compressed files).
"""

from __future__ import annotations

import random

KINDS = ("random", "zeros", "disklike")
_UNIT = 64 * 1024
_PAGE = 4096


def make_image(size: int, seed: int, kind: str = "disklike") -> bytes:
    if size < 0:
        raise ValueError("size must be >= 0")
    if kind == "zeros":
        return bytes(size)
    rng = random.Random(seed)
    if kind == "random":
        return rng.randbytes(size)
    if kind != "disklike":
        raise ValueError(f"unknown image kind {kind!r}; known: {KINDS}")
    pages = _text_pages(rng)
    # Regions up to 1 MiB, but at most 1/8 of the image so a small test image still mixes.
    max_units = max(1, min(16, size // (8 * _UNIT)))
    parts: list[bytes] = []
    left = size
    while left > 0:
        n = min(left, rng.randint(1, max_units) * _UNIT)
        roll = rng.random()
        if roll < 0.40:
            parts.append(bytes(n))
        elif roll < 0.75:
            # Whole pages drawn from a small pool: compresses, but not to nothing.
            parts.append(b"".join(rng.choices(pages, k=-(-n // _PAGE)))[:n])
        else:
            parts.append(rng.randbytes(n))
        left -= n
    return b"".join(parts)


def _text_pages(rng: random.Random, count: int = 256) -> list[bytes]:
    """``count`` 4 KiB pages of words from a small random vocabulary, one per line-ish."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))).encode() for _ in range(300)]
    vocab += [b"\n", b"=", b"/", b"0", b"1"]
    pages = []
    for _ in range(count):
        page = b" ".join(rng.choices(vocab, k=_PAGE // 4))
        pages.append((page * 2)[:_PAGE])
    return pages
