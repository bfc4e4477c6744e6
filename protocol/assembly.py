"""Receiver side of one block: collect symbols, then rebuild and check the block.

Source symbols are copied straight into their place in a preallocated payload buffer, so a
block that loses nothing needs no FEC work at all; repair symbols are kept only for groups that
are still short. ``decode_block`` runs in the driver (a worker thread in the daemon).

What the hot path touches is in flat buffers (``have``: a bit per symbol id of each group,
``counts``: a byte per group), so the compiled batch placement (protocol/datapath.py) works on
the very same object as ``add``.
"""

from __future__ import annotations

from .blockcodec import BlockDecoder, BlockKind
from .fec import MAX_SYMBOLS_PER_GROUP, decode_symbols
from .layout import BlockLayout, block_layout

# add() results
ADD_BAD = -1  # inconsistent with the block: garbled
ADD_DUPLICATE = 0  # already had it, or the group already had enough
ADD_STORED = 1
ADD_COMPLETE = 2  # this symbol completed the block

HAVE_BYTES = MAX_SYMBOLS_PER_GROUP // 8  # one bit per symbol id, per group


class BlockAssembly:
    __slots__ = (
        "index", "kind", "layout", "encoded_length", "group_k", "buffer", "have", "counts",
        "repairs", "groups_left", "total", "mismatches",
    )

    def __init__(self, index: int, kind: int, encoded_length: int, symbol_size: int) -> None:
        layout = block_layout(encoded_length, symbol_size)
        self.index = index
        self.kind = kind
        self.layout: BlockLayout = layout
        self.encoded_length = encoded_length
        self.group_k = bytes(layout.group_k)  # (k <= MAX_GROUP_K < 256)
        self.buffer = bytearray(layout.source_count * symbol_size if encoded_length else 0)
        groups = layout.group_count
        self.have = bytearray(groups * HAVE_BYTES)  # bit esi of group g: byte g*32 + esi//8
        self.counts = bytearray(groups)  # symbols stored per group (never above its k)
        self.repairs: list[dict[int, bytes]] = [{} for _ in range(groups)]
        self.groups_left = groups
        self.total = 0  # symbols stored
        self.mismatches = 0  # datagrams for this block whose header disagreed with it

    def add(self, group: int, esi: int, symbol: memoryview) -> int:
        layout = self.layout
        if group >= layout.group_count or esi >= MAX_SYMBOLS_PER_GROUP:
            return ADD_BAD
        at = group * HAVE_BYTES + (esi >> 3)
        bit = 1 << (esi & 7)
        have = self.have[at]
        if have & bit:
            return ADD_DUPLICATE
        k = self.group_k[group]
        if self.counts[group] >= k:
            return ADD_DUPLICATE
        size = layout.symbol_size
        if esi < k:
            start = (esi * layout.group_count + group) * size
            end = start + size
            if end > layout.encoded_length:  # (no min(): this runs once per datagram)
                end = layout.encoded_length
            if len(symbol) != end - start:
                return ADD_BAD
            self.buffer[start:end] = symbol
        else:
            if len(symbol) != size:
                return ADD_BAD
            self.repairs[group][esi] = bytes(symbol)
        self.have[at] = have | bit
        self.total += 1
        count = self.counts[group] + 1
        self.counts[group] = count
        if count == k:
            self.groups_left -= 1
            if self.groups_left == 0:
                return ADD_COMPLETE
        return ADD_STORED

    def has(self, group: int, esi: int) -> bool:
        """Whether symbol ``esi`` of ``group`` is stored."""
        return bool(self.have[group * HAVE_BYTES + (esi >> 3)] >> (esi & 7) & 1)

    def missing(self) -> list[int]:
        """How many more symbols each group needs."""
        pairs = zip(self.layout.group_k, self.counts, strict=True)
        return [k - c if c < k else 0 for k, c in pairs]


def decode_block(assembly: BlockAssembly, raw_length: int, decoder: BlockDecoder) -> bytes:
    """Rebuild the raw block from a complete assembly. Raises BlockCorrupt if it fails its
    digest (a corrupted or forged symbol): the caller discards it and asks again."""
    layout = assembly.layout
    if assembly.kind != BlockKind.ZERO:
        _recover_sources(assembly)
    payload = memoryview(assembly.buffer)[: layout.encoded_length]
    return decoder.decode(assembly.kind, payload, raw_length)


def _recover_sources(assembly: BlockAssembly) -> None:
    layout = assembly.layout
    size = layout.symbol_size
    groups = layout.group_count
    buf = memoryview(assembly.buffer)
    for group, k in enumerate(layout.group_k):
        repairs = assembly.repairs[group]
        if not repairs:
            continue  # every source symbol of this group arrived
        symbols: list[bytes | memoryview] = []
        esis: list[int] = []
        have = [assembly.has(group, esi) for esi in range(k)]
        for esi in range(k):
            if have[esi]:
                start = (esi * groups + group) * size
                symbols.append(buf[start : start + size])
                esis.append(esi)
        for esi, sym in repairs.items():
            if len(esis) == k:
                break
            symbols.append(sym)
            esis.append(esi)
        sources = decode_symbols(k, symbols, esis)
        for esi in range(k):
            if not have[esi]:
                start = (esi * groups + group) * size
                end = min(start + size, layout.encoded_length)
                buf[start:end] = sources[esi][: end - start]
        repairs.clear()
