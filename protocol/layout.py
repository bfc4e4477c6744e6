"""Geometry of one encoded block: how its payload is cut into symbols and FEC groups.

A payload of L bytes becomes k = ceil(L / S) source symbols of S bytes (the last one short,
zero-padded for the erasure code). They are dealt round-robin into G = ceil(k / MAX_GROUP_K)
groups: source symbol i goes to group i % G at position i // G. Interleaving means a burst of
consecutive losses is spread over all groups instead of sinking one. A ZERO block (L = 0) is a
single group of one empty symbol, so it is requested and repaired like any other block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .fec import MAX_GROUP_K


@dataclass(frozen=True, slots=True)
class BlockLayout:
    encoded_length: int
    symbol_size: int
    source_count: int  # k over the whole block
    group_count: int  # G
    group_k: tuple[int, ...]  # source symbols in each group

    def source_index(self, group: int, esi: int) -> int:
        """Index in the payload of source symbol ``esi`` (< group_k[group]) of ``group``."""
        return esi * self.group_count + group

    def symbol_span(self, index: int) -> tuple[int, int]:
        """Byte range [start, end) of source symbol ``index`` inside the payload."""
        start = index * self.symbol_size
        return start, min(start + self.symbol_size, self.encoded_length)


@lru_cache(maxsize=4096)
def block_layout(encoded_length: int, symbol_size: int) -> BlockLayout:
    if encoded_length < 0 or symbol_size <= 0:
        raise ValueError("encoded_length must be >= 0 and symbol_size > 0")
    if encoded_length == 0:
        return BlockLayout(0, symbol_size, 1, 1, (1,))
    k = -(-encoded_length // symbol_size)
    groups = -(-k // MAX_GROUP_K)
    base, extra = divmod(k, groups)
    group_k = tuple(base + (1 if g < extra else 0) for g in range(groups))
    return BlockLayout(encoded_length, symbol_size, k, groups, group_k)


def block_count(image_size: int, block_size: int) -> int:
    return -(-image_size // block_size)


def raw_block_length(index: int, image_size: int, block_size: int) -> int:
    """Size of block ``index`` of the image: block_size, except for a short last block."""
    return min(block_size, image_size - index * block_size)
