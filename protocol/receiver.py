"""ReceiverSession: the sans-I/O state machine of one laptop.

Theory of operation
-------------------
DISCOVERING  listen on the discovery group for ANNOUNCE (optionally of one session name or
             image). A signed ANNOUNCE must verify; with ``trusted`` keys it must be signed by
             one of them. Sessions turned away are listed in ``refused_sessions``.
JOINING      SessionFound tells the driver to join the data group; JOIN (with a fresh nonce)
             goes to the sender's control address, soon repeated, until ACCEPT. A signed
             session's ACCEPT must carry the sender's signature over that nonce, so a replayed
             announcement leads nowhere: not accepted within ``sender_timeout``, we give up.
             Data is collected already, but no block is handed out before the ACCEPT.
RECEIVING    every data datagram lands in its block's assembly; a block whose groups all have
             enough symbols is handed to the driver (BlockReady), which decodes, checks and
             writes it and answers ``block_stored`` or ``block_rejected``.
             The sender's first-pass cursor (from data and SYNC) tells which blocks are
             overdue. A STATUS (the NAK) lists, per overdue block, how many symbols each group
             still needs, and ranges of blocks of which nothing arrived. The first NAK after new
             loss waits U(0, nak_backoff × GRTT) so a room of receivers does not answer at once;
             later ones follow at the sender's advertised ``nak_interval``. NAKs may repeat
             freely: the sender discounts what it already sent after our ``seq_seen``.
VERIFYING    all blocks stored: the driver hashes the whole target (VerifyImage).
REPORTING    DONE with the result, repeated until DONE_ACK or ``done_attempts``.
FINISHED     Finished(ok, reason). ``sender_lost`` if the sender went silent; ``refused`` if
             it would not take us (its late-join window had closed).

A driver resuming an earlier run (its journal) calls ``resume(blocks)`` after SessionFound:
those blocks count as stored and are never asked for.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import replace
from enum import Enum

from .assembly import ADD_COMPLETE, ADD_DUPLICATE, BlockAssembly
from .blockcodec import DIGEST_SIZE, BlockKind
from .config import Addr, ReceiverConfig
from .errors import BadPacket, LocalProtocolError
from .events import (
    BlockReady,
    Event,
    Finished,
    Joined,
    SessionFound,
    VerifyImage,
)
from .layout import block_count
from .manifest import CHUNK_DIGESTS, chunk_of, verify_chunk
from .manifest import DIGEST_SIZE as SHA256_SIZE
from .seal import Sealer, is_sealed
from .trust import NONCE_SIZE, accept_payload, announce_payload, fingerprint, verify
from .wire import (
    DATA_HEADER,
    DATA_HEADER_SIZE,
    FLAG_REPAIR,
    MAGIC,
    PROTOCOL_VERSION,
    Accept,
    Announce,
    Done,
    DoneAck,
    Join,
    ManifestChunk,
    PacketType,
    Refuse,
    Status,
    Sync,
    decode_control_untrusted,
)

# Per-block state in ``_blocks``.
MISSING, STORED, DECODING, PARTIAL = 0, 1, 2, 3
_MISSING_RUN = re.compile(b"\x00+")
_DATA_PREFIX = MAGIC + bytes((PROTOCOL_VERSION, PacketType.DATA))
FAIL_REPORT_COPIES = 3
FIRST_JOIN_RETRY = 0.01  # seconds before the first JOIN is repeated (then doubling)
FIRST_REPORT_DELAY = 0.1  # seconds from the first data datagram to the first STATUS
REJECT_LIMIT = 10  # decoded copies of one block that fail their check before we give up
RESTART_SILENCE = 2.0  # our sender silent this long + a new session of our image: it restarted
_MAX_NEED = 48  # keep a STATUS inside one 1500-byte datagram
_MAX_WHOLE = 32
_MAX_BLOCKS = 1 << 24  # block indexes a receiver will track (16 TiB at 1 MiB blocks)
_MAX_BLOCK_SIZE = 64 << 20
_CODEC_SLACK = 4096  # digest + zstd frame overhead above the raw block size (RAW is chosen
# whenever zstd does not shrink the block, so real payloads stay far below this)


class ReceiverState(Enum):
    DISCOVERING = "discovering"
    JOINING = "joining"
    RECEIVING = "receiving"
    VERIFYING = "verifying"
    REPORTING = "reporting"
    FINISHED = "finished"


class ReceiverStats:
    __slots__ = (
        "received", "duplicates", "stale", "foreign", "garbled", "overflow", "rejected",
        "naks_sent", "status_sent", "data_arrived", "unopened",
    )

    def __init__(self) -> None:
        self.received = 0  # data datagrams stored
        self.duplicates = 0
        self.stale = 0  # for blocks already complete
        self.foreign = 0  # other sessions, other programs
        self.garbled = 0
        self.overflow = 0  # dropped: too many partial blocks in memory
        self.rejected = 0  # decoded blocks that failed their digest
        self.naks_sent = 0
        self.status_sent = 0
        self.data_arrived = 0  # data datagrams of our session, whatever became of them
        # Encrypted datagrams we could not open (no key, another key, damaged), and with a
        # key, datagrams in the clear.
        self.unopened = 0

    @property
    def dropped(self) -> int:
        return self.foreign + self.garbled + self.overflow + self.unopened


class ReceiverSession:
    """Call ``receive_datagram`` for every datagram from the discovery and data groups and the
    sender; ``handle_timer`` at ``get_timer()``; then drain ``next_event()`` and send
    ``datagrams_to_send(now)``."""

    def __init__(self, config: ReceiverConfig, rng: random.Random, now: float, *,
                 sealer: Sealer | None = None) -> None:
        self.config = config
        # With a sealer we follow only encrypted sessions of its key, and seal what we send.
        self.sealer = sealer
        self._rng = rng
        self.receiver_id = rng.getrandbits(63)
        self.state = ReceiverState.DISCOVERING
        self.stats = ReceiverStats()
        self.announce: Announce | None = None
        self.sender_addr: Addr = ("", 0)
        self.session_id = -1
        self.nblocks = 0
        self.blocks_done = 0
        self.result: tuple[bool, str] | None = None
        self.sender_lost = False  # finished because the sender went silent
        self.refused = False  # finished because the sender would not take us
        self.overruns = 0  # set by the driver: datagrams our kernel dropped (socket full)
        # Other sessions announced on our discovery group: (name, sender host), a few at most.
        self.other_sessions: dict[int, tuple[str, str]] = {}
        # Sessions we would not follow: (name, sender host, why), a few at most.
        self.refused_sessions: dict[int, tuple[str, str, str]] = {}
        self.sender_key = b""  # the session's verified public key (empty: unsigned)
        self._nonce = b""
        self._join_delay = 0.0  # the last wait between two JOINs
        self._joining_since = now
        self._held: list[BlockReady] = []  # blocks complete before the ACCEPT
        self._rejections: dict[int, int] = {}  # block -> decoded copies that failed a check
        # The signed manifest: its root, the chunks of digests verified so far, and complete
        # blocks waiting for their chunk (asked for in STATUS).
        self._root = b""
        self._chunks: dict[int, bytes] = {}
        self._awaiting: dict[int, BlockAssembly] = {}  # block -> its complete assembly
        self._blocks = bytearray()
        self._assemblies: dict[int, BlockAssembly] = {}
        self._symbol_size = 0
        self._max_encoded = 0
        self._cursor = 0  # blocks below it had their first pass
        self._seq_seen = -1
        self._seq_first = 0  # the first data seq we saw: loss is counted from there
        self.first_data_at: float | None = None  # when the transfer reached us (None: joined
        # mid-stream, where a SYNC told us the sequence first)
        self._grtt = 0.05
        self._nak_interval = 0.05
        self._echo = (-1.0, 0.0)  # (sender_time, when we heard it)
        self._last_heard = now
        self._nak_at: float | None = None
        self._next_status = now
        self._next_join = now
        self._done_sent = 0
        self._next_done = now
        self._digest = b""
        self._out: list[tuple[bytes, Addr]] = []
        self._events: deque[Event] = deque()
        self._deadline: float | None = None

    # --- driver API -----------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        if self.sealer is not None:
            try:
                data = self.sealer.open_untrusted(data)
            except BadPacket:
                self._unopened(data, addr)
                return
        if data.startswith(_DATA_PREFIX) and len(data) >= DATA_HEADER_SIZE:
            self._receive_data(data, now)
            return
        try:
            msg = decode_control_untrusted(data)
        except BadPacket:
            if is_sealed(data):
                self.stats.unopened += 1
            else:
                self.stats.garbled += 1
            return
        if isinstance(msg, Announce):
            self._on_announce(msg, addr, now)
        elif msg.session_id != self.session_id:
            self.stats.foreign += 1
        elif isinstance(msg, Sync):
            self._on_sync(msg, now)
        elif isinstance(msg, ManifestChunk):
            self._on_chunk(msg, now)
        elif isinstance(msg, Accept):
            self._on_accept(msg, now)
        elif (
            isinstance(msg, DoneAck)
            and msg.receiver_id == self.receiver_id
            and self.state is ReceiverState.REPORTING
        ):
            self._finish(*self._report())
        elif (
            isinstance(msg, Refuse)
            and msg.receiver_id == self.receiver_id
            and self.state is ReceiverState.JOINING
        ):
            self.refused = True
            self._finish(False, msg.reason or "the sender refused us")
        # Other types are for the sender; a receiver ignores them.
        self._rearm()

    def handle_timer(self, now: float) -> None:
        state = self.state
        if state is ReceiverState.JOINING:
            if now - self._joining_since >= self.config.sender_timeout:
                self._finish(False, f"the session never accepted us within "
                             f"{self.config.sender_timeout:g} s (a replayed announcement, or a "
                             "sender that ignores us); nothing was written")
                return
            if now >= self._next_join:
                self._send_join(now)
        if state in (ReceiverState.JOINING, ReceiverState.RECEIVING, ReceiverState.VERIFYING):
            if now - self._last_heard >= self.config.sender_timeout:
                self.sender_lost = True
                self._finish(
                    False, f"the sender went silent for {self.config.sender_timeout:g} s "
                    "(stopped, crashed or unreachable)"
                )
                return
            if self._nak_at is not None and now >= self._nak_at or now >= self._next_status:
                self._send_status(now)
        elif state is ReceiverState.REPORTING and now >= self._next_done:
            if self._done_sent >= self.config.done_attempts:
                ok, reason = self._report()
                self._finish(ok, reason or "the sender did not confirm our report")
            else:
                self._send_done(now)
        self._rearm()

    def get_timer(self) -> float | None:
        return self._deadline

    def _rearm(self) -> None:
        """Recompute the deadline ``get_timer`` returns. Cached because the simulator asks
        after every datagram; the silence check uses ``_last_heard`` as of now, which only
        makes it fire early, and handle_timer re-checks it."""
        self._deadline = self._compute_deadline()

    def _compute_deadline(self) -> float | None:
        state = self.state
        if state in (ReceiverState.DISCOVERING, ReceiverState.FINISHED):
            return None
        if state is ReceiverState.REPORTING:
            return self._next_done
        deadline = min(self._next_status, self._last_heard + self.config.sender_timeout)
        if state is ReceiverState.JOINING:
            deadline = min(deadline, self._next_join)
        if self._nak_at is not None:
            deadline = min(deadline, self._nak_at)
        return deadline

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        if self.sealer is not None:
            return [(self.sealer.seal(datagram), addr) for datagram, addr in out]
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def loss(self) -> float:
        """Fraction of the data datagrams sent since we first heard one that never arrived
        (an estimate: a SYNC may report sequence numbers still in flight)."""
        sent = self._seq_seen - self._seq_first + 1
        return max(0.0, 1.0 - self.stats.data_arrived / sent) if sent > 0 else 0.0

    def block_stored(self, index: int) -> None:
        """The driver wrote block ``index`` (after it decoded and verified)."""
        if self._blocks[index] != DECODING:
            raise LocalProtocolError(f"block {index} was not handed out for decoding")
        self._blocks[index] = STORED
        self.blocks_done += 1
        if self.blocks_done == self.nblocks and self.state in (
            ReceiverState.JOINING, ReceiverState.RECEIVING
        ):
            self._start_verify()
            self._rearm()

    def resume(self, blocks: list[int], now: float) -> int:
        """Blocks an earlier run stored and made durable (the driver's journal): they count
        as stored and are never asked for. Returns how many were taken."""
        if self.state not in (ReceiverState.JOINING, ReceiverState.RECEIVING):
            raise LocalProtocolError("resume before SessionFound or after the transfer")
        taken = 0
        for index in blocks:
            if 0 <= index < self.nblocks and self._blocks[index] in (MISSING, PARTIAL):
                self._assemblies.pop(index, None)
                self._blocks[index] = STORED
                taken += 1
        self.blocks_done += taken
        if self.blocks_done == self.nblocks and self.state is ReceiverState.RECEIVING:
            self._start_verify()
        self._rearm()
        return taken

    def block_rejected(self, index: int) -> None:
        """Block ``index`` failed its digest: forget it; it is asked for again."""
        if self._blocks[index] != DECODING:
            raise LocalProtocolError(f"block {index} was not handed out for decoding")
        self._blocks[index] = MISSING
        self.stats.rejected += 1
        count = self._rejections[index] = self._rejections.get(index, 0) + 1
        if count >= REJECT_LIMIT:
            # Not bad luck: the sender's blocks do not match what it signed (the image changed
            # since it was hashed), or someone keeps forging this one. Asking again is futile.
            self._fail(f"block {index} failed its check {count} times: the image changed "
                       "since `mcastd serve` hashed it, or someone on this LAN keeps forging "
                       "it; nothing unverified was written")

    def image_verified(self, sha256: bytes, now: float) -> None:
        """The driver hashed the whole target; report the outcome to the sender."""
        if self.state is not ReceiverState.VERIFYING:
            raise LocalProtocolError("image_verified before VerifyImage")
        self._digest = sha256
        self.state = ReceiverState.REPORTING
        self._send_done(now)
        self._rearm()

    def fail(self, reason: str, now: float) -> None:
        """The driver cannot go on (full disk, write error): tell the sender and stop."""
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        if self.state is ReceiverState.FINISHED:
            return
        self.result = (False, reason)
        if self.session_id >= 0:
            # We stop right after this, with no retries: send it a few times so one lost
            # datagram does not leave the admin reading "silent" instead of the reason.
            done = Done(self.session_id, self.receiver_id, False, b"", reason).encode()
            self._out.extend([(done, self.sender_addr)] * FAIL_REPORT_COPIES)
        self._finish(False, reason)
        self._rearm()

    # --- data path (hot) ------------------------------------------------------------------

    def _receive_data(self, data: bytes, now: float) -> None:
        (_m, _v, _t, flags, kind, _r, sid, block, group, esi, length, seq) = (
            DATA_HEADER.unpack_from(data)
        )
        if sid != self.session_id:
            self.stats.foreign += 1
            return
        self._last_heard = now
        if seq > self._seq_seen:
            if self._seq_seen < 0:
                self._seq_first = seq
                self.first_data_at = now
                # Report soon: the sender learns from it what reaches us (its rate, and
                # whether we lag behind the room) before much is sent past us.
                self._next_status = min(self._next_status, now + FIRST_REPORT_DELAY)
                self._rearm()
            self._seq_seen = seq
        self.stats.data_arrived += 1
        if block >= self.nblocks:
            self.stats.garbled += 1
            return
        if block > self._cursor and not flags & FLAG_REPAIR:
            self._advance_cursor(block, now)
        state = self._blocks[block]
        if state == STORED or state == DECODING:  # noqa: SIM109 (hot path: no tuple)
            self.stats.stale += 1
            return
        asm = self._assemblies.get(block)
        if asm is None or asm.kind != kind or asm.layout.encoded_length != length:
            asm = self._assembly_for(block, kind, length, asm)
            if asm is None:
                return
        result = asm.add(group, esi, memoryview(data)[DATA_HEADER_SIZE:])
        if result == ADD_COMPLETE:
            del self._assemblies[block]
            self._blocks[block] = DECODING
            self.stats.received += 1
            self._ready(block, asm, now)
        elif result > 0:
            self.stats.received += 1
        elif result == ADD_DUPLICATE:
            self.stats.duplicates += 1
        else:
            self.stats.garbled += 1

    def _assembly_for(
        self, block: int, kind: int, length: int, current: BlockAssembly | None
    ) -> BlockAssembly | None:
        """A new assembly for a block, or a replacement when a header disagrees with it."""
        if not _plausible(kind, length, self._max_encoded):
            self.stats.garbled += 1
            return None
        if current is not None:
            # One corrupted first datagram must not pin a wrong layout forever: once more
            # datagrams disagree with it than agreed, start over with the newcomers' view.
            current.mismatches += 1
            if current.mismatches <= current.total:
                self.stats.garbled += 1
                return None
        elif (len(self._assemblies) + len(self._held) + len(self._awaiting)
              >= self.config.max_pending_blocks):
            self.stats.overflow += 1
            return None
        asm = BlockAssembly(block, kind, length, self._symbol_size)
        self._assemblies[block] = asm
        self._blocks[block] = PARTIAL
        return asm

    def _advance_cursor(self, cursor: int, now: float) -> None:
        old, self._cursor = self._cursor, min(cursor, self.nblocks)
        if self._lacks_any(old, self._cursor):
            self._arm_nak(now)

    def _arm_nak(self, now: float, sooner: bool = False) -> None:
        at = now + self._rng.uniform(0.0, self.config.nak_backoff * self._grtt)
        if self._nak_at is None or sooner and at < self._nak_at:
            self._nak_at = at
            self._rearm()

    def _lacks_overdue(self) -> bool:
        return self.state in (
            ReceiverState.JOINING, ReceiverState.RECEIVING
        ) and self._lacks_any(0, self._cursor)

    def _lacks_any(self, start: int, end: int) -> bool:
        """Whether a block in [start, end) is neither stored nor being decoded."""
        blocks = self._blocks
        done = blocks.count(STORED, start, end) + blocks.count(DECODING, start, end)
        return done < end - start

    # --- control ----------------------------------------------------------------------------

    def _on_announce(self, msg: Announce, addr: Addr, now: float) -> None:
        if msg.session_id == self.session_id:
            self._last_heard = now
            self._echo = (msg.sender_time, now)
            return
        if self.state is not ReceiverState.DISCOVERING:
            if self._supersedes(msg) and self._may_follow(msg, addr):
                self._follow(msg, addr, now)  # ours was a replay: nothing was handed out
                return
            self.stats.foreign += 1  # another session on the same discovery group
            if self._sender_restarted(msg, now) and not self._distrust(msg):
                self.sender_lost = True
                self._finish(False, "the sender was restarted: a new session of the same "
                                    "image is announced and ours went silent")
                return
            if msg.session_id not in self.other_sessions and len(self.other_sessions) < 16:
                self.other_sessions[msg.session_id] = (msg.name, addr[0])
            return
        if self._may_follow(msg, addr):
            self._follow(msg, addr, now)

    def _may_follow(self, msg: Announce, addr: Addr) -> bool:
        """The session is the one asked for, plausible, and trusted (else counted, and a
        refusal remembered with its reason)."""
        wanted = self.config.session_name
        if wanted is not None and msg.name != wanted:
            return False
        image = self.config.image_sha256
        if image is not None and msg.image_sha256 != image:
            return False
        if (
            not 0 < msg.block_size <= _MAX_BLOCK_SIZE
            or not 0 < msg.symbol_size <= 65000
            or not 0 <= msg.image_size <= msg.block_size * _MAX_BLOCKS
            or len(msg.image_sha256) != 32
        ):
            self.stats.garbled += 1
            return False
        why = self._distrust(msg)
        if why:
            if msg.session_id not in self.refused_sessions and len(self.refused_sessions) < 16:
                self.refused_sessions[msg.session_id] = (msg.name, addr[0], why)
            self.stats.foreign += 1
            return False
        return True

    def _supersedes(self, msg: Announce) -> bool:
        """While we wait for our session's ACCEPT: a later session signed by the same key.
        Ours is then an old one replayed (or a sender since restarted), which will never
        accept us; the later one is live. Nothing was handed out yet, so we can switch."""
        current = self.announce
        return (
            self.state is ReceiverState.JOINING
            and current is not None
            and bool(self.sender_key)
            and msg.key == self.sender_key
            and msg.created > current.created
        )

    def _follow(self, msg: Announce, addr: Addr, now: float) -> None:
        """Join this session (afresh: whatever another session left is dropped)."""
        self._held.clear()
        self._chunks.clear()
        self._awaiting.clear()
        self._assemblies.clear()
        self._rejections.clear()
        self.blocks_done = 0
        self._cursor = 0
        self._seq_seen = -1
        self._seq_first = 0
        self.first_data_at = None
        self._nak_at = None
        self.announce = msg
        self.sender_key = msg.key if msg.signature else b""
        self._root = msg.manifest if len(msg.manifest) == SHA256_SIZE else b""
        self.session_id = msg.session_id
        self.sender_addr = (msg.control_host or addr[0], msg.control_port)
        self.nblocks = block_count(msg.image_size, msg.block_size)
        self._blocks = bytearray(self.nblocks)
        self._symbol_size = msg.symbol_size
        self._max_encoded = msg.block_size + _CODEC_SLACK
        self._last_heard = now
        self._echo = (msg.sender_time, now)
        self.state = ReceiverState.JOINING
        self._joining_since = now
        self._nonce = self._rng.getrandbits(8 * NONCE_SIZE).to_bytes(NONCE_SIZE, "little")
        self._join_delay = 0.0
        self._events.append(
            SessionFound(
                msg.session_id, msg.name, msg.image_size,
                (msg.data_host, msg.data_port), self.sender_addr,
            )
        )
        self._send_join(now)

    def _ready(self, block: int, asm: BlockAssembly, now: float) -> None:
        """A block is complete: hand it out with its manifest digest, or wait for the digest
        (and ask for it), or, before the sender accepted us, hold it."""
        digest = b""
        if self._root:
            chunk = self._chunks.get(chunk_of(block))
            if chunk is None:
                self._awaiting[block] = asm
                self._arm_nak(now)
                return
            start = (block % CHUNK_DIGESTS) * SHA256_SIZE
            digest = chunk[start : start + SHA256_SIZE]
        ready = BlockReady(block, asm, digest)
        if self.state is ReceiverState.JOINING:
            self._held.append(ready)  # until the sender proves itself
        else:
            self._events.append(ready)

    def _chunks_needed(self) -> list[int]:
        """Manifest chunks that complete blocks wait for (asked for in STATUS)."""
        return sorted({chunk_of(block) for block in self._awaiting})[:16]

    def _on_chunk(self, msg: ManifestChunk, now: float) -> None:
        """A manifest chunk: kept only if it proves itself against the signed root."""
        if not self._root or msg.index in self._chunks:
            return
        if not verify_chunk(self._root, self.nblocks, msg.index, msg.digests, msg.proof):
            self.stats.garbled += 1  # forged or damaged
            return
        self._chunks[msg.index] = msg.digests
        for block in [b for b in self._awaiting if chunk_of(b) == msg.index]:
            self._ready(block, self._awaiting.pop(block), now)

    def _unopened(self, data: bytes, addr: Addr) -> None:
        """A datagram our key cannot open. One in the clear may be another session's
        announcement: remembered, so that finding nothing can say why."""
        self.stats.unopened += 1
        if is_sealed(data) or self.state is not ReceiverState.DISCOVERING:
            return
        try:
            msg = decode_control_untrusted(data)
        except BadPacket:
            return
        if (isinstance(msg, Announce) and msg.session_id not in self.refused_sessions
                and len(self.refused_sessions) < 16):
            self.refused_sessions[msg.session_id] = (
                msg.name, addr[0], "it is not encrypted, and this laptop follows only "
                "sessions encrypted with its key (--encrypt)")

    def _distrust(self, msg: Announce) -> str:
        """Why we must not follow this session ("" if we may)."""
        if msg.signature:
            unsigned = replace(msg, signature=b"").encode()
            if not verify(msg.key, announce_payload(unsigned), msg.signature):
                return "its signature does not verify (forged or damaged)"
        trusted = self.config.trusted
        if trusted is None:
            return ""
        if not msg.signature:
            return "it is not signed, and only trusted senders are followed"
        if fingerprint(msg.key) not in trusted:
            return f"it is signed by {fingerprint(msg.key)}, which is not a trusted key"
        if len(msg.manifest) != SHA256_SIZE:
            return "it has no signed manifest to check the blocks against"
        return ""


    def _sender_restarted(self, msg: Announce, now: float) -> bool:
        """A new session of our image while ours is silent: our sender crashed and came back,
        so waiting out ``sender_timeout`` would only waste time."""
        return (
            self.announce is not None
            and msg.image_sha256 == self.announce.image_sha256
            and msg.created >= self.announce.created  # not an older session replayed
            and self.state in (ReceiverState.JOINING, ReceiverState.RECEIVING)
            and now - self._last_heard >= min(RESTART_SILENCE, self.config.sender_timeout)
        )

    def _on_sync(self, msg: Sync, now: float) -> None:
        self._last_heard = now
        self._echo = (msg.sender_time, now)
        self._grtt = min(max(msg.grtt, 0.0005), 5.0)
        self._nak_interval = min(max(msg.nak_interval, 0.001), 10.0)
        if msg.last_seq > self._seq_seen:
            if self._seq_seen < 0:
                self._seq_first = msg.last_seq + 1  # joined mid-stream: count from here
            # Everything sent before this SYNC has arrived or is lost by now.
            self._seq_seen = msg.last_seq
        if msg.cursor > self._cursor:
            self._advance_cursor(msg.cursor, now)
        elif msg.backlog == 0 and self._lacks_overdue():
            # The sender is idle, so whatever we still lack was lost on the way: ask now
            # rather than at the next NAK interval (which grows with the room's size).
            self._arm_nak(now, sooner=True)

    def _on_accept(self, msg: Accept, now: float) -> None:
        if msg.receiver_id != self.receiver_id or self.state is not ReceiverState.JOINING:
            return
        payload = accept_payload(self.session_id, self.receiver_id, self._nonce)
        if self.sender_key and not verify(self.sender_key, payload, msg.proof):
            self.stats.garbled += 1  # not from the key that signed the session
            return
        self.state = ReceiverState.RECEIVING
        self._last_heard = now
        self._events.append(Joined(self.session_id))
        self._events.extend(self._held)  # only now may anything reach the disk
        self._held.clear()
        if self.blocks_done == self.nblocks:
            self._start_verify()

    def _start_verify(self) -> None:
        self.state = ReceiverState.VERIFYING
        self._nak_at = None
        self._events.append(VerifyImage())

    def _send_join(self, now: float) -> None:
        echo, heard = self._echo
        join = Join(self.session_id, self.receiver_id, echo, now - heard if echo >= 0 else 0.0,
                    self._nonce)
        self._out.append((join.encode(), self.sender_addr))
        # Every complete block is held until the ACCEPT, so a lost one must cost milliseconds:
        # retry soon, then back off to join_interval (a sender that is not there yet).
        self._join_delay = min(self.config.join_interval, max(FIRST_JOIN_RETRY,
                                                              2.0 * self._join_delay))
        self._next_join = now + self._join_delay

    def _send_status(self, now: float) -> None:
        need: list[tuple[int, list[int]]] = []
        whole: list[tuple[int, int]] = []
        if self.state in (ReceiverState.JOINING, ReceiverState.RECEIVING):
            need, whole = self._missing()  # also while our ACCEPT is still on its way
        echo, heard = self._echo
        status = Status(
            self.session_id, self.receiver_id, echo, now - heard if echo >= 0 else 0.0,
            self._seq_seen, self.blocks_done, need, whole,
            self.stats.received, self.stats.dropped, round(self.loss * 1e6),
            self.stats.data_arrived, self.overruns, self._chunks_needed(),
        )
        self._out.append((status.encode(), self.sender_addr))
        self.stats.status_sent += 1
        if need or whole or self._awaiting:
            self.stats.naks_sent += 1
            gap = max(self._nak_interval, 2.0 * self._grtt)
            self._nak_at = now + gap + self._rng.uniform(0.0, self._grtt)
        else:
            self._nak_at = None
        self._next_status = now + self.config.status_interval

    def _missing(self) -> tuple[list[tuple[int, list[int]]], list[tuple[int, int]]]:
        """Overdue blocks, lowest first, bounded to one datagram."""
        cursor = self._cursor
        overdue = sorted(b for b in self._assemblies if b < cursor)[:_MAX_NEED]
        need = [(b, self._assemblies[b].missing()) for b in overdue]
        whole = []
        for run in _MISSING_RUN.finditer(self._blocks, 0, cursor):
            whole.append((run.start(), run.end()))
            if len(whole) >= _MAX_WHOLE:
                break
        return need, whole

    def _send_done(self, now: float) -> None:
        ok, reason = self._report()
        done = Done(self.session_id, self.receiver_id, ok, self._digest, reason)
        self._out.append((done.encode(), self.sender_addr))
        self._done_sent += 1
        # Resend soon on a fast LAN (the ACK may simply have been lost), never hammer.
        self._next_done = now + min(self.config.done_interval, max(0.02, 4.0 * self._grtt))

    def _report(self) -> tuple[bool, str]:
        assert self.announce is not None
        if self._digest == self.announce.image_sha256:
            return True, ""
        return False, "the written image does not match the sender's SHA-256"

    def _finish(self, ok: bool, reason: str) -> None:
        self.state = ReceiverState.FINISHED
        self.result = (ok, reason)
        self._nak_at = None
        self._assemblies.clear()
        self._held.clear()
        self._awaiting.clear()
        self._events.append(Finished(ok, reason))
        self._rearm()


def _plausible(kind: int, length: int, max_encoded: int) -> bool:
    if kind == BlockKind.ZERO:
        return length == 0
    return kind in (BlockKind.RAW, BlockKind.ZSTD) and DIGEST_SIZE < length <= max_encoded
