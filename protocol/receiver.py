"""ReceiverSession: the sans-I/O state machine of one laptop.

Theory of operation
-------------------
DISCOVERING  listen on the discovery group for ANNOUNCE (optionally of one session name or
             image). A signed ANNOUNCE must verify; with ``trusted`` keys it must be signed by
             one of them. Sessions turned away are listed in ``refused_sessions``.
JOINING      SessionFound tells the driver to join the data group; JOIN (with a fresh nonce)
             goes to the sender's control address, soon repeated, until ACCEPT. A signed
             session's ACCEPT must carry the sender's signature over that nonce, so a replayed
             announcement leads nowhere: not accepted within ``sender_timeout``, we give up,
             and a later session of the same key announced meanwhile is followed instead.
             Data is collected already, but no block is handed out before the ACCEPT.
COMPARING    a delta receiver (``config.delta``, a session with a manifest) right after the
             ACCEPT: once it holds the used-block map and every chunk of the manifest
             (STATUS asks for what the sender's paced multicast of them lost), the driver
             reads the disk (CompareDisk) and passes the blocks it already holds to
             ``compared``; they count as stored, as a journal's do. Data arriving meanwhile
             (a late joiner) is written as usual, but nothing is asked for. Then the runs of
             what it lacks go to the sender (LACKS), repeated until a LACKS_ACK confirms
             them (protocol/delta.py), and it goes on RECEIVING.
RECEIVING    every data datagram lands in its block's assembly; a block whose groups all have
             enough symbols is handed to the driver (BlockReady), which decodes, checks and
             writes it and answers ``block_stored`` or ``block_rejected``.
             The sender's first-pass cursor (from data and SYNC) tells which blocks are
             overdue. A STATUS (the NAK) lists, per overdue block, how many symbols each group
             still needs, and ranges of blocks of which nothing arrived. The first NAK after new
             loss waits U(0, nak_backoff × GRTT) so a room of receivers does not answer at once;
             later ones follow at the sender's advertised ``nak_interval``. NAKs may repeat
             freely: the sender discounts what it already sent after our ``seq_seen``.
VERIFYING    all blocks stored: the driver hashes the whole target (VerifyImage). With a
             used-block map (a prepared image) the free blocks are known from the map
             (FreeBlocks: the driver discards them) and never asked for; once every used block
             is stored the driver reads each back and checks it against the manifest
             (VerifyImage.per_block), after any chunks a resumed run lacks arrived.
REPORTING    DONE with the result, repeated until DONE_ACK or ``done_attempts``.
FINISHED     Finished(ok, reason). ``sender_lost`` if the sender went silent; ``refused`` if
             it would not take us (its late-join window had closed).

A driver resuming an earlier run (its journal) calls ``resume(blocks)`` after SessionFound:
those blocks count as stored and are never asked for. Its journal is removed at the end once
``journal_spent`` (protocol/resume.py).

The session owns the states, the timers and the dispatch of control messages. Which
announcement to follow is ``SessionChoice``'s rule (protocol/choice.py); the followed session's
blocks are a ``Transfer`` (protocol/transfer.py), a new one for each session followed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator
from enum import Enum

from .choice import SessionChoice
from .config import Addr, ReceiverConfig
from .datapath import Datagrams, place_run
from .errors import BadPacket, LocalProtocolError
from .events import (
    CompareDisk,
    Event,
    Finished,
    FreeBlocks,
    Joined,
    SessionFound,
    VerifyImage,
)
from .receiver_stats import ReceiverStats
from .seal import Sealer, is_sealed
from .transfer import AWAITING_CHUNK, FIRST_DATA, NEW_LOSS, Transfer
from .trust import NONCE_SIZE, abort_payload, accept_payload, verify
from .wire import (
    CAUSE_DISK,
    DATA_HEADER,
    DATA_HEADER_SIZE,
    KIND_MASK,
    MAGIC,
    PROTOCOL_VERSION,
    SESSION_TAG_MASK,
    Abort,
    Accept,
    Announce,
    Done,
    DoneAck,
    Join,
    Lacks,
    LacksAck,
    ManifestChunk,
    PacketType,
    Refuse,
    Status,
    Sync,
    UsedMapPiece,
    decode_control_untrusted,
)

_DATA_PREFIX = MAGIC + bytes((PROTOCOL_VERSION, PacketType.DATA))
FAIL_REPORT_COPIES = 3
FIRST_JOIN_RETRY = 0.01  # seconds before the first JOIN is repeated (then doubling)
FIRST_REPORT_DELAY = 0.1  # seconds from the first data datagram to the first STATUS
REJECT_LIMIT = 10  # decoded copies of one block that fail their check before we give up
# Times one block is fetched and written again because the disk read it back wrong, before we
# conclude that the disk does not keep what it is given.
REWRITE_LIMIT = 3


class ReceiverState(Enum):
    DISCOVERING = "discovering"
    JOINING = "joining"
    COMPARING = "comparing"
    RECEIVING = "receiving"
    VERIFYING = "verifying"
    REPORTING = "reporting"
    FINISHED = "finished"


class _Input(Enum):
    """What moves a receiver on (the keys of ``_TRANSITIONS``, with its state)."""

    FOLLOW = "an announcement we may follow"
    ACCEPTED = "the sender's ACCEPT"
    ACCEPTED_DELTA = "the sender's ACCEPT of a delta receiver"
    COMPARED = "the driver compared the disk"
    ALL_STORED = "the last block stored"
    READ_BACK_BAD = "blocks read back wrong"
    HASHED = "the driver hashed the whole image"
    FINISH = "the end"


# A receiver follows one session at a time and only goes forward:
#   DISCOVERING --FOLLOW--> JOINING --ACCEPTED--> RECEIVING --ALL_STORED--> VERIFYING
#   --HASHED--> REPORTING --FINISH--> FINISHED
# A delta receiver goes JOINING --ACCEPTED_DELTA--> COMPARING --COMPARED--> RECEIVING. The one
# way back: VERIFYING --READ_BACK_BAD--> RECEIVING, blocks the disk returned wrong fetched and
# written again (at most REWRITE_LIMIT times each).
# JOINING --FOLLOW--> JOINING: a later session of the same key supersedes ours (a replay);
# nothing was handed out yet, so it starts afresh with a new Transfer. Blocks stored (or
# resumed) before the ACCEPT wait for it: all of them stored at the ACCEPT, RECEIVING moves
# straight on to VERIFYING. Every state but FINISHED may FINISH early: refused, never
# accepted, a silent or restarted sender, a block that keeps failing its check, or the
# driver's fail() (also while DISCOVERING: nothing was announced). Any other pair is a bug in
# the caller: LocalProtocolError.
_TRANSITIONS: dict[tuple[ReceiverState, _Input], ReceiverState] = {
    (ReceiverState.DISCOVERING, _Input.FOLLOW): ReceiverState.JOINING,
    (ReceiverState.JOINING, _Input.FOLLOW): ReceiverState.JOINING,
    (ReceiverState.JOINING, _Input.ACCEPTED): ReceiverState.RECEIVING,
    (ReceiverState.JOINING, _Input.ACCEPTED_DELTA): ReceiverState.COMPARING,
    (ReceiverState.COMPARING, _Input.COMPARED): ReceiverState.RECEIVING,
    (ReceiverState.RECEIVING, _Input.ALL_STORED): ReceiverState.VERIFYING,
    (ReceiverState.VERIFYING, _Input.HASHED): ReceiverState.REPORTING,
    (ReceiverState.VERIFYING, _Input.READ_BACK_BAD): ReceiverState.RECEIVING,
    **{(state, _Input.FINISH): ReceiverState.FINISHED
       for state in ReceiverState if state is not ReceiverState.FINISHED},
}


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
        self._state = ReceiverState.DISCOVERING
        self.stats = ReceiverStats()
        self._choice = SessionChoice(config, self.stats, sealed=sealer is not None)
        self._transfer: Transfer | None = None  # the session followed (None: none yet)
        self.sender_addr: Addr = ("", 0)
        self.session_id = -1
        self.result: tuple[bool, str] | None = None
        self.sender_lost = False  # finished because the sender went silent
        self.refused = False  # finished because the sender would not take us
        self.overruns = 0  # set by the driver: datagrams our kernel dropped (socket full)
        self._nonce = b""
        self._join_delay = 0.0  # the last wait between two JOINs
        self._joining_since = now
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
        self._hashed = False  # the driver hashed the whole image (image_verified)
        # What waits for every manifest chunk of the used blocks (asked for in STATUS): the
        # final check (VerifyImage) or a delta receiver's comparison (CompareDisk).
        self._after_chunks: Event | None = None
        self._delta = False  # the followed session is received as a delta (config.delta)
        self._lack_pieces: list[bytes] = []  # our LACKS report, once compared
        self._lacks_unacked = False  # sent, and not confirmed by the sender yet
        self._rewrites: dict[int, int] = {}  # block -> times it read back wrong
        self.verified_bytes = 0  # what the driver read back and found right
        self._out: list[tuple[bytes, Addr]] = []
        self._events: deque[Event] = deque()
        self._deadline: float | None = None

    # --- what drivers read ------------------------------------------------------------------

    @property
    def state(self) -> ReceiverState:
        return self._state

    @property
    def announce(self) -> Announce | None:
        """The announcement of the session followed (None: none yet)."""
        return self._transfer.announce if self._transfer is not None else None

    @property
    def sender_key(self) -> bytes:
        """The session's verified public key (empty: unsigned, or none followed)."""
        return self._transfer.sender_key if self._transfer is not None else b""

    @property
    def nblocks(self) -> int:
        return self._transfer.nblocks if self._transfer is not None else 0

    @property
    def blocks_done(self) -> int:
        return self._transfer.blocks_done if self._transfer is not None else 0

    @property
    def blocks_used(self) -> int:
        """Blocks that hold something: all of them until the used-block map arrived."""
        return self._transfer.used_count if self._transfer is not None else 0

    @property
    def first_data_at(self) -> float | None:
        """When the transfer reached us (None: not yet, or joined mid-stream, where a SYNC
        told us the sequence first)."""
        return self._transfer.first_data_at if self._transfer is not None else None

    @property
    def other_sessions(self) -> dict[int, tuple[str, str]]:
        """Other sessions announced on our discovery group: (name, sender host), a few."""
        return self._choice.other_sessions

    @property
    def refused_sessions(self) -> dict[int, tuple[str, str, str]]:
        """Sessions we would not follow: (name, sender host, why), a few at most."""
        return self._choice.refused_sessions

    @property
    def loss(self) -> float:
        """Fraction of the data datagrams sent since we first heard one that never arrived
        (an estimate: a SYNC may report sequence numbers still in flight)."""
        transfer = self._transfer
        if transfer is None:
            return 0.0
        sent = transfer.seq_seen - transfer.seq_first + 1
        return max(0.0, 1.0 - self.stats.data_arrived / sent) if sent > 0 else 0.0

    @property
    def journal_spent(self) -> bool:
        """Whether the driver's journal has served: the whole image was hashed at the end,
        verified or proven wrong, so the next run starts afresh. Until then a journal is
        flushed and kept, for the next run to receive only what this one lacked."""
        return self._hashed

    # --- driver API -----------------------------------------------------------------------

    def receive_many(self, batch: Datagrams, now: float) -> None:
        """A batch of datagrams in place, as ``receive_datagram`` of each in turn would take
        them: the runs of plain data in one call each (protocol/datapath.py), anything else
        one by one."""
        i, count = 0, batch.count
        while i < count:
            transfer = self._transfer
            if transfer is not None and self.sealer is None:
                placed = place_run(transfer, self.session_id & SESSION_TAG_MASK, batch.buf,
                                   batch.spans, i, count)
                if placed > i:
                    self._last_heard = now
                    i = placed
                    if i == count:
                        return
            self.receive_datagram(batch.datagram(i), batch.address_of(i), now)
            i += 1

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        if self.sealer is not None:
            try:
                data = self.sealer.open_untrusted(data)
            except BadPacket:
                self.stats.unopened += 1
                if self._state is ReceiverState.DISCOVERING:
                    self._choice.note_unopened(data, addr)
                return
        if data.startswith(_DATA_PREFIX) and len(data) >= DATA_HEADER_SIZE:
            # The hot path (~85,000 datagrams/s at 1 Gbit/s): one call into the transfer.
            (_m, _v, _t, flags, esi, group, tag, block, length, seq) = (
                DATA_HEADER.unpack_from(data)
            )
            if tag != self.session_id & SESSION_TAG_MASK:
                self.stats.foreign += 1
                return
            self._last_heard = now
            transfer = self._transfer
            assert transfer is not None  # (a session id is set: a session is followed)
            asks = transfer.place(data, now, flags, flags & KIND_MASK, block, group, esi,
                                  length, seq)
            if asks:
                self._on_data_asks(asks, now)
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
            if self._transfer is not None:
                self._transfer.add_chunk(msg)
                waiting = self._after_chunks
                if waiting is not None and self._transfer.has_all_chunks():
                    self._after_chunks = None
                    self._events.append(waiting)
        elif isinstance(msg, UsedMapPiece):
            self._on_map_piece(msg)
        elif isinstance(msg, Accept):
            self._on_accept(msg, now)
        elif isinstance(msg, LacksAck) and msg.receiver_id == self.receiver_id:
            self._on_lacks_ack(msg)
        elif isinstance(msg, Abort):
            self._on_abort(msg)
        elif (
            isinstance(msg, DoneAck)
            and msg.receiver_id == self.receiver_id
            and self._state is ReceiverState.REPORTING
        ):
            self._finish(*self._report())
        elif (
            isinstance(msg, Refuse)
            and msg.receiver_id == self.receiver_id
            and self._state is ReceiverState.JOINING
        ):
            self.refused = True
            self._finish(False, msg.reason or "the sender refused us")
        # Other types are for the sender; a receiver ignores them.
        self._rearm()

    def handle_timer(self, now: float) -> None:
        state = self._state
        if state is ReceiverState.JOINING:
            if now - self._joining_since >= self.config.sender_timeout:
                self._finish(False, f"the session never accepted us within "
                             f"{self.config.sender_timeout:g} s (a replayed announcement, or a "
                             "sender that ignores us); nothing was written")
                return
            if now >= self._next_join:
                self._send_join(now)
        if state in (ReceiverState.JOINING, ReceiverState.COMPARING, ReceiverState.RECEIVING,
                     ReceiverState.VERIFYING):
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

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        if self.sealer is not None:
            return [(self.sealer.seal(datagram), addr) for datagram, addr in out]
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def block_stored(self, index: int) -> None:
        """The driver wrote block ``index`` (after it decoded and verified)."""
        transfer = self._followed("block_stored")
        transfer.store(index)
        # Before the ACCEPT (none was handed out: the driver's own doing), the verify waits
        # for it, as for resumed blocks.
        if transfer.complete and self._state is ReceiverState.RECEIVING:
            self._start_verify()
            self._rearm()

    def resume(self, blocks: list[int], now: float) -> int:
        """Blocks an earlier run stored and made durable (the driver's journal): they count
        as stored and are never asked for. Returns how many were taken."""
        if self._state not in (ReceiverState.JOINING, ReceiverState.RECEIVING):
            raise LocalProtocolError("resume before SessionFound or after the transfer")
        transfer = self._followed("resume")
        taken = transfer.resume(blocks)
        if transfer.complete and self._state is ReceiverState.RECEIVING:
            self._start_verify()
        self._rearm()
        return taken

    def blocks_to_compare(self) -> Iterator[tuple[int, int, int, bytes]]:
        """(index, offset, length, SHA-256) of each used block not stored yet: what
        ``CompareDisk`` reads from the disk."""
        return self._followed("blocks_to_compare").blocks_to_compare()

    @property
    def blocks_lacked(self) -> int:
        """Used blocks not stored yet (what a comparison reads)."""
        return self._transfer.lacked_count if self._transfer is not None else 0

    def compared(self, matching: Iterable[int], now: float) -> int:
        """The blocks ``CompareDisk`` found on the disk as the manifest has them: they count
        as stored. The sender learns what we still lack. Returns how many were taken."""
        if self._state is not ReceiverState.COMPARING:
            raise LocalProtocolError("compared before CompareDisk")
        transfer = self._followed("compared")
        taken = transfer.resume(matching)
        self._transition(_Input.COMPARED)
        self._lack_pieces = transfer.lack_report()
        self._lacks_unacked = True
        self._send_lacks(range(len(self._lack_pieces)))
        self._arm_nak(now)  # the STATUS that asks the sender to confirm it
        if transfer.complete:
            self._start_verify()
        self._rearm()
        return taken

    def block_rejected(self, index: int) -> None:
        """Block ``index`` failed its digest: forget it; it is asked for again."""
        count = self._followed("block_rejected").reject(index)
        if count >= REJECT_LIMIT:
            # Not bad luck: the sender's blocks do not match what it signed (the image changed
            # since it was hashed), or someone keeps forging this one. Asking again is futile.
            self._fail(f"block {index} failed its check {count} times: the image changed "
                       "since `mcastd serve` hashed it, or someone on this LAN keeps forging "
                       "it; nothing unverified was written")

    def read_back_bad(self, blocks: list[int], now: float) -> None:
        """``VerifyImage(per_block)`` found these blocks other than they were written: fetch
        and write them again. A block that comes back wrong REWRITE_LIMIT times ends it: the
        disk does not keep what it is given (a disk error, with the first such block)."""
        if self._state is not ReceiverState.VERIFYING:
            raise LocalProtocolError("read_back_bad before VerifyImage")
        transfer = self._followed("read_back_bad")
        rewrites = self._rewrites
        for index in blocks:
            rewrites[index] = rewrites.get(index, 0) + 1
        worn = sorted(b for b in blocks if rewrites[b] > REWRITE_LIMIT)
        if worn:
            at = worn[0] * transfer.announce.block_size
            self._fail(f"the disk returned other bytes than were written at byte {at} (block "
                       f"{worn[0]}) after writing it {REWRITE_LIMIT + 1} times: it does not keep "
                       "what it is given; replace it", CAUSE_DISK)
            return
        transfer.forget(blocks)
        self._transition(_Input.READ_BACK_BAD)
        self._arm_nak(now)
        self._rearm()

    def image_verified(self, sha256: bytes, now: float, verified_bytes: int = 0) -> None:
        """The driver hashed the whole target (or, with a used-block map, checked every used
        block: it then passes the announced digest); report the outcome to the sender."""
        if self._state is not ReceiverState.VERIFYING:
            raise LocalProtocolError("image_verified before VerifyImage")
        self._digest = sha256
        self.verified_bytes = verified_bytes
        self._hashed = True
        self._transition(_Input.HASHED)
        self._send_done(now)
        self._rearm()

    def fail(self, reason: str, now: float, cause: str = "") -> None:
        """The driver cannot go on (full disk, write error: ``cause`` CAUSE_DISK): tell the
        sender and stop."""
        self._fail(reason, cause)

    # --- states -----------------------------------------------------------------------------

    def _transition(self, on: _Input) -> None:
        """The one place the state changes, as ``_TRANSITIONS`` allows."""
        new = _TRANSITIONS.get((self._state, on))
        if new is None:
            raise LocalProtocolError(f"impossible while {self._state.value}: {on.value}")
        self._state = new
        if self._transfer is not None:
            # Until the sender proved itself with its ACCEPT, complete blocks are held.
            self._transfer.holding = new is ReceiverState.JOINING

    def _followed(self, call: str) -> Transfer:
        if self._transfer is None:
            raise LocalProtocolError(f"{call} before SessionFound")
        return self._transfer

    def _follow(self, msg: Announce, addr: Addr, now: float) -> None:
        """Join this session, afresh: whatever another session left goes with its Transfer."""
        self._transfer = Transfer(msg, self.stats, self._events, self.config.max_pending_blocks)
        # Without a manifest there is nothing to compare the disk with: received in full.
        self._delta = self.config.delta and len(msg.manifest) == 32
        self._after_chunks = None
        self._lack_pieces, self._lacks_unacked = [], False
        self._nak_at = None
        self.session_id = msg.session_id
        self.sender_addr = (in_zone_of(msg.control_host, addr[0]), msg.control_port)
        self._last_heard = now
        self._echo = (msg.sender_time, now)
        self._transition(_Input.FOLLOW)
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

    def _start_verify(self) -> None:
        self._transition(_Input.ALL_STORED)
        self._nak_at = None
        transfer = self._transfer
        assert transfer is not None
        if transfer.has_map:
            # Each used block is read back and checked against its manifest digest, so every
            # chunk is needed (blocks resumed from a journal came without theirs).
            self._when_chunks_in(VerifyImage(per_block=True))
            return
        self._events.append(VerifyImage())

    def _when_chunks_in(self, event: Event) -> None:
        """``event`` now if every manifest chunk of the used blocks is here, else once they
        are (the STATUS asks for them)."""
        transfer = self._transfer
        assert transfer is not None
        if transfer.has_all_chunks():
            self._events.append(event)
            return
        self._after_chunks = event
        self._arm_nak(self._last_heard)

    def _on_map_piece(self, msg: UsedMapPiece) -> None:
        transfer = self._transfer
        if transfer is None:
            return
        free = transfer.add_map_piece(msg)
        if free is None:
            return
        if free:
            self._events.append(FreeBlocks(tuple(free)))
        if transfer.complete and self._state is ReceiverState.RECEIVING:
            self._start_verify()
        elif self._state is ReceiverState.COMPARING and self._after_chunks is None:
            self._when_chunks_in(CompareDisk())

    def used_blocks(self) -> Iterator[tuple[int, int, bytes]]:
        """(offset, length, SHA-256) of every used block: what ``VerifyImage(per_block)``
        reads back."""
        return self._followed("used_blocks").used_blocks()

    def _fail(self, reason: str, cause: str = "") -> None:
        if self._state is ReceiverState.FINISHED:
            return
        self.result = (False, reason)
        if self.session_id >= 0:
            # We stop right after this, with no retries: send it a few times so one lost
            # datagram does not leave the admin reading "silent" instead of the reason.
            done = Done(self.session_id, self.receiver_id, False, b"", reason,
                        cause=cause, host=dict(self.config.host)).encode()
            self._out.extend([(done, self.sender_addr)] * FAIL_REPORT_COPIES)
        self._finish(False, reason)
        self._rearm()

    def _finish(self, ok: bool, reason: str) -> None:
        self._transition(_Input.FINISH)
        self.result = (ok, reason)
        self._nak_at = None
        if self._transfer is not None:
            self._transfer.drop_pending()
        self._events.append(Finished(ok, reason))
        self._rearm()

    # --- timers -----------------------------------------------------------------------------

    def _rearm(self) -> None:
        """Recompute the deadline ``get_timer`` returns. Cached because the simulator asks
        after every datagram; the silence check uses ``_last_heard`` as of now, which only
        makes it fire early, and handle_timer re-checks it."""
        self._deadline = self._compute_deadline()

    def _compute_deadline(self) -> float | None:
        state = self._state
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

    def _on_data_asks(self, asks: int, now: float) -> None:
        """What a data datagram asked for (``Transfer.place``), in the order it arose."""
        if asks & FIRST_DATA:
            # Report soon: the sender learns from it what reaches us (its rate, and
            # whether we lag behind the room) before much is sent past us.
            self._next_status = min(self._next_status, now + FIRST_REPORT_DELAY)
            self._rearm()
        if asks & NEW_LOSS:
            self._arm_nak(now)
        if asks & AWAITING_CHUNK:
            self._arm_nak(now)

    def _arm_nak(self, now: float, sooner: bool = False) -> None:
        at = now + self._rng.uniform(0.0, self.config.nak_backoff * self._grtt)
        if self._nak_at is None or sooner and at < self._nak_at:
            self._nak_at = at
            self._rearm()

    def _lacks_overdue(self, transfer: Transfer) -> bool:
        return self._state in (
            ReceiverState.JOINING, ReceiverState.RECEIVING
        ) and transfer.lacks_any(0, transfer.cursor)

    # --- control ----------------------------------------------------------------------------

    def _on_announce(self, msg: Announce, addr: Addr, now: float) -> None:
        if msg.session_id == self.session_id:
            self._last_heard = now
            self._echo = (msg.sender_time, now)
            return
        choice, state = self._choice, self._state
        if state is ReceiverState.DISCOVERING:
            if choice.may_follow(msg, addr):
                self._follow(msg, addr, now)
            return
        followed = self.announce
        if (choice.supersedes(msg, followed, self.sender_key,
                              joining=state is ReceiverState.JOINING)
                and choice.may_follow(msg, addr)):
            self._follow(msg, addr, now)  # ours was a replay: nothing was handed out
            return
        self.stats.foreign += 1  # another session on the same discovery group
        following = state in (ReceiverState.JOINING, ReceiverState.RECEIVING)
        if choice.sender_restarted(msg, followed, following=following,
                                   silent_for=now - self._last_heard):
            self.sender_lost = True
            self._finish(False, "the sender was restarted: a new session of the same "
                                "image is announced and ours went silent")
            return
        choice.note_other(msg, addr)

    def _on_sync(self, msg: Sync, now: float) -> None:
        self._last_heard = now
        self._echo = (msg.sender_time, now)
        self._grtt = min(max(msg.grtt, 0.0005), 5.0)
        self._nak_interval = min(max(msg.nak_interval, 0.001), 10.0)
        transfer = self._transfer
        if transfer is None:
            return  # (a SYNC naming session -1, before we follow any)
        transfer.sync_seq(msg.last_seq)
        if msg.cursor > transfer.cursor:
            if transfer.advance_cursor(msg.cursor):
                self._arm_nak(now)
        elif msg.backlog == 0 and self._lacks_overdue(transfer):
            # The sender is idle, so whatever we still lack was lost on the way: ask now
            # rather than at the next NAK interval (which grows with the room's size).
            self._arm_nak(now, sooner=True)

    def _on_accept(self, msg: Accept, now: float) -> None:
        transfer = self._transfer
        if (msg.receiver_id != self.receiver_id or self._state is not ReceiverState.JOINING
                or transfer is None):
            return
        payload = accept_payload(self.session_id, self.receiver_id, self._nonce)
        if transfer.sender_key and not verify(transfer.sender_key, payload, msg.proof):
            self.stats.garbled += 1  # not from the key that signed the session
            return
        compare = self._delta and not transfer.complete
        self._transition(_Input.ACCEPTED_DELTA if compare else _Input.ACCEPTED)
        self._last_heard = now
        self._events.append(Joined(self.session_id))
        self._events.extend(transfer.release_held())  # only now may anything reach the disk
        if transfer.complete:
            self._start_verify()
        elif compare and transfer.map_known:  # (else once the map is in)
            self._when_chunks_in(CompareDisk())

    def _on_abort(self, msg: Abort) -> None:
        """The sender stopped mid-way and says why; what we stored stays (the journal), so a
        sender of the same image started again serves only the rest."""
        key = self.sender_key
        if key and not verify(key, abort_payload(self.session_id, msg.reason), msg.signature):
            self.stats.garbled += 1  # not from the key that signed the session
            return
        if self._state in (ReceiverState.REPORTING, ReceiverState.FINISHED):
            return  # (reporting: our image is verified already, whatever the sender does)
        self.sender_lost = True
        self._finish(False, f"the sender stopped: {msg.reason.rstrip('.')}")

    def _on_lacks_ack(self, msg: LacksAck) -> None:
        """The sender took our report (nothing missing), or names pieces it lacks."""
        if not self._lacks_unacked:
            return
        if not msg.missing:
            self._lacks_unacked = False
            return
        self._send_lacks(i for i in msg.missing if 0 <= i < len(self._lack_pieces))

    # --- what we send -------------------------------------------------------------------------

    def _send_join(self, now: float) -> None:
        echo, heard = self._echo
        join = Join(self.session_id, self.receiver_id, echo, now - heard if echo >= 0 else 0.0,
                    self._nonce, self._delta, dict(self.config.host))
        self._out.append((join.encode(), self.sender_addr))
        # Every complete block is held until the ACCEPT, so a lost one must cost milliseconds:
        # retry soon, then back off to join_interval (a sender that is not there yet).
        self._join_delay = min(self.config.join_interval, max(FIRST_JOIN_RETRY,
                                                              2.0 * self._join_delay))
        self._next_join = now + self._join_delay

    def _send_status(self, now: float) -> None:
        transfer = self._transfer
        assert transfer is not None  # (joining to verifying: a session is followed)
        need: list[tuple[int, list[int]]] = []
        whole: list[tuple[int, int]] = []
        if self._state in (ReceiverState.JOINING, ReceiverState.RECEIVING):
            need, whole = transfer.missing()  # also while our ACCEPT is still on its way
        echo, heard = self._echo
        status = Status(
            self.session_id, self.receiver_id, echo, now - heard if echo >= 0 else 0.0,
            transfer.seq_seen, transfer.blocks_done, need, whole,
            self.stats.received, self.stats.dropped, round(self.loss * 1e6),
            self.stats.data_arrived, self.overruns,
            (transfer.chunks_for_verify() if self._after_chunks is not None
             else transfer.chunks_needed()),
            transfer.map_pieces_needed(),
            len(self._lack_pieces) if self._lacks_unacked else 0,
        )
        self._out.append((status.encode(), self.sender_addr))
        self.stats.status_sent += 1
        if (need or whole or transfer.awaits_chunks or status.map_pieces
                or self._after_chunks is not None or self._lacks_unacked):
            self.stats.naks_sent += 1
            gap = max(self._nak_interval, 2.0 * self._grtt)
            self._nak_at = now + gap + self._rng.uniform(0.0, self._grtt)
        else:
            self._nak_at = None
        self._next_status = now + self.config.status_interval

    def _send_lacks(self, indices: Iterable[int]) -> None:
        count = len(self._lack_pieces)
        for index in indices:
            lacks = Lacks(self.session_id, self.receiver_id, index, count,
                          self._lack_pieces[index])
            self._out.append((lacks.encode(), self.sender_addr))

    def _send_done(self, now: float) -> None:
        ok, reason = self._report()
        done = Done(self.session_id, self.receiver_id, ok, self._digest, reason,
                    self.verified_bytes, host=dict(self.config.host))
        self._out.append((done.encode(), self.sender_addr))
        self._done_sent += 1
        # Resend soon on a fast LAN (the ACK may simply have been lost), never hammer.
        self._next_done = now + min(self.config.done_interval, max(0.02, 4.0 * self._grtt))

    def _report(self) -> tuple[bool, str]:
        announce = self.announce
        assert announce is not None
        if self._digest == announce.image_sha256:
            return True, ""
        return False, "the written image does not match the sender's SHA-256"


def in_zone_of(host: str, source: str) -> str:
    """The sender's control host as announced (empty: the announcement's source), in the zone
    the announcement came from: an IPv6 link-local address names the sender's interface,
    which means nothing here ("fe80::1" heard as "fe80::1%eth0" → "fe80::1%eth0")."""
    if not host:
        return source
    if "%" in source and "%" not in host and host.lower().startswith("fe80:"):
        return host + source[source.index("%"):]
    return host
