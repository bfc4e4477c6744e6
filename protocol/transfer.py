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
from collections.abc import Iterable, Iterator

from .assembly import ADD_COMPLETE, ADD_DUPLICATE, BlockAssembly
from .blockcodec import DIGEST_SIZE, BlockKind
from .errors import BadPacket, LocalProtocolError
from .events import BlockReady, Event
from .layout import block_count, raw_block_length
from .manifest import CHUNK_DIGESTS, chunk_count, chunk_of, verify_chunk
from .manifest import DIGEST_SIZE as SHA256_SIZE
from .receiver_stats import ReceiverStats
from .usedmap import MAX_PIECES, decode_runs_untrusted, encode_runs, map_digest, pieces, runs_of
from .wire import DATA_HEADER_SIZE, FLAG_REPAIR, Announce, ManifestChunk, UsedMapPiece

# Per-block state in ``_blocks``. FREE: the used-block map says the source disk does not use
# it; it is never sent, never asked for, never written.
MISSING, STORED, DECODING, PARTIAL, FREE = 0, 1, 2, 3, 4
# What ``place`` asks of the session, bit flags (0 on the usual path).
FIRST_DATA = 1  # the transfer's first data datagram: report soon
NEW_LOSS = 2  # the cursor passed blocks we lack: arm the NAK
AWAITING_CHUNK = 4  # a block completed before its manifest chunk: arm the NAK (it asks for it)

_MISSING_RUN = re.compile(b"\x00+")
_LACKED_RUN = re.compile(b"[\x00\x03]+")  # MISSING or PARTIAL: what the disk lacks
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
        self._chunks_used = chunk_count(self.nblocks)  # chunks covering a used block
        self._awaiting: dict[int, BlockAssembly] = {}  # block -> its complete assembly
        # The used-block map, if the session has one: until all its pieces arrived and match
        # the signed digest, no block counts as free (and none is asked for whole).
        self._map_digest = announce.used_map if len(announce.used_map) == SHA256_SIZE else b""
        self.map_known = not self._map_digest
        self.has_map = bool(self._map_digest)  # then the end checks each used block
        self.used_count = self.nblocks  # blocks that hold something (all, until the map)
        self._map_pieces: dict[int, bytes] = {}
        self._map_count = 0  # pieces in all (0: none arrived yet)

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
        if asm is None or asm.kind != kind or asm.encoded_length != length:
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

    def add_map_piece(self, msg: UsedMapPiece) -> list[tuple[int, int]] | None:
        """A piece of the used-block map. When the last one arrives and the whole matches the
        signed digest, the free blocks are marked and their byte ranges returned (for the
        driver to discard); otherwise None."""
        if self.map_known or not 0 <= msg.index < msg.count <= MAX_PIECES:
            return None
        if self._map_count and msg.count != self._map_count:
            self._stats.garbled += 1
            return None
        self._map_count = msg.count
        self._map_pieces.setdefault(msg.index, msg.data)
        if len(self._map_pieces) < msg.count:
            return None
        encoded = b"".join(self._map_pieces[i] for i in range(msg.count))
        self._map_pieces.clear()
        self._map_count = 0
        try:
            if map_digest(encoded) != self._map_digest:
                raise BadPacket("the used-block map does not match its signed digest")
            runs = decode_runs_untrusted(encoded, self.nblocks)
        except BadPacket:
            self._stats.garbled += 1  # forged or damaged: asked for again, piece by piece
            return None
        flags = bytearray(self.nblocks)
        for start, end in runs:
            flags[start:end] = b"\x01" * (end - start)
        blocks = self._blocks
        free: list[tuple[int, int]] = []
        for start, end in runs_of(bytes(1 - f for f in flags)):
            for index in range(start, end):
                if blocks[index] in (MISSING, PARTIAL):  # a free block was never sent
                    self._assemblies.pop(index, None)
                    blocks[index] = FREE
            free.append((start * self._block_size,
                         min(end * self._block_size, self._image_size)
                         - start * self._block_size))
        self.map_known = True
        self.used_count = self.nblocks - blocks.count(FREE)
        self._chunks_used = sum(
            1 for chunk in range(chunk_count(self.nblocks))
            if blocks.count(FREE, chunk * CHUNK_DIGESTS, (chunk + 1) * CHUNK_DIGESTS)
            < min(CHUNK_DIGESTS, self.nblocks - chunk * CHUNK_DIGESTS))
        return free

    @property
    def complete(self) -> bool:
        """Every used block is on the target (the map known, if there is one)."""
        return self.map_known and self.blocks_done == self.used_count

    def map_pieces_needed(self) -> list[int]:
        """Pieces of the used-block map still missing (asked for in STATUS)."""
        if self.map_known:
            return []
        if not self._map_count:
            return [0]  # nothing yet: the first piece says how many there are
        return [i for i in range(self._map_count) if i not in self._map_pieces][
            :_MAX_CHUNKS_ASKED]

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

    def resume(self, blocks: Iterable[int]) -> int:
        """Blocks an earlier run stored: they count as stored. Returns how many were taken."""
        taken = 0
        for index in blocks:
            if 0 <= index < self.nblocks and self._blocks[index] in (MISSING, PARTIAL):
                self._assemblies.pop(index, None)
                self._blocks[index] = STORED
                taken += 1
        self.blocks_done += taken
        return taken

    def forget(self, indices: list[int]) -> None:
        """Stored blocks that read back wrong: missing again, to be asked for and rewritten."""
        blocks = self._blocks
        for index in indices:
            if 0 <= index < self.nblocks and blocks[index] == STORED:
                blocks[index] = MISSING
                self.blocks_done -= 1

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
        """Whether a block in [start, end) is neither stored, being decoded nor free."""
        blocks = self._blocks
        done = (blocks.count(STORED, start, end) + blocks.count(DECODING, start, end)
                + blocks.count(FREE, start, end))
        return done < end - start

    def missing(self) -> tuple[list[tuple[int, list[int]]], list[tuple[int, int]]]:
        """Overdue blocks, lowest first, bounded to one datagram: how many symbols each group
        of a partial one still needs, and runs of blocks of which nothing arrived."""
        cursor = self.cursor
        overdue = sorted(b for b in self._assemblies if b < cursor)[:_MAX_NEED]
        need = [(b, self._assemblies[b].missing()) for b in overdue]
        whole: list[tuple[int, int]] = []
        if not self.map_known:
            return need, whole  # whole blocks are asked for once we know which are free
        for run in _MISSING_RUN.finditer(self._blocks, 0, cursor):
            whole.append((run.start(), run.end()))
            if len(whole) >= _MAX_WHOLE:
                break
        return need, whole

    def has_all_chunks(self) -> bool:
        """Every chunk covering a used block is here (what the final check and a delta
        receiver's comparison need); cheap until that is possible at all."""
        return len(self._chunks) >= self._chunks_used and not self.chunks_for_verify()

    def chunks_for_verify(self) -> list[int]:
        """Manifest chunks of used blocks that we lack (a resumed run never received the
        chunks of the blocks it took from its journal); the final check needs them all."""
        if not self._root:
            return []
        blocks, missing = self._blocks, []
        for chunk in range(chunk_count(self.nblocks)):
            start = chunk * CHUNK_DIGESTS
            end = min(start + CHUNK_DIGESTS, self.nblocks)
            if chunk not in self._chunks and blocks.count(FREE, start, end) < end - start:
                missing.append(chunk)
                if len(missing) >= _MAX_CHUNKS_ASKED:
                    break
        return missing

    def used_blocks(self) -> Iterator[tuple[int, int, bytes]]:
        """(offset, length, SHA-256) of every used block, in order: what the final check reads
        back from the disk. Every chunk must be there (``chunks_for_verify`` empty)."""
        blocks, size = self._blocks, self._block_size
        for index in range(self.nblocks):
            if blocks[index] != FREE:
                chunk = self._chunks[chunk_of(index)]
                start = (index % CHUNK_DIGESTS) * SHA256_SIZE
                yield (index * size, raw_block_length(index, self._image_size, size),
                       chunk[start : start + SHA256_SIZE])

    def blocks_to_compare(self) -> Iterator[tuple[int, int, int, bytes]]:
        """(index, offset, length, SHA-256) of every used block not yet stored, in order: what
        a delta receiver reads from its disk. Every chunk must be there. The block table as
        it is now: the driver reads the disk in a thread while blocks go on arriving."""
        blocks, size = bytes(self._blocks), self._block_size
        for run in _LACKED_RUN.finditer(blocks):
            for index in range(run.start(), run.end()):
                chunk = self._chunks[chunk_of(index)]
                start = (index % CHUNK_DIGESTS) * SHA256_SIZE
                yield (index, index * size, raw_block_length(index, self._image_size, size),
                       chunk[start : start + SHA256_SIZE])

    @property
    def lacked_count(self) -> int:
        """Used blocks neither stored nor being written."""
        blocks = self._blocks
        return blocks.count(MISSING) + blocks.count(PARTIAL)

    def lack_report(self) -> list[bytes]:
        """The LACKS pieces: runs of the used blocks not stored (protocol/delta.py)."""
        runs = [(m.start(), m.end()) for m in _LACKED_RUN.finditer(self._blocks)]
        return pieces(encode_runs(runs))

    def chunks_needed(self) -> list[int]:
        """Manifest chunks that complete blocks wait for (asked for in STATUS)."""
        return sorted({chunk_of(block) for block in self._awaiting})[:_MAX_CHUNKS_ASKED]


def _plausible(kind: int, length: int, max_encoded: int) -> bool:
    if kind == BlockKind.ZERO:
        return length == 0
    return kind in (BlockKind.RAW, BlockKind.ZSTD) and DIGEST_SIZE < length <= max_encoded
