"""One followed transfer: its block table, assemblies and manifest, and what the NAK asks for.

A Transfer is built from the Announce it follows and dropped with it: following another session
is a new Transfer, never a reset. ``place`` takes each data symbol of the session into its
block's assembly (the hot path: one call per datagram). A complete block is handed out as
BlockReady, with where it goes on the target and its manifest digest; it is held while
``holding`` (until the sender accepted us) and kept back until its manifest chunk proved itself.
The timers are the session's: ``place`` answers, in bit flags, what the datagram asks of them.
"""

from __future__ import annotations

import re
from collections import deque

from .assembly import ADD_COMPLETE, ADD_DUPLICATE, BlockAssembly
from .blockcodec import DIGEST_SIZE, BlockKind
from .errors import LocalProtocolError
from .events import BlockReady, Event
from .layout import block_count, raw_block_length
from .manifest import CHUNK_DIGESTS, chunk_of, verify_chunk
from .manifest import DIGEST_SIZE as SHA256_SIZE
from .receiver_stats import ReceiverStats
from .wire import DATA_HEADER_SIZE, FLAG_REPAIR, Announce, ManifestChunk

# Per-block state in ``_blocks``.
MISSING, STORED, DECODING, PARTIAL = 0, 1, 2, 3
# What ``place`` asks of the session, bit flags (0 on the usual path).
FIRST_DATA = 1  # the transfer's first data datagram: report soon
NEW_LOSS = 2  # the cursor passed blocks we lack: arm the NAK
AWAITING_CHUNK = 4  # a block completed before its manifest chunk: arm the NAK (it asks for it)

_MISSING_RUN = re.compile(b"\x00+")
_MAX_NEED = 48  # keep a STATUS inside one 1500-byte datagram
_MAX_WHOLE = 32
_MAX_CHUNKS_ASKED = 16
_CODEC_SLACK = 4096  # digest + zstd frame overhead above the raw block size (RAW is chosen
# whenever zstd does not shrink the block, so real payloads stay far below this)


class Transfer:
    def __init__(self, announce: Announce, stats: ReceiverStats, events: deque[Event],
                 max_pending: int) -> None:
        self.announce = announce
        self.sender_key = announce.key if announce.signature else b""  # (empty: unsigned)
        self.nblocks = block_count(announce.image_size, announce.block_size)
        self.blocks_done = 0
        self.cursor = 0  # blocks below it had their first pass
        self.seq_seen = -1
        self.seq_first = 0  # the first data seq we saw: loss is counted from there
        self.first_data_at: float | None = None  # when the transfer reached us (None: joined
        # mid-stream, where a SYNC told us the sequence first)
        self.holding = True  # complete blocks are held, not handed out (until the ACCEPT)
        self._stats = stats
        self._events = events  # the session's: BlockReady goes there
        self._max_pending = max_pending  # partial, held and awaiting blocks in memory at most
        self._image_size = announce.image_size
        self._block_size = announce.block_size
        self._symbol_size = announce.symbol_size
        self._max_encoded = announce.block_size + _CODEC_SLACK
        self._blocks = bytearray(self.nblocks)
        self._assemblies: dict[int, BlockAssembly] = {}
        self._held: list[BlockReady] = []  # blocks complete before the ACCEPT
        self._rejections: dict[int, int] = {}  # block -> decoded copies that failed a check
        # The signed manifest: its root, the chunks of digests verified so far, and complete
        # blocks waiting for their chunk (asked for in STATUS).
        self._root = announce.manifest if len(announce.manifest) == SHA256_SIZE else b""
        self._chunks: dict[int, bytes] = {}
        self._awaiting: dict[int, BlockAssembly] = {}  # block -> its complete assembly

    # --- data path (hot) ------------------------------------------------------------------

    def place(self, data: bytes, now: float, flags: int, kind: int, block: int, group: int,
              esi: int, length: int, seq: int) -> int:
        """One data datagram of this session (its header already unpacked). Returns what it
        asks of the session: FIRST_DATA | NEW_LOSS | AWAITING_CHUNK, usually none."""
        asks = 0
        if seq > self.seq_seen:
            if self.seq_seen < 0:
                self.seq_first = seq
                self.first_data_at = now
                asks = FIRST_DATA
            self.seq_seen = seq
        stats = self._stats
        stats.data_arrived += 1
        if block >= self.nblocks:
            stats.garbled += 1
            return asks
        if block > self.cursor and not flags & FLAG_REPAIR and self.advance_cursor(block):
            asks |= NEW_LOSS
        blocks = self._blocks
        state = blocks[block]
        if state == STORED or state == DECODING:  # noqa: SIM109 (hot path: no tuple)
            stats.stale += 1
            return asks
        asm = self._assemblies.get(block)
        if asm is None or asm.kind != kind or asm.layout.encoded_length != length:
            asm = self._assembly_for(block, kind, length, asm)
            if asm is None:
                return asks
        result = asm.add(group, esi, memoryview(data)[DATA_HEADER_SIZE:])
        if result == ADD_COMPLETE:
            del self._assemblies[block]
            blocks[block] = DECODING
            stats.received += 1
            if not self._ready(block, asm):
                asks |= AWAITING_CHUNK
        elif result > 0:
            stats.received += 1
        elif result == ADD_DUPLICATE:
            stats.duplicates += 1
        else:
            stats.garbled += 1
        return asks

    def _assembly_for(
        self, block: int, kind: int, length: int, current: BlockAssembly | None
    ) -> BlockAssembly | None:
        """A new assembly for a block, or a replacement when a header disagrees with it."""
        if not _plausible(kind, length, self._max_encoded):
            self._stats.garbled += 1
            return None
        if current is not None:
            # One corrupted first datagram must not pin a wrong layout forever: once more
            # datagrams disagree with it than agreed, start over with the newcomers' view.
            current.mismatches += 1
            if current.mismatches <= current.total:
                self._stats.garbled += 1
                return None
        elif (len(self._assemblies) + len(self._held) + len(self._awaiting)
              >= self._max_pending):
            self._stats.overflow += 1
            return None
        asm = BlockAssembly(block, kind, length, self._symbol_size)
        self._assemblies[block] = asm
        self._blocks[block] = PARTIAL
        return asm

    def _ready(self, block: int, asm: BlockAssembly) -> bool:
        """A block is complete: hand it out with its manifest digest or, before the sender
        accepted us, hold it. False if it must wait for its digest (the STATUS asks for it)."""
        digest = b""
        if self._root:
            chunk = self._chunks.get(chunk_of(block))
            if chunk is None:
                self._awaiting[block] = asm
                return False
            start = (block % CHUNK_DIGESTS) * SHA256_SIZE
            digest = chunk[start : start + SHA256_SIZE]
        ready = BlockReady(
            block, offset=block * self._block_size,
            length=raw_block_length(block, self._image_size, self._block_size),
            assembly=asm, digest=digest,
        )
        if self.holding:
            self._held.append(ready)  # until the sender proves itself
        else:
            self._events.append(ready)
        return True

    # --- progress ---------------------------------------------------------------------------

    def advance_cursor(self, cursor: int) -> bool:
        """The sender's first pass reached ``cursor``; whether it passed a block we lack."""
        old, self.cursor = self.cursor, min(cursor, self.nblocks)
        return self.lacks_any(old, self.cursor)

    def sync_seq(self, last_seq: int) -> None:
        """A SYNC's ``last_seq``: everything sent before it has arrived or is lost by now."""
        if last_seq > self.seq_seen:
            if self.seq_seen < 0:
                self.seq_first = last_seq + 1  # joined mid-stream: count from here
            self.seq_seen = last_seq

    def add_chunk(self, msg: ManifestChunk) -> None:
        """A manifest chunk: kept only if it proves itself against the signed root; the blocks
        that waited for it are handed out."""
        if not self._root or msg.index in self._chunks:
            return
        if not verify_chunk(self._root, self.nblocks, msg.index, msg.digests, msg.proof):
            self._stats.garbled += 1  # forged or damaged
            return
        self._chunks[msg.index] = msg.digests
        for block in [b for b in self._awaiting if chunk_of(b) == msg.index]:
            self._ready(block, self._awaiting.pop(block))

    def release_held(self) -> list[BlockReady]:
        """The blocks complete before the ACCEPT, to hand out now."""
        held, self._held = self._held, []
        return held

    def store(self, index: int) -> None:
        """The driver wrote block ``index``."""
        if self._blocks[index] != DECODING:
            raise LocalProtocolError(f"block {index} was not handed out for decoding")
        self._blocks[index] = STORED
        self.blocks_done += 1

    def reject(self, index: int) -> int:
        """Block ``index`` failed its check: forget it, it is asked for again. Returns how
        many decoded copies of it failed so far."""
        if self._blocks[index] != DECODING:
            raise LocalProtocolError(f"block {index} was not handed out for decoding")
        self._blocks[index] = MISSING
        self._stats.rejected += 1
        count = self._rejections[index] = self._rejections.get(index, 0) + 1
        return count

    def resume(self, blocks: list[int]) -> int:
        """Blocks an earlier run stored: they count as stored. Returns how many were taken."""
        taken = 0
        for index in blocks:
            if 0 <= index < self.nblocks and self._blocks[index] in (MISSING, PARTIAL):
                self._assemblies.pop(index, None)
                self._blocks[index] = STORED
                taken += 1
        self.blocks_done += taken
        return taken

    def drop_pending(self) -> None:
        """The session finished: let go of the blocks still in memory."""
        self._assemblies.clear()
        self._held.clear()
        self._awaiting.clear()

    # --- what the NAK asks for ----------------------------------------------------------------

    @property
    def awaits_chunks(self) -> bool:
        return bool(self._awaiting)

    def lacks_any(self, start: int, end: int) -> bool:
        """Whether a block in [start, end) is neither stored nor being decoded."""
        blocks = self._blocks
        done = blocks.count(STORED, start, end) + blocks.count(DECODING, start, end)
        return done < end - start

    def missing(self) -> tuple[list[tuple[int, list[int]]], list[tuple[int, int]]]:
        """Overdue blocks, lowest first, bounded to one datagram: how many symbols each group
        of a partial one still needs, and runs of blocks of which nothing arrived."""
        cursor = self.cursor
        overdue = sorted(b for b in self._assemblies if b < cursor)[:_MAX_NEED]
        need = [(b, self._assemblies[b].missing()) for b in overdue]
        whole = []
        for run in _MISSING_RUN.finditer(self._blocks, 0, cursor):
            whole.append((run.start(), run.end()))
            if len(whole) >= _MAX_WHOLE:
                break
        return need, whole

    def chunks_needed(self) -> list[int]:
        """Manifest chunks that complete blocks wait for (asked for in STATUS)."""
        return sorted({chunk_of(block) for block in self._awaiting})[:_MAX_CHUNKS_ASKED]


def _plausible(kind: int, length: int, max_encoded: int) -> bool:
    if kind == BlockKind.ZERO:
        return length == 0
    return kind in (BlockKind.RAW, BlockKind.ZSTD) and DIGEST_SIZE < length <= max_encoded
