"""Deterministic test images: the same (size, seed, kind) always gives the same bytes.

"disklike" imitates a used disk so the block codec's three paths all run: 64 KiB-aligned
regions of 64 KiB-1 MiB (at most 1/8 of the image, so small images mix too) that are zeros
(~40 %, whole zero blocks happen), text-like bytes (~35 %, compressible) or random bytes (~25 %,
incompressible: already compressed files).

``write_image`` writes large images chunk by chunk (``python -m netsim.images PATH --size 256M``).
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

KINDS = ("random", "zeros", "disklike")
_UNIT = 64 * 1024
_PAGE = 4096
CHUNK = 16 * 1024 * 1024


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


def write_image(path: Path, size: int, seed: int, kind: str = "disklike") -> None:
    """Write a ``size``-byte image without holding it in memory: chunk *i* is
    ``make_image(CHUNK, seed * 2**32 + i, kind)``, so equal arguments give equal files (though
    not the bytes of one ``make_image(size, seed)`` call once ``size`` exceeds a chunk)."""
    with open(path, "wb") as f:
        for index, offset in enumerate(range(0, size, CHUNK)):
            f.write(make_image(min(CHUNK, size - offset), seed * 2**32 + index, kind))


def parse_size(text: str) -> int:
    """``"256M"`` -> 268435456: bytes, or binary K/M/G units."""
    match = re.fullmatch(r"(\d+)([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not match:
        raise ValueError(f"bad size {text!r}: use e.g. 4096, 64K, 256M or 2G")
    return int(match[1]) << 10 * " KMG".index(match[2].upper() or " ")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m netsim.images",
                                     description="Write a deterministic test image.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--size", type=parse_size, required=True, help="e.g. 64K, 256M, 2G")
    parser.add_argument("--kind", choices=KINDS, default="disklike")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    write_image(args.path, args.size, args.seed, args.kind)


if __name__ == "__main__":
    main()
