"""SenderSession: the sans-I/O state machine of the admin's machine.

Theory of operation
-------------------
WAITING   ANNOUNCE on the discovery group every ``waiting_announce_interval`` (afterwards
          every ``announce_interval``); JOINs are answered with ACCEPT. The transfer starts
          when ``min_receivers`` joined, or when ``max_wait`` ran out with at least one.
SENDING   First pass: blocks in order (with a used-block map, only the used ones: the map's
          pieces go out first and free blocks are never sent), each as its source symbols
          (groups interleaved) plus ``fec_overhead`` proactive repair symbols per group.
          Block bytes are pushed in by the
          driver (``BlockWanted`` → ``feed_block``); a bounded LRU (blockcache.py) keeps
          encoded blocks for repairs, so memory does not grow with the image.
          Repair (repairs.py): a STATUS (NAK) says how many symbols each group of a block
          still needs. The sender discounts the repair symbols it already sent after the
          receiver's ``seq_seen`` (still in flight), merges the rest with what is pending by
          taking the maximum, and answers every receiver at once with *fresh* repair symbols
          (never the same one twice while fresh ones remain). Repairs go before new blocks;
          whole blocks a receiver never saw (a late joiner's) go after the first pass, so the
          laptops that were on time finish at their own pace.
          SYNC on the data group every ``sync_interval`` carries the clock probe (GRTT), the
          first-pass cursor and the last data seq, so receivers know what is overdue.
          The rate and the proactive repair follow what receivers report (ratecontrol.py);
          a lagging receiver's NAKs wait until the first pass is over, like a late joiner's,
          and so do those beyond the repair credit its reported loss earned (roster.py).
          New receivers are taken until ``late_join_window`` after the start (REFUSE after).
          Delta receivers (protocol/delta.py): when one joins, the used-block map and the whole
          manifest go out, paced; the start waits until every delta receiver that joined has
          reported what its disk lacks, and the first pass then sends only what some receiver
          lacks (``PassPlan``).
COMPLETE  every joined receiver has its Outcome: it reported DONE (VERIFIED or FAILED), or
          was DROPPED (silent for ``receiver_timeout``, or no progress for ``stall_timeout``
          while it was served, or by the admin: ``drop_receiver``, which tells it with an
          ABORT of its own); and the late-join window is closed: SessionComplete.
The admin may also start at once (``start_now``), change how many receivers the start
waits for (``set_expected``) or stop everyone (``abort``).

This module keeps the states, the timers, the first pass and the framing of every datagram;
the receivers and their rules are the ``Roster``'s, what is owed the ``RepairQueues``', the
encoded blocks the ``BlockCache``'s.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from enum import Enum
from itertools import islice

from .blockcache import BlockCache, EncodedBlock, proactive_count
from .config import Addr, SenderConfig
from .datapath import Datagrams, source_datagrams
from .delta import PassPlan
from .errors import BadPacket, LocalProtocolError
from .events import (
    BlockWanted,
    Event,
    Outcome,
    ReceiverFinished,
    ReceiverJoined,
    SessionComplete,
    TransferStarted,
)
from .layout import block_count
from .manifest import CHUNK_DIGESTS, Manifest, chunk_of
from .pacing import TokenBucket
from .ratecontrol import RateController
from .repairs import RepairQueues
from .roster import ReceiverInfo, Roster
from .seal import SEAL_OVERHEAD, Sealer
from .sender_stats import SenderStats
from .trust import Signer, abort_payload, accept_payload, announce_payload
from .usedmap import UsedBlocks
from .wire import (
    CAUSE_DISK,
    FLAG_REPAIR,
    HOST_MAX_ENTRIES,
    Abort,
    Accept,
    Announce,
    Done,
    DoneAck,
    Join,
    Lacks,
    LacksAck,
    ManifestChunk,
    Refuse,
    Status,
    Sync,
    UsedMapPiece,
    data_header,
    decode_control_untrusted,
)

# Bytes a datagram costs on the wire beyond its UDP payload: Ethernet header (14), IPv4 (20)
# and UDP (8), so that --rate is what the link (and a switch port's shaper) counts.
FRAME_OVERHEAD = 42
# The pacer wakes the sender once this much time's worth of tokens is there, so datagrams leave
# in batches (one GSO send) rather than one per wake-up; bursts stay far below a switch queue.
PACING_QUANTUM = 0.001  # seconds
_REFILL = 128  # datagrams generated per refill: small, so repairs need not wait a whole block
FEC_CAP = 0.25  # adaptive proactive repair never exceeds this share of the source symbols
# Rate and repair decisions at most this often: each looks at every receiver, and a room of
# hundreds closes delivery windows all the time. SYNC catches up on windows left waiting.
ADAPT_INTERVAL = 0.05  # seconds


class SenderState(Enum):
    WAITING = "waiting"
    SENDING = "sending"
    COMPLETE = "complete"


class _Trigger(Enum):
    START = "start"
    ALL_FINISHED = "all finished"
    ABORT = "abort"


# The states and what moves the session on. Every change of state goes through
# ``SenderSession._transition``, which looks it up here; a move the table lacks is a bug in
# the session and raises LocalProtocolError.
#
#     WAITING --START--> SENDING --ALL_FINISHED--> COMPLETE
#
# START: ``min_receivers`` joined, or ``max_wait`` ran out with at least one (or the first to
# join after it). ALL_FINISHED: every receiver that joined has an Outcome (its DONE, or it was
# dropped) and the late-join window is closed. COMPLETE is final: no receiver is taken, no
# data or timer is due; only a repeated DONE is still acknowledged. ABORT: the driver cannot
# go on (its image failed to read); the laptops are told why and keep what they have.
_TRANSITIONS: dict[tuple[SenderState, _Trigger], SenderState] = {
    (SenderState.WAITING, _Trigger.START): SenderState.SENDING,
    (SenderState.SENDING, _Trigger.ALL_FINISHED): SenderState.COMPLETE,
    (SenderState.WAITING, _Trigger.ABORT): SenderState.COMPLETE,
    (SenderState.SENDING, _Trigger.ABORT): SenderState.COMPLETE,
}
ABORT_COPIES = 3  # an ABORT is sent this many times: nothing comes after it to ask again


def overhead_for_loss(loss: float) -> float:
    """Proactive repair per source symbol for a receiver losing ``loss`` of the datagrams:
    what replaces its losses on average, q = loss / (1 − loss). No margin on top: on a LAN a
    NAK round costs milliseconds, and a repair answering a NAK is sent only as often as the
    worst receiver needs it, while every surplus proactive symbol is wasted for all (a
    margin of one standard deviation cost 1.5 % more traffic for no faster finish at 5 %
    loss). Capped: a hopeless receiver must not double the traffic for everyone."""
    if loss <= 0.0:
        return 0.0
    q = min(loss, 0.5) / (1.0 - min(loss, 0.5))
    return min(FEC_CAP, q)


class _FirstPass:
    """A block's first pass as it is being generated: source symbol ``next`` comes next (from
    one header template), then the proactive repairs (None: not counted yet)."""

    __slots__ = ("block", "template", "next", "repairs")

    def __init__(self, block: EncodedBlock, template: bytes) -> None:
        self.block = block
        self.template = template
        self.next = 0
        self.repairs: Iterator[bytes] | None = None


class SenderSession:
    """Call ``receive_datagram`` for every datagram to the control address, ``handle_timer``
    at ``get_timer()``, answer ``BlockWanted`` events with ``feed_block``, and after each of
    these send ``datagrams_to_send(now)`` and re-read ``get_timer()``."""

    def __init__(self, config: SenderConfig, rng: random.Random, now: float, *,
                 signer: Signer | None = None, manifest: Manifest | None = None,
                 sealer: Sealer | None = None) -> None:
        self.config = config
        # Seals every datagram we send and opens every one we take (None: in the clear).
        self.sealer = sealer
        self.signer = signer  # signs ANNOUNCE and each ACCEPT (None: an unsigned session)
        # Every raw block's SHA-256, its root in the (signed) ANNOUNCE: receivers check each
        # block against it before writing. Chunks go out as the first pass reaches them and
        # when a receiver asks.
        self.manifest = manifest
        self._chunk_sent_at: dict[int, float] = {}
        self._rng = rng
        self.session_id = rng.getrandbits(64)
        self._state = SenderState.WAITING
        self.stats = SenderStats()
        self.roster = Roster(config, self.stats)
        self.nblocks = block_count(config.image_size, config.block_size)
        # Which blocks hold something (None: all); the others are never sent.
        self.used = (UsedBlocks(self.nblocks, config.used_runs)
                     if config.used_runs is not None else None)
        self.used_count = self.used.count if self.used is not None else self.nblocks
        self.plan = PassPlan(self.nblocks, self.used)  # what the first pass sends
        # The map and the whole manifest for delta receivers, generated as the pacer allows
        # (again once more when another delta receiver joined while it was going out).
        self._delta_pass: Iterator[bytes] | None = None
        self._delta_pass_again = False
        self._delta_held: bytes | None = None  # the next one, waiting for the pacer
        self._map_sent_at: dict[int, float] = {}
        self._pass_chunk = -1  # the manifest chunk of the block the first pass is on
        self.cache = BlockCache(self.nblocks, config.symbol_size, config.cache_blocks,
                                self.stats)
        self.repairs = RepairQueues()
        self.created_at = now
        self.started_at: float | None = None
        self.first_pass_done_at: float | None = None
        # Proactive repair per source symbol for blocks not yet sent: config.fec_overhead until
        # receivers report their loss, then what the worst of them needs (config.adapt_fec).
        # The driver's worker thread reads it when it precomputes a block's repairs.
        self.fec_overhead = config.fec_overhead
        self.rate = RateController(config.rate_bps, config.min_rate_bps)
        self._pacer = self._new_pacer(now)
        self._window_end: float | None = None  # late joins are refused from then on
        self._window_timer: float | None = None  # the window's end, until it has passed
        self._next_adapt = now
        self._cursor = 0
        self._first_pass: _FirstPass | None = None
        # (seq of a block's last first-pass datagram, blocks done after it), until it is sent
        self._pass_ends: deque[tuple[int, int]] = deque()
        self._sent_cursor = 0  # blocks below it had their first pass *sent*, not just queued
        self._idle = False  # nothing to generate until a block is fed or a NAK arrives
        self._outgoing: deque[bytes] = deque()
        self._seq = 0  # seq of the next data datagram generated
        self._control: list[tuple[bytes, Addr]] = []
        self._events: deque[Event] = deque()
        self._next_announce = now
        self._next_sync = math.inf
        self._next_sweep = now + 1.0
        self._start_deadline = now + config.max_wait if config.max_wait is not None else None
        self._wait_over = False
        # How many receivers the start waits for: config.min_receivers until the admin
        # changes it (set_expected).
        self.expected = config.min_receivers
        # The signed ABORT each receiver the admin dropped gets, again whenever it speaks;
        # and the reason a JOIN from its address (it waits for a sender again) is refused.
        self._dropped: dict[int, bytes] = {}
        self._dropped_addrs: dict[Addr, str] = {}

    @property
    def state(self) -> SenderState:
        return self._state

    @property
    def receivers(self) -> dict[int, ReceiverInfo]:
        """Every receiver the session heard of, in that order (the roster's)."""
        return self.roster.receivers

    @property
    def grtt(self) -> float:
        return self.roster.grtt

    # --- driver API -----------------------------------------------------------------------

    def receive_many(self, batch: Datagrams, now: float) -> None:
        """A batch of datagrams, each as ``receive_datagram`` takes it (a sender receives
        control messages only: nothing to gain from placing them in one call)."""
        for i in range(batch.count):
            self.receive_datagram(batch.datagram(i), batch.address_of(i), now)

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        try:
            if self.sealer is not None:
                data = self.sealer.open_untrusted(data)
            msg = decode_control_untrusted(data)
        except BadPacket:
            self.stats.garbled += 1
            return
        if msg.session_id != self.session_id:
            self.stats.foreign += 1
            return
        if isinstance(msg, Status):
            self._on_status(msg, addr, now)
        elif isinstance(msg, Lacks):
            self._on_lacks(msg, addr, now)
        elif isinstance(msg, Join):
            self._on_join(msg, addr, now)
        elif isinstance(msg, Done):
            self._on_done(msg, addr, now)
        # ANNOUNCE/SYNC/ACCEPT are ours (looped back): nothing to do.

    def handle_timer(self, now: float) -> None:
        if self._state is SenderState.COMPLETE:
            return
        if now >= self._next_announce:
            self._control.append((self._announce(now).encode(), self.config.discovery_addr))
            waiting = self._state is SenderState.WAITING
            self._next_announce = now + (self.config.waiting_announce_interval if waiting
                                         else self.config.announce_interval)
        if self._state is SenderState.WAITING:
            deadline = self._start_deadline
            if deadline is not None and now >= deadline:
                # The wait is over: start now, or with the first receiver that joins.
                self._start_deadline = None
                self._wait_over = True
                self._maybe_start(now)
        if self._state is SenderState.SENDING and now >= self._next_sync:
            self._queue_sync(now)
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._drop_silent(now)
        if self._window_timer is not None and now >= self._window_timer:
            self._window_timer = None
            self._check_complete(now)

    def get_timer(self) -> float | None:
        if self._state is SenderState.COMPLETE:
            return None
        deadline = min(self._next_announce, self._next_sync, self._next_sweep)
        if self._state is SenderState.WAITING and self._start_deadline is not None:
            deadline = min(deadline, self._start_deadline)
        if self._window_timer is not None:
            deadline = min(deadline, self._window_timer)
        if (self._state is SenderState.SENDING and self._has_data_to_send()
                or self._delta_pass is not None):
            pacer = self._pacer
            deadline = min(deadline, pacer.next_time(pacer.rate * PACING_QUANTUM))
        return deadline

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._control = self._control, []
        sealer = self.sealer
        if sealer is not None:
            out = [(sealer.seal(datagram), addr) for datagram, addr in out]
        overhead = FRAME_OVERHEAD + (SEAL_OVERHEAD if sealer is not None else 0)
        limit = self.config.batch_max
        paced = (self._send_delta_pass(out, now, limit, overhead)
                 if self._delta_pass is not None else 0)
        if self._state is not SenderState.SENDING:
            return out
        data_addr = self.config.data_addr
        outgoing = self._outgoing
        pacer = self._pacer
        stats = self.stats
        limit -= paced
        sent = 0
        while sent < limit:
            if not outgoing:
                self._refill()
                if not outgoing:
                    break
            size = len(outgoing[0]) + overhead
            if not pacer.try_consume(size, now):
                break
            datagram = outgoing.popleft()
            out.append((datagram if sealer is None else sealer.seal(datagram), data_addr))
            stats.data_bytes += size - FRAME_OVERHEAD
            sent += 1
        stats.data_datagrams += sent
        if not outgoing and sent < limit:
            self._idle = True
        if self._pass_ends:
            self._advance_sent_cursor(now)
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def feed_block(
        self, index: int, kind: int, payload: bytes,
        repairs: list[dict[int, bytes]] | None = None,
    ) -> None:
        """The encoded block asked for by ``BlockWanted(index)``, with the repair symbols
        ``precompute_repairs`` made for it, if the driver made them."""
        cache = self.cache
        cache.feed(index, kind, payload, repairs, index < self._cursor, self.fec_overhead)
        self._idle = False
        cache.evict(self._cursor, self.repairs.pending, self.fec_overhead)

    def set_rate(self, rate_bps: float, now: float) -> None:
        """A new ceiling (the adaptation stays below it). A session sending at its old
        ceiling goes to the new one at once, up too: another session on this machine's link
        finished, and what it leaves is ours."""
        at_ceiling = self.rate.rate >= 0.99 * self.rate.ceiling
        self.rate.ceiling = rate_bps
        self.rate.rate = rate_bps if at_ceiling else min(self.rate.rate, rate_bps)
        self.rate.floor = min(self.rate.floor, rate_bps)
        self._pacer.set_rate(self.rate.rate / 8.0, now)

    def abort(self, reason: str, now: float) -> None:
        """The driver cannot go on: tell the laptops ``reason`` (signed, as the session is) and
        end. They keep what they stored, so a sender of the same image started again goes on
        from there."""
        if self._state is SenderState.COMPLETE:
            return
        self._transition(_Trigger.ABORT)
        signature = (self.signer.sign(abort_payload(self.session_id, reason))
                     if self.signer is not None else b"")
        abort = Abort(self.session_id, reason, signature).encode()
        self._control.extend([(abort, self.config.data_addr)] * ABORT_COPIES)
        self._delta_pass = None

    # --- the admin's controls (the status page) ---------------------------------------------

    def start_now(self, now: float) -> None:
        """Start without waiting for ``expected`` receivers: at once if one joined, else
        with the first that does (as when ``max_wait`` runs out)."""
        if self._state is not SenderState.WAITING:
            return
        self._start_deadline = None
        self._wait_over = True
        self._maybe_start(now)

    def set_expected(self, count: int, now: float) -> None:
        """Wait for ``count`` receivers instead (starting now if that many joined)."""
        if count < 1:
            raise ValueError("the expected count must be at least 1")
        self.expected = count
        self._maybe_start(now)

    def drop_receiver(self, receiver_id: int, reason: str, now: float) -> bool:
        """Finish one receiver as DROPPED, as a silent one is, and tell it why with an ABORT
        sent to it alone (signed as the session is). False if it is unknown or finished."""
        info = self.roster.get(receiver_id)
        if info is None or info.outcome is not None:
            return False
        signature = (self.signer.sign(abort_payload(self.session_id, reason))
                     if self.signer is not None else b"")
        abort = self._dropped[receiver_id] = Abort(self.session_id, reason, signature).encode()
        self._dropped_addrs[info.addr] = reason
        self._control.extend([(abort, info.addr)] * ABORT_COPIES)
        self._finish_receiver(info, Outcome.DROPPED, reason, now)
        return True

    def _tell_dropped(self, receiver_id: int, addr: Addr, now: float) -> bool:
        """A receiver the admin dropped still speaks (its ABORTs were lost): again."""
        abort = self._dropped.get(receiver_id)
        info = self.roster.get(receiver_id)
        if abort is None or info is None or self.roster.impostor(info, addr):
            return False
        if self.roster.allow(info, now):
            self._control.append((abort, info.addr))
        return True

    def accepting(self, now: float) -> bool:
        """Whether a new receiver may still join."""
        if self._state is SenderState.COMPLETE:
            return False
        return self._window_end is None or now < self._window_end

    @property
    def cursor(self) -> int:
        return self._cursor

    # --- states ---------------------------------------------------------------------------

    def _transition(self, trigger: _Trigger) -> None:
        new = _TRANSITIONS.get((self._state, trigger))
        if new is None:
            raise LocalProtocolError(
                f"the sender cannot {trigger.value!r} in state {self._state.value}")
        self._state = new

    def _maybe_start(self, now: float) -> None:
        """Start once enough receivers joined (or the wait is over and one did), and no delta
        receiver is still comparing its disk: until it has said what it lacks, the first pass
        cannot leave anything out."""
        roster = self.roster
        if self._state is not SenderState.WAITING or not roster.receivers:
            return
        if not (self._wait_over or len(roster) >= self.expected):
            return
        if not roster.any_comparing():
            self._start(now)

    def _start(self, now: float) -> None:
        self._transition(_Trigger.START)
        if self.roster.all_delta():
            self.plan.only_lacked(self.roster.lacked_reports())
        self.started_at = now
        window = self.config.late_join_window
        if window is not None:
            self._window_end = self._window_timer = now + window
        self._idle = False
        self._pacer = self._new_pacer(now)
        self._events.append(TransferStarted(len(self.roster)))
        if self.used is not None:  # before any data: receivers learn what not to wait for
            for index in range(len(self.used.pieces)):
                self._send_map_piece(index, None)
        self._queue_sync(now)
        self._want_ahead()
        if self.nblocks == 0:
            self.first_pass_done_at = now
        self._check_complete(now)

    def _check_complete(self, now: float) -> None:
        if self._state is not SenderState.SENDING or not self.roster.all_finished():
            return
        if self._window_end is not None and now < self._window_end:
            return  # a laptop booting late may still come
        self._transition(_Trigger.ALL_FINISHED)
        ok = self.roster.verified_count()
        self._events.append(SessionComplete(ok, len(self.roster) - ok))

    # --- sending --------------------------------------------------------------------------

    def _has_data_to_send(self) -> bool:
        return bool(self._outgoing) or not self._idle

    def _advance_sent_cursor(self, now: float) -> None:
        last_sent = self._last_sent_seq()
        ends = self._pass_ends
        while ends and ends[0][0] <= last_sent:
            self._sent_cursor = ends.popleft()[1]
        if self._sent_cursor == self.nblocks and self.first_pass_done_at is None:
            self.first_pass_done_at = now
            self._next_sync = now  # tell receivers at once: every block is overdue now

    def _refill(self) -> None:
        """Generate the next datagrams into ``_outgoing``: repairs first, then the first pass,
        then whole blocks for receivers catching up."""
        repairs = self.repairs
        if repairs.pending and self._refill_repairs(repairs.pending):
            return
        if (self._first_pass is None and self._cursor < self.nblocks
                and not self.plan.flags[self._cursor]):
            self._skip_unsent()
        if self._cursor >= self.nblocks:
            if repairs.catchup:
                self._refill_repairs(repairs.catchup)
            return
        if self._first_pass is None:
            block = self.cache.get(self._cursor)
            self._want_ahead()
            if block is None:
                return
            self._first_pass = self._first_pass_of(block)
            if self.manifest is not None and chunk_of(self._cursor) != self._pass_chunk:
                self._pass_chunk = chunk_of(self._cursor)
                self._send_chunk(self._pass_chunk, None)
        if not self._fill_first_pass(self._first_pass, self._outgoing):
            return
        # The block's first pass is fully generated.
        self._first_pass = None
        self._cursor += 1
        self._pass_ends.append((self._seq - 1, self._cursor))
        self._want_ahead()

    def _skip_unsent(self) -> None:
        """The first pass steps over free blocks, and those every receiver holds: nothing of
        them is sent."""
        self._cursor = self.plan.next_sent(self._cursor)
        self._pass_ends.append((self._seq - 1, self._cursor))
        self._idle = False
        self._want_ahead()

    def _want_ahead(self) -> None:
        plan = self.plan
        index = self._cursor
        for _ in range(1 + self.config.prefetch_blocks):
            index = plan.next_sent(index)
            if index >= self.nblocks:
                return
            self._want(index)
            index += 1

    def _want(self, index: int) -> None:
        if self.cache.want(index):
            self._events.append(BlockWanted(index))

    def _first_pass_of(self, block: EncodedBlock) -> _FirstPass:
        """Source symbols (groups interleaved), then the proactive repairs. A ZERO block is
        one empty source symbol, so it needs no case of its own."""
        template = data_header(0, block.kind, self.session_id, block.index, 0, 0,
                               block.layout.encoded_length, 0)
        return _FirstPass(block, template)

    def _fill_first_pass(self, first: _FirstPass, outgoing: deque[bytes]) -> bool:
        """Generate the first pass into ``outgoing`` until it holds _REFILL datagrams; True
        once the whole pass is generated."""
        lay = first.block.layout
        if first.next < lay.source_count:
            end = min(lay.source_count, first.next + max(1, _REFILL - len(outgoing)))
            batch = source_datagrams(first.template, first.block.payload, lay.symbol_size,
                                     lay.group_count, first.next, end, self._seq)
            self._seq = (self._seq + len(batch)) & 0xFFFFFFFF
            self.stats.first_pass_datagrams += len(batch)
            first.next = end
            outgoing.extend(batch)
            if len(outgoing) >= _REFILL:
                return False
        if first.repairs is None:
            # Counted now, after the sources: the FEC overhead follows the loss meanwhile.
            counts = [proactive_count(k, self.fec_overhead) for k in lay.group_k]
            first.repairs = (self._repair_datagrams(first.block, counts, flags=0)
                             if any(counts) else iter(()))
        for dg in first.repairs:
            outgoing.append(dg)
            if len(outgoing) >= _REFILL:
                return False
        return True

    def _refill_repairs(self, queue: dict[int, list[int]]) -> bool:
        """Turn the counts of a cached block in ``queue`` into datagrams. False if none could."""
        cache = self.cache
        for index in list(islice(queue, 64)):
            block = cache.get(index)
            if block is None:
                if len(cache.requested) < self.config.prefetch_blocks * 2:
                    self._want(index)
                continue
            counts = queue.pop(index)
            cache.touch(index)
            self._outgoing.extend(self._repair_datagrams(block, counts, flags=FLAG_REPAIR))
            return True
        return False

    def _repair_datagrams(
        self, block: EncodedBlock, counts: list[int], flags: int
    ) -> Iterator[bytes]:
        """Fresh symbols for each group, groups interleaved so a burst hits them evenly."""
        lay = block.layout
        cache = self.cache
        fresh_esi = block.fresh_esi
        per_group: list[list[bytes]] = []
        esis_of: list[list[int]] = []
        for g, count in enumerate(counts):
            esis = [fresh_esi(g) for _ in range(count)]
            esis_of.append(esis)
            if lay.encoded_length == 0:
                per_group.append([b""] * count)
            else:
                per_group.append(cache.repair_symbols(block, g, esis))
        log = self.repairs.log_of(block.index) if flags else None
        sid = self.session_id
        stats = self.stats
        sealing = SEAL_OVERHEAD if self.sealer is not None else 0
        for j in range(max(counts, default=0)):
            for g, syms in enumerate(per_group):
                if j < len(syms):
                    seq = self._take_seq()
                    if log is not None:
                        log.append((seq, g))
                    header = data_header(flags, block.kind, sid, block.index, g, esis_of[g][j],
                                         lay.encoded_length, seq)
                    datagram = header + syms[j]
                    if flags:
                        stats.repair_datagrams += 1
                        stats.repair_bytes += len(datagram) + sealing
                    else:
                        stats.first_pass_datagrams += 1
                    yield datagram

    def _take_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFFFFFF
        return seq

    def _last_sent_seq(self) -> int:
        return self._seq - len(self._outgoing) - 1

    # --- control --------------------------------------------------------------------------

    def _announce(self, now: float) -> Announce:
        cfg = self.config
        signer = self.signer
        announce = Announce(
            self.session_id, cfg.name, cfg.image_size, cfg.image_sha256, cfg.block_size,
            cfg.symbol_size, cfg.data_addr[0], cfg.data_addr[1], cfg.control_addr[0],
            cfg.control_addr[1], now, self._state is not SenderState.WAITING,
            self.manifest.root if self.manifest is not None else b"", cfg.created,
            signer.public_key if signer is not None else b"",
            used_map=self.used.digest if self.used is not None else b"",
            min_size=cfg.min_size, unreadable=cfg.unreadable,
        )
        if signer is None:
            return announce
        return replace(announce, signature=signer.sign(announce_payload(announce.encode())))

    def _queue_delta_pass(self) -> None:
        """A delta receiver joined: it compares its disk with the map and every chunk of the
        manifest that covers a used block, so they go out now, paced, to the whole room."""
        if self._delta_pass is None:
            self._delta_pass = self._delta_datagrams()
        else:
            self._delta_pass_again = True  # it missed the part already sent

    def _delta_datagrams(self) -> Iterator[bytes]:
        used, manifest, sid = self.used, self.manifest, self.session_id
        if used is not None:
            for index, piece in enumerate(used.pieces):
                yield UsedMapPiece(sid, index, len(used.pieces), piece).encode()
        if manifest is None:
            return
        flags = self.plan.used_flags
        for chunk in range(manifest.nchunks):
            start = chunk * CHUNK_DIGESTS
            if flags.find(1, start, start + CHUNK_DIGESTS) >= 0:
                yield ManifestChunk(sid, chunk, manifest.chunk(chunk),
                                    manifest.proof(chunk)).encode()

    def _send_delta_pass(self, out: list[tuple[bytes, Addr]], now: float, limit: int,
                         overhead: int) -> int:
        """Datagrams of the delta pass as the pacer allows (before any data)."""
        delta_pass, pacer, sealer = self._delta_pass, self._pacer, self.sealer
        assert delta_pass is not None
        addr = self.config.data_addr
        sent = 0
        while sent < limit:
            datagram = self._delta_held or next(delta_pass, None)
            self._delta_held = None
            if datagram is None:
                self._delta_pass = self._delta_datagrams() if self._delta_pass_again else None
                self._delta_pass_again = False
                break
            if not pacer.try_consume(len(datagram) + overhead, now):
                self._delta_held = datagram
                break
            out.append((datagram if sealer is None else sealer.seal(datagram), addr))
            sent += 1
        return sent

    def _send_map_piece(self, index: int, now: float | None) -> None:
        """Multicast piece ``index`` of the used-block map; on request at most once per
        2 GRTT (as chunks)."""
        used = self.used
        if used is None or not 0 <= index < len(used.pieces):
            return
        if now is not None:
            last = self._map_sent_at.get(index)
            if last is not None and now - last < 2.0 * self.grtt:
                return
            self._map_sent_at[index] = now
        piece = UsedMapPiece(self.session_id, index, len(used.pieces), used.pieces[index])
        self._control.append((piece.encode(), self.config.data_addr))

    def _send_chunk(self, index: int, now: float | None) -> None:
        """Multicast manifest chunk ``index`` with its proof; on request (``now`` given) at
        most once per 2 GRTT, so a room asking for the same chunk gets it once."""
        manifest = self.manifest
        if manifest is None or not 0 <= index < manifest.nchunks:
            return
        if now is not None:
            last = self._chunk_sent_at.get(index)
            if last is not None and now - last < 2.0 * self.roster.grtt:
                return
            self._chunk_sent_at[index] = now
        msg = ManifestChunk(self.session_id, index, manifest.chunk(index), manifest.proof(index))
        self._control.append((msg.encode(), self.config.data_addr))

    def _accept(self, msg: Join) -> Accept:
        """ACCEPT, signed over the JOIN's nonce when we sign: only a live sender can answer."""
        proof = b""
        if self.signer is not None and msg.nonce:
            proof = self.signer.sign(accept_payload(self.session_id, msg.receiver_id, msg.nonce))
        return Accept(self.session_id, msg.receiver_id, proof)

    def _queue_sync(self, now: float) -> None:
        if now >= self._next_adapt:
            self._adapt(now)
        roster = self.roster
        roster.update_grtt()
        self._prune_logs()
        nak_interval = max(0.002, roster.active_count() / self.config.nak_rate_target)
        backlog = len(self._outgoing) + self.repairs.backlog()
        if self._cursor < self.nblocks:
            backlog += 1
        grtt = roster.grtt
        sync = Sync(
            self.session_id, now, grtt, self._sent_cursor, self._last_sent_seq(),
            nak_interval, backlog,
        )
        self._control.append((sync.encode(), self.config.data_addr))
        interval = self.config.sync_interval
        if self.first_pass_done_at is not None:
            # Only a SYNC tells a receiver that the last blocks are overdue: once the first
            # pass is over, repeat it often enough that one lost SYNC costs a few RTTs, not
            # a whole interval.
            interval = min(interval, max(0.005, 2.0 * grtt))
        self._next_sync = now + interval

    def _new_pacer(self, now: float) -> TokenBucket:
        rate = self.rate.rate / 8.0
        burst = self.config.burst_bytes
        return TokenBucket(rate, burst if burst is not None else max(64 * 1024, rate * 0.01),
                           now)

    def _prune_logs(self) -> None:
        """Forget repair sends every active receiver has seen past: no longer in flight."""
        low = self.roster.lowest_seq_seen()
        if low is not None:
            self.repairs.prune(low)

    # --- receivers ------------------------------------------------------------------------

    def _on_join(self, msg: Join, addr: Addr, now: float) -> None:
        if self._state is SenderState.COMPLETE:
            return
        roster = self.roster
        info = roster.get(msg.receiver_id)
        if roster.impostor(info, addr):
            return
        if info is None and roster.crowded(addr):
            self.stats.limited += 1
            return
        if info is not None and not roster.allow(info, now):
            return  # a JOIN repeated too often: each ACCEPT costs a signature
        if info is None and addr in self._dropped_addrs:
            self._control.append((Refuse(self.session_id, msg.receiver_id,
                                         self._dropped_addrs[addr]).encode(), addr))
            return
        if info is None:
            if not self.accepting(now):
                window = self.config.late_join_window
                reason = (f"the session stopped taking new receivers {window:g} s after it "
                          "started; start `mcastd serve` again for this one")
                self._control.append((Refuse(self.session_id, msg.receiver_id, reason).encode(),
                                      addr))
                return
            info = roster.add(msg.receiver_id, addr, now, self._seq, msg.host)
            self._take_kind(info, msg.delta and self.manifest is not None)
            self._events.append(ReceiverJoined(msg.receiver_id, addr))
        roster.heard(info, msg.echo_time, msg.hold, now)
        self._control.append((self._accept(msg).encode(), addr))
        self._maybe_start(now)

    def _take_kind(self, info: ReceiverInfo, delta: bool) -> None:
        """A new receiver: a delta one gets the map and manifest to compare its disk with;
        any other needs every used block, from the first pass on if it is under way."""
        info.delta = delta
        if delta:
            self._queue_delta_pass()
        elif self._state is SenderState.SENDING:
            self.plan.send_all_from(self._cursor)
            self._idle = False

    def _on_status(self, msg: Status, addr: Addr, now: float) -> None:
        roster = self.roster
        info = roster.get(msg.receiver_id)
        if info is None or info.outcome is not None:
            if not self._tell_dropped(msg.receiver_id, addr, now):
                self.stats.foreign += 1
            return
        if roster.impostor(info, addr) or not roster.allow(info, now):
            return
        self.stats.status_received += 1
        roster.take_status(info, msg, now)
        if now >= self._next_adapt:
            self._adapt(now)
        self._follow_loss()
        if msg.map_pieces and self.used is not None:
            for index in msg.map_pieces[:16]:
                self._send_map_piece(index, now)
        if msg.chunks and self.manifest is not None:
            for index in msg.chunks[:16]:
                self._send_chunk(index, now)
        if msg.lacks_pieces and info.delta:
            self._ack_lacks(info, msg.lacks_pieces)
        if not (msg.need or msg.whole) or self._state is not SenderState.SENDING:
            return
        self.stats.naks_received += 1
        info.naks += 1
        roster.earn_credit(info, msg)
        for index, counts in msg.need:
            # Served after the first pass, so as not to hold up the room: a lagging receiver's
            # NAKs, and what one asks for beyond what it lost.
            info.repair_credit -= self._merge_need(index, counts, msg.seq_seen, whole=False,
                                                   defer=info.lagging,
                                                   credit=info.repair_credit)
        budget = 4096  # blocks one STATUS may ask for whole (bounds the work per datagram)
        for start, end in msg.whole:
            start = max(start, 0)
            end = min(end, self._sent_cursor, start + budget)
            for index in range(start, end):
                info.repair_credit -= self._merge_need(index, None, msg.seq_seen, whole=True,
                                                       defer=info.lagging,
                                                       credit=info.repair_credit)
            budget -= max(0, end - start)
            if budget <= 0:
                break
        if self.repairs.grew:  # something new is owed: generate again
            self.repairs.grew = False
            self._idle = False

    def _on_lacks(self, msg: Lacks, addr: Addr, now: float) -> None:
        """A piece of a delta receiver's report of what it lacks. Not rate-limited like a
        STATUS: a piece costs a dict entry, and a report has MAX_PIECES at most."""
        info = self.roster.get(msg.receiver_id)
        if (info is None or not info.delta or info.outcome is not None
                or self.roster.impostor(info, addr)):
            self.stats.foreign += 1
            return
        if info.lacked is not None:
            return  # a repeat: our LACKS_ACK was lost, the next STATUS gets another
        if not info.lacks.add(msg.index, msg.count, msg.data):
            self.stats.garbled += 1
            return
        if not info.lacks.whole:
            return
        try:
            info.lacked = info.lacks.runs(self.nblocks)
        except BadPacket:
            self.stats.garbled += 1  # asked for again, piece by piece
            return
        info.progress_at = now  # from now on it is served, and may stall
        self._ack_lacks(info, msg.count)
        if self._state is SenderState.SENDING:
            self.plan.add_lacked(info.lacked, self._cursor)
            self._idle = False
        self._maybe_start(now)

    def _ack_lacks(self, info: ReceiverInfo, count: int) -> None:
        """Tell a delta receiver which pieces of its report we lack (none: it is taken)."""
        if info.lacked is None and not info.lacks.expect(count):
            self.stats.garbled += 1
            return
        missing = [] if info.lacked is not None else info.lacks.missing()
        ack = LacksAck(self.session_id, info.receiver_id, missing)
        self._control.append((ack.encode(), info.addr))

    def _merge_need(
        self, index: int, counts: list[int] | None, seq_seen: int, whole: bool, defer: bool,
        credit: float,
    ) -> int:
        """Queue what a receiver lacks of block ``index`` (RepairQueues.merge_need), once
        its first pass was sent."""
        if not 0 <= index < self._sent_cursor:
            return 0  # its first pass is not over: the receiver asks too early
        lay = self.cache.layout_of(index)
        if lay is None:
            return 0
        return self.repairs.merge_need(index, lay.group_k, counts, seq_seen, whole, defer,
                                       credit)

    def _adapt(self, now: float) -> None:
        """Re-mark the lagging receivers from their last delivery windows, then let the room
        set the rate (config.adapt_rate)."""
        self._next_adapt = now + ADAPT_INTERVAL
        room = self.rate.classify(self.roster.heard_deliveries(self._seq))
        if self.config.adapt_rate and self._state is SenderState.SENDING:
            rate = self.rate.decide(room, self._seq, now)
            if rate is not None:
                self._pacer.set_rate(rate / 8.0, now)

    def _follow_loss(self) -> None:
        """Proactive repair for the worst loss in the room (config.adapt_fec); lagging
        receivers are repaired on later passes instead. Until someone reports:
        config.fec_overhead."""
        if not self.config.adapt_fec:
            return
        worst = self.roster.worst_loss()
        if worst is not None:
            self.fec_overhead = overhead_for_loss(worst)

    def _on_done(self, msg: Done, addr: Addr, now: float) -> None:
        roster = self.roster
        info = roster.get(msg.receiver_id)
        if roster.impostor(info, addr):
            return
        if info is None:
            if msg.ok or self._state is SenderState.COMPLETE or roster.crowded(addr):
                return
            # A laptop that gave up before its JOIN arrived (its disk is too small, say):
            # the admin must still see it, as failed.
            info = roster.add(msg.receiver_id, addr, now, None, msg.host)
            self._events.append(ReceiverJoined(msg.receiver_id, addr))
        if self._tell_dropped(msg.receiver_id, addr, now):
            return  # no DONE_ACK: it would take its image for accepted
        self._control.append((DoneAck(self.session_id, msg.receiver_id).encode(), addr))
        info.last_heard = now
        if info.outcome is not None:
            return  # a repeated DONE: our ACK was lost
        # The laptop's own part of the admin's report: who it is, as it knows by the end (it
        # may have opened its disk since its JOIN), and what it read back.
        for key, value in msg.host.items():
            if key in info.host or len(info.host) < HOST_MAX_ENTRIES:
                info.host[key] = value
        ok = msg.ok and msg.digest == self.config.image_sha256
        info.verified_bytes = msg.verified_bytes if ok else 0
        reason = msg.reason or ("" if ok else "its image does not match the SHA-256")
        outcome = (Outcome.VERIFIED if ok else
                   Outcome.DISK_ERROR if msg.cause == CAUSE_DISK else Outcome.FAILED)
        self._finish_receiver(info, outcome, reason, now)

    def _drop_silent(self, now: float) -> None:
        """Drop the receivers that went silent or stalled (Roster.to_drop)."""
        for info, reason in self.roster.to_drop(now, self.first_pass_done_at, self.used_count,
                                                self.rate.rate):
            self._finish_receiver(info, Outcome.DROPPED, reason, now)

    def _finish_receiver(self, info: ReceiverInfo, outcome: Outcome, reason: str,
                         now: float) -> None:
        self.roster.finish(info, outcome, reason, now)
        self._events.append(ReceiverFinished(info.receiver_id, info.addr, outcome, reason))
        if info.delta:
            self._maybe_start(now)  # it may have been the last one comparing
        self._check_complete(now)
