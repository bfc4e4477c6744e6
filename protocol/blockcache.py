"""The sender's encoded blocks: a bounded LRU the first pass and the repairs are made from.

The driver pushes blocks in (``BlockWanted`` → ``feed_block``), each with the repair symbols
its worker thread made ahead (``precompute_repairs``); the others are made here when asked.
Memory does not grow with the image: beyond ``cache_blocks`` the least recently used block
is evicted, and asked for again when a NAK needs it. Every repair symbol sent is a fresh one:
a block counts its next fresh esi per group, and an evicted block's count is kept.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Container

from .errors import LocalProtocolError
from .fec import MAX_SYMBOLS_PER_GROUP, encode_symbols
from .layout import BlockLayout, block_layout
from .sender_stats import SenderStats

PRECOMPUTED_REPAIRS = 4  # per group, beyond the proactive ones: the first NAKs' answers


class EncodedBlock:
    """An encoded block held for sending and for making repair symbols."""

    __slots__ = ("index", "kind", "payload", "layout", "next_esi", "ready", "_sources")

    def __init__(
        self, index: int, kind: int, payload: bytes, layout: BlockLayout,
        ready: list[dict[int, bytes]],
    ) -> None:
        self.index = index
        self.kind = kind
        self.payload = payload
        self.layout = layout
        self.next_esi: list[int] = []
        self.ready = ready  # per group: repair symbols the driver made ahead, by esi
        self._sources: list[tuple[bytes | memoryview, ...]] | None = None

    def sources(self, group: int) -> tuple[bytes | memoryview, ...]:
        if self._sources is None:
            self._sources = group_sources(self.payload, self.layout)
        return self._sources[group]

    def fresh_esi(self, group: int) -> int:
        """The next repair esi of ``group`` never sent (after 255, they come round again)."""
        esi = self.next_esi[group]
        self.next_esi[group] = (esi + 1) % MAX_SYMBOLS_PER_GROUP
        if self.layout.encoded_length == 0:
            return 0  # a ZERO block has only its marker
        return esi


def group_sources(payload: bytes, lay: BlockLayout) -> list[tuple[bytes | memoryview, ...]]:
    """Each group's source symbols, the last one zero-padded to full size for the code."""
    size = lay.symbol_size
    view = memoryview(payload)
    groups: list[tuple[bytes | memoryview, ...]] = []
    for g, k in enumerate(lay.group_k):
        syms: list[bytes | memoryview] = []
        for esi in range(k):
            start, end = lay.symbol_span(lay.source_index(g, esi))
            sym = view[start:end]
            syms.append(sym if end - start == size else bytes(sym).ljust(size, b"\0"))
        groups.append(tuple(syms))
    return groups


def proactive_count(k: int, fec_overhead: float) -> int:
    """Repair symbols the first pass sends for a group of k source symbols."""
    return int(k * fec_overhead + 0.5)


def precompute_repairs(
    payload: bytes, symbol_size: int, fec_overhead: float
) -> list[dict[int, bytes]]:
    """The first repair symbols of every group of an encoded block: the proactive ones and,
    while there is loss to repair (``fec_overhead`` > 0), PRECOMPUTED_REPAIRS more for the
    first NAK answers; on a clean LAN NAKs are rare and their repairs are made when asked
    (~50 µs each). Pure and thread-safe, so the daemon makes them in a worker thread and
    hands them to ``feed_block``; the session computes any others itself."""
    extra = PRECOMPUTED_REPAIRS if fec_overhead > 0 else 0
    lay = block_layout(len(payload), symbol_size)
    if lay.encoded_length == 0:
        return []
    ready = []
    for k, sources in zip(lay.group_k, group_sources(payload, lay), strict=True):
        end = min(k + proactive_count(k, fec_overhead) + extra,
                  MAX_SYMBOLS_PER_GROUP)
        esis = list(range(k, end))
        ready.append(dict(zip(esis, encode_symbols(sources, esis), strict=True)))
    return ready


def initial_esi(lay: BlockLayout, passed: bool, fec_overhead: float) -> list[int]:
    """The first fresh repair esi per group: k before the first pass, after it k plus
    the proactive repairs the first pass sent."""
    if not passed:
        return list(lay.group_k)
    return [
        min(k + proactive_count(k, fec_overhead), MAX_SYMBOLS_PER_GROUP - 1)
        for k in lay.group_k
    ]


class BlockCache:
    """Encoded blocks by index, least recently used first, and what is known of the others:
    their encoded length, the blocks asked of the driver, an evicted block's next esis."""

    def __init__(self, nblocks: int, symbol_size: int, capacity: int,
                 stats: SenderStats) -> None:
        self.symbol_size = symbol_size
        self.capacity = capacity
        self.stats = stats  # counts the repair symbols made here (``repairs_made_inline``)
        self.blocks: OrderedDict[int, EncodedBlock] = OrderedDict()
        self.lengths = array("l", [-1]) * nblocks  # encoded length per block, once known
        self.saved_esi: dict[int, bytes] = {}  # next fresh esi of evicted blocks
        self.requested: set[int] = set()  # asked of the driver, not fed yet

    def __contains__(self, index: int) -> bool:
        return index in self.blocks

    def get(self, index: int) -> EncodedBlock | None:
        return self.blocks.get(index)

    def touch(self, index: int) -> None:
        """Block ``index`` was just used: the last to be evicted."""
        self.blocks.move_to_end(index)

    def want(self, index: int) -> bool:
        """Whether block ``index`` must be asked of the driver (neither held nor asked yet);
        if so, it counts as asked."""
        if index in self.blocks or index in self.requested:
            return False
        self.requested.add(index)
        return True

    def layout_of(self, index: int) -> BlockLayout | None:
        """Block ``index``'s layout, once it was fed (even if evicted since)."""
        length = self.lengths[index]
        if length < 0:
            return None
        return block_layout(length, self.symbol_size)

    def feed(
        self, index: int, kind: int, payload: bytes, repairs: list[dict[int, bytes]] | None,
        passed: bool, fec_overhead: float,
    ) -> None:
        """Hold encoded block ``index``; ``passed``: its first pass is generated already."""
        if not 0 <= index < len(self.lengths):
            raise LocalProtocolError(f"block {index} is outside the image")
        self.requested.discard(index)
        known = self.lengths[index]
        if known >= 0 and known != len(payload):
            raise LocalProtocolError(f"block {index} encoded differently than before")
        self.lengths[index] = len(payload)
        layout = block_layout(len(payload), self.symbol_size)
        block = EncodedBlock(index, kind, payload, layout, repairs or [])
        saved = self.saved_esi.pop(index, None)
        if saved is not None:
            block.next_esi = list(saved)
        else:
            block.next_esi = initial_esi(block.layout, passed, fec_overhead)
        self.blocks[index] = block

    def evict(self, cursor: int, in_use: Container[int], fec_overhead: float) -> None:
        """Back to ``capacity`` blocks, keeping the first pass's (``cursor``) and those with
        repairs to send (``in_use``); an evicted block's next esis are kept if it sent any."""
        blocks = self.blocks
        while len(blocks) > self.capacity:
            for index in blocks:
                if index != cursor and index not in in_use:
                    break
            else:
                return  # everything cached is in use; the cache may overshoot briefly
            block = blocks.pop(index)
            if block.next_esi != initial_esi(block.layout, index < cursor, fec_overhead):
                self.saved_esi[index] = bytes(block.next_esi)

    def repair_symbols(self, block: EncodedBlock, group: int, esis: list[int]) -> list[bytes]:
        """Repair symbols ``esis`` of a group: the driver's ready ones, the rest made here."""
        ready = block.ready[group] if block.ready else {}
        syms = [ready.pop(esi, b"") for esi in esis]
        missing = [i for i, sym in enumerate(syms) if not sym]
        if missing:
            made = encode_symbols(block.sources(group), [esis[i] for i in missing])
            for i, sym in zip(missing, made, strict=True):
                syms[i] = sym
            self.stats.repairs_made_inline += len(missing)
        return syms
