"""SenderSession: the sans-I/O state machine of the admin's machine.

Theory of operation
-------------------
WAITING   ANNOUNCE on the discovery group every ``waiting_announce_interval`` (afterwards
          every ``announce_interval``); JOINs are answered with ACCEPT. The transfer starts
          when ``min_receivers`` joined, or when ``max_wait`` ran out with at least one.
SENDING   First pass: blocks in order, each as its source symbols (groups interleaved) plus
          ``fec_overhead`` proactive repair symbols per group. Block bytes are pushed in by the
          driver (``BlockWanted`` → ``feed_block``); a bounded LRU keeps encoded blocks for
          repairs, so memory does not grow with the image.
          Repair: a STATUS (NAK) says how many symbols each group of a block still needs. The
          sender discounts the repair symbols it already sent after the receiver's
          ``seq_seen`` (still in flight), merges the rest with what is pending by taking the
          maximum, and answers every receiver at once with *fresh* repair symbols (never the
          same one twice while fresh ones remain). Repairs go before new blocks; whole
          blocks a receiver never saw (a late joiner's) go after the first pass, so the
          laptops that were on time finish at their own pace.
          SYNC on the data group every ``sync_interval`` carries the clock probe (GRTT), the
          first-pass cursor and the last data seq, so receivers know what is overdue.
          The rate and the proactive repair follow what receivers report (ratecontrol.py);
          a lagging receiver's NAKs wait until the first pass is over, like a late joiner's.
          New receivers are taken until ``late_join_window`` after the start (REFUSE after).
COMPLETE  every joined receiver reported DONE, or was dropped (silent for
          ``receiver_timeout``, or no progress for ``stall_timeout`` while it was served),
          and the late-join window is closed: SessionComplete.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import replace
from enum import Enum
from itertools import islice

from .config import Addr, SenderConfig
from .errors import BadPacket, LocalProtocolError
from .events import (
    BlockWanted,
    Event,
    ReceiverFinished,
    ReceiverJoined,
    SessionComplete,
    TransferStarted,
)
from .fec import MAX_SYMBOLS_PER_GROUP, encode_symbols
from .layout import BlockLayout, block_count, block_layout
from .manifest import Manifest, chunk_of
from .pacing import TokenBucket
from .ratecontrol import WINDOW_DATAGRAMS, Delivery, RateController
from .seal import SEAL_OVERHEAD, Sealer
from .trust import Signer, accept_payload, announce_payload
from .wire import (
    FLAG_REPAIR,
    Accept,
    Announce,
    Done,
    DoneAck,
    Join,
    ManifestChunk,
    Refuse,
    Status,
    Sync,
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
PRECOMPUTED_REPAIRS = 4  # per group, beyond the proactive ones: the first NAKs' answers
# STATUS taken from one receiver: this many per second, this many at once (a legitimate one
# sends one per NAK interval, at least 2 ms apart, plus a heartbeat).
STATUS_RATE = 1000.0
STATUS_BURST = 8
MAX_PER_HOST = 16  # receivers one IP address may run (a test host runs several)
# Repair symbols a receiver may have queued ahead of the first pass: it starts with some and
# earns twice what it shows it lost (sequence numbers seen minus datagrams arrived, from its
# own STATUS). Beyond that its NAKs wait until after the first pass, like a lagging one's: a
# host claiming everything is missing while it receives everything cannot stall the room.
REPAIR_CREDIT_START = 64.0
REPAIR_CREDIT_MAX = 16384.0
# A receiver that reported no delivery window although this many datagrams went out since it
# joined is set aside as lagging (8 windows: its link would have to be 8 times slower still).
UNHEARD_DATAGRAMS = 8 * WINDOW_DATAGRAMS
# Rate and repair decisions at most this often: each looks at every receiver, and a room of
# hundreds closes delivery windows all the time. SYNC catches up on windows left waiting.
ADAPT_INTERVAL = 0.05  # seconds


class SenderState(Enum):
    WAITING = "waiting"
    SENDING = "sending"
    COMPLETE = "complete"


class ReceiverInfo:
    """What the sender knows of one receiver (for NAK merging, GRTT and the summary)."""

    __slots__ = (
        "receiver_id", "addr", "joined_at", "last_heard", "rtt", "seq_seen", "blocks_done",
        "received", "dropped", "loss", "naks", "outcome", "reason", "finished_at",
        "delivery", "progress_at", "reported", "status_tokens", "status_at",
        "repair_credit", "credit_seq", "credit_arrived", "join_seq",
    )

    def __init__(self, receiver_id: int, addr: Addr, now: float) -> None:
        self.receiver_id = receiver_id
        self.addr = addr
        self.joined_at = now
        self.last_heard = now
        self.rtt: float | None = None
        self.seq_seen = -1
        self.blocks_done = 0
        self.received = 0
        self.dropped = 0
        self.loss = 0.0  # fraction of data datagrams it reports lost on the way
        self.naks = 0
        self.outcome: bool | None = None  # None while active
        self.reason = ""
        self.finished_at: float | None = None
        self.delivery = Delivery()
        self.progress_at = now  # when its blocks_done last grew
        self.reported = False  # a STATUS arrived: its loss is known
        self.status_tokens = float(STATUS_BURST)  # STATUS it may still send at once
        self.status_at = now  # when the tokens were counted
        self.repair_credit = REPAIR_CREDIT_START  # repairs it may still have served first
        self.credit_seq = -1  # seq_seen and arrived of its last NAK (at first: as it joined)
        self.credit_arrived = 0
        self.join_seq = 0  # the data seq sent next when it joined

    @property
    def lagging(self) -> bool:
        return self.outcome is None and self.delivery.lagging


class SenderStats:
    __slots__ = (
        "data_datagrams", "data_bytes", "first_pass_datagrams", "repair_datagrams",
        "status_received", "naks_received", "garbled", "foreign", "repairs_made_inline",
        "limited",
    )

    def __init__(self) -> None:
        self.data_datagrams = 0
        self.data_bytes = 0  # DATA datagrams, headers included
        self.first_pass_datagrams = 0
        self.repair_datagrams = 0
        self.status_received = 0
        self.naks_received = 0
        self.garbled = 0
        self.foreign = 0
        self.repairs_made_inline = 0  # on the event loop: no ready symbol from the driver
        self.limited = 0  # STATUS and JOIN ignored: too often, from elsewhere, or too many


class _Block:
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
        self.state = SenderState.WAITING
        self.stats = SenderStats()
        self.receivers: dict[int, ReceiverInfo] = {}
        self.nblocks = block_count(config.image_size, config.block_size)
        self.created_at = now
        self.started_at: float | None = None
        self.first_pass_done_at: float | None = None
        self.grtt = config.grtt_initial
        # Proactive repair per source symbol for blocks not yet sent: config.fec_overhead until
        # receivers report their loss, then what the worst of them needs (config.adapt_fec).
        # The driver's worker thread reads it when it precomputes a block's repairs.
        self.fec_overhead = config.fec_overhead
        self.rate = RateController(config.rate_bps, config.min_rate_bps)
        self._pacer = self._new_pacer(now)
        self._window_end: float | None = None  # late joins are refused from then on
        self._window_timer: float | None = None  # the window's end, until it has passed
        self._next_adapt = now
        self._lengths = array("l", [-1]) * self.nblocks  # encoded length per block, once known
        self._cache: OrderedDict[int, _Block] = OrderedDict()
        self._saved_esi: dict[int, bytes] = {}  # next fresh esi of evicted blocks
        self._requested: set[int] = set()
        self._cursor = 0
        self._first_pass: Iterator[bytes] | None = None
        # (seq of a block's last first-pass datagram, blocks done after it), until it is sent
        self._pass_ends: deque[tuple[int, int]] = deque()
        self._sent_cursor = 0  # blocks below it had their first pass *sent*, not just queued
        self._idle = False  # nothing to generate until a block is fed or a NAK arrives
        self._pending: dict[int, list[int]] = {}  # block → symbols still to send per group
        # Whole blocks a receiver never saw (it joined late, or lost every symbol): sent after
        # the first pass, so a late laptop does not slow down the ones that were on time.
        self._catchup: dict[int, list[int]] = {}
        self._sent_log: dict[int, deque[tuple[int, int]]] = {}  # block → (seq, group) repairs
        self._outgoing: deque[bytes] = deque()
        self._seq = 0  # seq of the next data datagram generated
        self._control: list[tuple[bytes, Addr]] = []
        self._events: deque[Event] = deque()
        self._next_announce = now
        self._next_sync = math.inf
        self._next_sweep = now + 1.0
        self._start_deadline = now + config.max_wait if config.max_wait is not None else None
        self._wait_over = False

    # --- driver API -----------------------------------------------------------------------

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
        elif isinstance(msg, Join):
            self._on_join(msg, addr, now)
        elif isinstance(msg, Done):
            self._on_done(msg, addr, now)
        # ANNOUNCE/SYNC/ACCEPT are ours (looped back): nothing to do.

    def handle_timer(self, now: float) -> None:
        if self.state is SenderState.COMPLETE:
            return
        if now >= self._next_announce:
            self._control.append((self._announce(now).encode(), self.config.discovery_addr))
            waiting = self.state is SenderState.WAITING
            self._next_announce = now + (self.config.waiting_announce_interval if waiting
                                         else self.config.announce_interval)
        if self.state is SenderState.WAITING:
            deadline = self._start_deadline
            if deadline is not None and now >= deadline:
                # The wait is over: start now, or with the first receiver that joins.
                self._start_deadline = None
                self._wait_over = True
                if self.receivers:
                    self._start(now)
        if self.state is SenderState.SENDING and now >= self._next_sync:
            self._queue_sync(now)
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._drop_silent(now)
        if self._window_timer is not None and now >= self._window_timer:
            self._window_timer = None
            self._check_complete(now)

    def get_timer(self) -> float | None:
        if self.state is SenderState.COMPLETE:
            return None
        deadline = min(self._next_announce, self._next_sync, self._next_sweep)
        if self.state is SenderState.WAITING and self._start_deadline is not None:
            deadline = min(deadline, self._start_deadline)
        if self._window_timer is not None:
            deadline = min(deadline, self._window_timer)
        if self.state is SenderState.SENDING and self._has_data_to_send():
            pacer = self._pacer
            deadline = min(deadline, pacer.next_time(pacer.rate * PACING_QUANTUM))
        return deadline

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._control = self._control, []
        sealer = self.sealer
        if sealer is not None:
            out = [(sealer.seal(datagram), addr) for datagram, addr in out]
        if self.state is not SenderState.SENDING:
            return out
        data_addr = self.config.data_addr
        outgoing = self._outgoing
        pacer = self._pacer
        stats = self.stats
        limit = self.config.batch_max
        overhead = FRAME_OVERHEAD + (SEAL_OVERHEAD if sealer is not None else 0)
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
        if not 0 <= index < self.nblocks:
            raise LocalProtocolError(f"block {index} is outside the image")
        self._requested.discard(index)
        known = self._lengths[index]
        if known >= 0 and known != len(payload):
            raise LocalProtocolError(f"block {index} encoded differently than before")
        self._lengths[index] = len(payload)
        layout = block_layout(len(payload), self.config.symbol_size)
        block = _Block(index, kind, payload, layout, repairs or [])
        saved = self._saved_esi.pop(index, None)
        if saved is not None:
            block.next_esi = list(saved)
        else:
            block.next_esi = self._initial_esi(block.layout, passed=index < self._cursor)
        self._cache[index] = block
        self._idle = False
        self._evict()

    def set_rate(self, rate_bps: float, now: float) -> None:
        """A new ceiling (the adaptation stays below it)."""
        self.rate.ceiling = rate_bps
        self.rate.rate = min(self.rate.rate, rate_bps)
        self.rate.floor = min(self.rate.floor, rate_bps)
        self._pacer.set_rate(self.rate.rate / 8.0, now)

    def accepting(self, now: float) -> bool:
        """Whether a new receiver may still join."""
        if self.state is SenderState.COMPLETE:
            return False
        return self._window_end is None or now < self._window_end

    @property
    def cursor(self) -> int:
        return self._cursor

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
        if self._pending and self._refill_repairs(self._pending):
            return
        if self._cursor >= self.nblocks:
            if self._catchup:
                self._refill_repairs(self._catchup)
            return
        if self._first_pass is None:
            block = self._cache.get(self._cursor)
            self._want_ahead()
            if block is None:
                return
            self._first_pass = self._first_pass_of(block)
            if self.manifest is not None and (
                self._cursor == 0 or chunk_of(self._cursor) != chunk_of(self._cursor - 1)
            ):
                self._send_chunk(chunk_of(self._cursor), None)
        outgoing = self._outgoing
        for dg in self._first_pass:
            outgoing.append(dg)
            if len(outgoing) >= _REFILL:
                return
        # The block's first pass is fully generated.
        self._first_pass = None
        self._cursor += 1
        self._pass_ends.append((self._seq - 1, self._cursor))
        self._want_ahead()

    def _want_ahead(self) -> None:
        last = min(self.nblocks, self._cursor + 1 + self.config.prefetch_blocks)
        for index in range(self._cursor, last):
            self._want(index)

    def _want(self, index: int) -> None:
        if index not in self._cache and index not in self._requested:
            self._requested.add(index)
            self._events.append(BlockWanted(index))

    def _first_pass_of(self, block: _Block) -> Iterator[bytes]:
        """Source symbols (groups interleaved), then the proactive repairs. A ZERO block is
        one empty source symbol, so it needs no case of its own."""
        lay = block.layout
        sid = self.session_id
        index = block.index
        kind = block.kind
        length = lay.encoded_length
        view = memoryview(block.payload)
        size = lay.symbol_size
        groups = lay.group_count
        for i in range(lay.source_count):
            header = data_header(
                0, kind, sid, index, i % groups, i // groups, length, self._take_seq()
            )
            yield header + view[i * size : (i + 1) * size]
            self.stats.first_pass_datagrams += 1
        counts = [self._proactive(k) for k in lay.group_k]
        if any(counts):
            yield from self._repair_datagrams(block, counts, flags=0)

    def _refill_repairs(self, queue: dict[int, list[int]]) -> bool:
        """Turn the counts of a cached block in ``queue`` into datagrams. False if none could."""
        for index in list(islice(queue, 64)):
            block = self._cache.get(index)
            if block is None:
                if len(self._requested) < self.config.prefetch_blocks * 2:
                    self._want(index)
                continue
            counts = queue.pop(index)
            self._cache.move_to_end(index)
            self._outgoing.extend(self._repair_datagrams(block, counts, flags=FLAG_REPAIR))
            return True
        return False

    def _repair_datagrams(self, block: _Block, counts: list[int], flags: int) -> Iterator[bytes]:
        """Fresh symbols for each group, groups interleaved so a burst hits them evenly."""
        lay = block.layout
        per_group: list[list[bytes]] = []
        esis_of: list[list[int]] = []
        for g, count in enumerate(counts):
            esis = [self._next_fresh(block, g) for _ in range(count)]
            esis_of.append(esis)
            if lay.encoded_length == 0:
                per_group.append([b""] * count)
            else:
                per_group.append(self._repair_symbols(block, g, esis))
        log = self._sent_log.setdefault(block.index, deque()) if flags else None
        sid = self.session_id
        for j in range(max(counts, default=0)):
            for g, syms in enumerate(per_group):
                if j < len(syms):
                    seq = self._take_seq()
                    if log is not None:
                        log.append((seq, g))
                    header = data_header(flags, block.kind, sid, block.index, g, esis_of[g][j],
                                         lay.encoded_length, seq)
                    if flags:
                        self.stats.repair_datagrams += 1
                    else:
                        self.stats.first_pass_datagrams += 1
                    yield header + syms[j]

    def _repair_symbols(self, block: _Block, group: int, esis: list[int]) -> list[bytes]:
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

    def _next_fresh(self, block: _Block, group: int) -> int:
        esi = block.next_esi[group]
        block.next_esi[group] = (esi + 1) % MAX_SYMBOLS_PER_GROUP
        if block.layout.encoded_length == 0:
            return 0  # a ZERO block has only its marker
        return esi

    def _proactive(self, k: int) -> int:
        return proactive_count(k, self.fec_overhead)

    def _initial_esi(self, lay: BlockLayout, passed: bool) -> list[int]:
        """The first fresh repair esi per group: k before the first pass, after it k plus
        the proactive repairs the first pass sent."""
        if not passed:
            return list(lay.group_k)
        return [
            min(k + self._proactive(k), MAX_SYMBOLS_PER_GROUP - 1) for k in lay.group_k
        ]

    def _take_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFFFFFF
        return seq

    def _evict(self) -> None:
        pinned = self._cursor
        while len(self._cache) > self.config.cache_blocks:
            for index in self._cache:
                if index != pinned and index not in self._pending:
                    break
            else:
                return  # everything cached is in use; the cache may overshoot briefly
            block = self._cache.pop(index)
            if block.next_esi != self._initial_esi(block.layout, index < self._cursor):
                self._saved_esi[index] = bytes(block.next_esi)

    def _last_sent_seq(self) -> int:
        return self._seq - len(self._outgoing) - 1

    # --- control --------------------------------------------------------------------------

    def _announce(self, now: float) -> Announce:
        cfg = self.config
        signer = self.signer
        announce = Announce(
            self.session_id, cfg.name, cfg.image_size, cfg.image_sha256, cfg.block_size,
            cfg.symbol_size, cfg.data_addr[0], cfg.data_addr[1], cfg.control_addr[0],
            cfg.control_addr[1], now, self.state is not SenderState.WAITING,
            self.manifest.root if self.manifest is not None else b"", cfg.created,
            signer.public_key if signer is not None else b"",
        )
        if signer is None:
            return announce
        return replace(announce, signature=signer.sign(announce_payload(announce.encode())))

    def _send_chunk(self, index: int, now: float | None) -> None:
        """Multicast manifest chunk ``index`` with its proof; on request (``now`` given) at
        most once per 2 GRTT, so a room asking for the same chunk gets it once."""
        manifest = self.manifest
        if manifest is None or not 0 <= index < manifest.nchunks:
            return
        if now is not None:
            last = self._chunk_sent_at.get(index)
            if last is not None and now - last < 2.0 * self.grtt:
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
        self._update_grtt()
        self._prune_logs()
        active = sum(1 for r in self.receivers.values() if r.outcome is None)
        nak_interval = max(0.002, active / self.config.nak_rate_target)
        backlog = len(self._outgoing) + sum(
            sum(c) for queue in (self._pending, self._catchup) for c in queue.values()
        )
        if self._cursor < self.nblocks:
            backlog += 1
        sync = Sync(
            self.session_id, now, self.grtt, self._sent_cursor, self._last_sent_seq(),
            nak_interval, backlog,
        )
        self._control.append((sync.encode(), self.config.data_addr))
        interval = self.config.sync_interval
        if self.first_pass_done_at is not None:
            # Only a SYNC tells a receiver that the last blocks are overdue: once the first
            # pass is over, repeat it often enough that one lost SYNC costs a few RTTs, not
            # a whole interval.
            interval = min(interval, max(0.005, 2.0 * self.grtt))
        self._next_sync = now + interval

    def _new_pacer(self, now: float) -> TokenBucket:
        rate = self.rate.rate / 8.0
        burst = self.config.burst_bytes
        return TokenBucket(rate, burst if burst is not None else max(64 * 1024, rate * 0.01),
                           now)

    def _start(self, now: float) -> None:
        self.state = SenderState.SENDING
        self.started_at = now
        window = self.config.late_join_window
        if window is not None:
            self._window_end = self._window_timer = now + window
        self._idle = False
        self._pacer = self._new_pacer(now)
        self._events.append(TransferStarted(len(self.receivers)))
        self._queue_sync(now)
        self._want_ahead()
        if self.nblocks == 0:
            self.first_pass_done_at = now
        self._check_complete(now)

    def _on_join(self, msg: Join, addr: Addr, now: float) -> None:
        if self.state is SenderState.COMPLETE:
            return
        info = self.receivers.get(msg.receiver_id)
        if self._impostor(info, addr):
            return
        if info is None and self._crowded(addr):
            self.stats.limited += 1
            return
        if info is not None and not self._allow(info, now):
            return  # a JOIN repeated too often: each ACCEPT costs a signature
        if info is None:
            if not self.accepting(now):
                window = self.config.late_join_window
                reason = (f"the session stopped taking new receivers {window:g} s after it "
                          "started; start `mcastd serve` again for this one")
                self._control.append((Refuse(self.session_id, msg.receiver_id, reason).encode(),
                                      addr))
                return
            info = ReceiverInfo(msg.receiver_id, addr, now)
            info.delivery.begin(self._seq)
            info.join_seq = self._seq
            info.credit_seq = self._seq - 1  # it can have lost only what is sent from now on
            self.receivers[msg.receiver_id] = info
            self._events.append(ReceiverJoined(msg.receiver_id, addr))
        info.last_heard = now
        self._sample_rtt(info, msg.echo_time, msg.hold, now)
        self._control.append((self._accept(msg).encode(), addr))
        if self.state is SenderState.WAITING and (
            self._wait_over or len(self.receivers) >= self.config.min_receivers
        ):
            self._start(now)

    def _impostor(self, info: ReceiverInfo | None, addr: Addr) -> bool:
        """Another host using a known receiver's id: ignored and counted."""
        if info is None or addr == info.addr:
            return False
        self.stats.limited += 1
        return True

    def _crowded(self, addr: Addr) -> bool:
        """A new receiver would be one too many: for the session, or from one host (a flood
        of made-up receiver ids must not grow the sender's memory and work without bound)."""
        if len(self.receivers) >= self.config.max_receivers:
            return True
        host = addr[0]
        return sum(1 for r in self.receivers.values() if r.addr[0] == host) >= MAX_PER_HOST

    def _on_status(self, msg: Status, addr: Addr, now: float) -> None:
        info = self.receivers.get(msg.receiver_id)
        if info is None or info.outcome is not None:
            self.stats.foreign += 1
            return
        if self._impostor(info, addr) or not self._allow(info, now):
            return
        self.stats.status_received += 1
        info.last_heard = now
        if msg.blocks_done > info.blocks_done:
            info.progress_at = now
        info.blocks_done = msg.blocks_done
        info.received = msg.received
        info.dropped = msg.dropped
        info.reported = True
        delivery = info.delivery
        delivery.report(msg.seq_seen, msg.arrived, msg.overruns)
        # Until its first window closes, what it reported itself (counted from sequence numbers).
        info.loss = delivery.loss if delivery.sampled else min(1.0, max(0.0, msg.loss_ppm / 1e6))
        if now >= self._next_adapt:
            self._adapt(now)
        self._follow_loss()
        if msg.seq_seen > info.seq_seen:
            info.seq_seen = msg.seq_seen
        self._sample_rtt(info, msg.echo_time, msg.hold, now)
        if msg.chunks and self.manifest is not None:
            for index in msg.chunks[:16]:
                self._send_chunk(index, now)
        if not (msg.need or msg.whole) or self.state is not SenderState.SENDING:
            return
        self.stats.naks_received += 1
        info.naks += 1
        self._earn_credit(info, msg)
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

    def _allow(self, info: ReceiverInfo, now: float) -> bool:
        """A flood from one receiver must not starve the room (each STATUS may ask for
        thousands of blocks, each JOIN costs a signature): a token bucket per receiver."""
        tokens = min(STATUS_BURST, info.status_tokens + (now - info.status_at) * STATUS_RATE)
        info.status_at = now
        if tokens < 1.0:
            info.status_tokens = tokens
            self.stats.limited += 1
            return False
        info.status_tokens = tokens - 1.0
        return True

    @staticmethod
    def _earn_credit(info: ReceiverInfo, msg: Status) -> None:
        """Repair credit for what the receiver lost since its last NAK: the data it saw
        sequence numbers of but did not get (repairs lost again count too)."""
        if msg.seq_seen > info.credit_seq:
            lost = (msg.seq_seen - info.credit_seq) - max(0, msg.arrived - info.credit_arrived)
            info.repair_credit = min(REPAIR_CREDIT_MAX, info.repair_credit + 2 * max(0, lost))
            info.credit_seq, info.credit_arrived = msg.seq_seen, msg.arrived

    def _merge_need(
        self, index: int, counts: list[int] | None, seq_seen: int, whole: bool, defer: bool,
        credit: float = math.inf,
    ) -> int:
        """Queue what a receiver lacks of block ``index``; returns the symbols this added to
        the repairs served before the first pass goes on, never more than ``credit`` (beyond
        it the block waits in the catch-up queue)."""
        if not 0 <= index < self._sent_cursor:
            return 0  # its first pass is not over: the receiver asks too early
        if whole and index in self._catchup:
            return 0  # already owed in full: a late joiner repeats its ranges in every NAK
        length = self._lengths[index]
        if length < 0:
            return 0
        lay = block_layout(length, self.config.symbol_size)
        if counts is None or len(counts) != lay.group_count:
            # Nothing usable arrived, or the receiver built a wrong layout from a corrupted
            # header: send enough for the whole block.
            counts = list(lay.group_k)
        in_flight = [0] * lay.group_count
        log = self._sent_log.get(index)
        if log:
            for seq, group in reversed(log):
                if seq <= seq_seen:
                    break
                in_flight[group] += 1
        wants = [min(counts[g], k) - in_flight[g] for g, k in enumerate(lay.group_k)]
        if index in self._pending or not (defer or whole):
            queued = self._pending.get(index) or [0] * len(wants)
            owed = self._catchup.get(index)
            if owed is not None:
                # Someone has part of a block owed whole: no longer a catch-up, all of it is
                # served now if this receiver's credit covers it (else only its own need).
                merged = [max(w, o) for w, o in zip(wants, owed, strict=True)]
                added = sum(max(0, w - q) for w, q in zip(merged, queued, strict=True))
                if added <= credit:
                    del self._catchup[index]
                    self._raise(self._pending, index, merged)
                    return added
            added = sum(max(0, w - q) for w, q in zip(wants, queued, strict=True))
            if added <= credit:
                self._raise(self._pending, index, wants)
                return added
        self._raise(self._catchup, index, wants)
        return 0

    def _raise(self, queue: dict[int, list[int]], index: int, wants: list[int]) -> None:
        """Owe at least ``wants`` symbols of each group of block ``index`` in ``queue``."""
        pending = queue.get(index)
        for g, want in enumerate(wants):
            if want > 0:
                if pending is None:
                    pending = queue[index] = [0] * len(wants)
                if want > pending[g]:
                    pending[g] = want
                    self._idle = False

    def _adapt(self, now: float) -> None:
        """Re-mark the lagging receivers from their last delivery windows, then let the room
        set the rate (config.adapt_rate)."""
        self._next_adapt = now + ADAPT_INTERVAL
        active = [r for r in self.receivers.values() if r.outcome is None]
        # One that heard nothing of a good deal of data (a dead link, a host faking reports)
        # would keep the room unjudged, and the rate fixed, for as long as it stays.
        unheard = [r for r in active if not r.delivery.sampled
                   and self._seq - r.join_seq >= UNHEARD_DATAGRAMS]
        for r in unheard:
            r.delivery.lagging = True
        room = self.rate.classify(r.delivery for r in active if r not in unheard)
        if self.config.adapt_rate and self.state is SenderState.SENDING:
            rate = self.rate.decide(room, self._seq)
            if rate is not None:
                self._pacer.set_rate(rate / 8.0, now)

    def _follow_loss(self) -> None:
        """Proactive repair for the worst loss in the room (config.adapt_fec); lagging
        receivers are repaired on later passes instead. Until someone reports:
        config.fec_overhead."""
        if not self.config.adapt_fec:
            return
        losses = [r.loss for r in self.receivers.values()
                  if r.outcome is None and r.reported and not r.delivery.lagging]
        if losses:
            self.fec_overhead = overhead_for_loss(max(losses))

    def _on_done(self, msg: Done, addr: Addr, now: float) -> None:
        info = self.receivers.get(msg.receiver_id)
        if self._impostor(info, addr):
            return
        if info is None:
            if msg.ok or self.state is SenderState.COMPLETE or self._crowded(addr):
                return
            # A laptop that gave up before its JOIN arrived (its disk is too small, say):
            # the admin must still see it, as failed.
            info = self.receivers[msg.receiver_id] = ReceiverInfo(msg.receiver_id, addr, now)
            self._events.append(ReceiverJoined(msg.receiver_id, addr))
        self._control.append((DoneAck(self.session_id, msg.receiver_id).encode(), addr))
        info.last_heard = now
        if info.outcome is not None:
            return  # a repeated DONE: our ACK was lost
        ok = msg.ok and msg.digest == self.config.image_sha256
        reason = msg.reason or ("" if ok else "its image does not match the SHA-256")
        self._finish_receiver(info, ok, reason, now)

    def _finish_receiver(self, info: ReceiverInfo, ok: bool, reason: str, now: float) -> None:
        info.outcome = ok
        info.reason = reason
        info.finished_at = now
        self._events.append(ReceiverFinished(info.receiver_id, info.addr, ok, reason))
        self._check_complete(now)

    def _check_complete(self, now: float) -> None:
        if self.state is not SenderState.SENDING or not self.receivers:
            return
        if any(r.outcome is None for r in self.receivers.values()):
            return
        if self._window_end is not None and now < self._window_end:
            return  # a laptop booting late may still come
        self.state = SenderState.COMPLETE
        ok = sum(1 for r in self.receivers.values() if r.outcome)
        self._events.append(SessionComplete(ok, len(self.receivers) - ok))

    def _drop_silent(self, now: float) -> None:
        """Drop receivers that went silent, and those the sender served for ``stall_timeout``
        (after the first pass: before it, a lagging one waits its turn) without progress."""
        timeout = self.config.receiver_timeout
        stall = self.config.stall_timeout
        served_since = self.first_pass_done_at
        for info in list(self.receivers.values()):
            if info.outcome is not None:
                continue
            if now - info.last_heard > timeout:
                self._finish_receiver(info, False, f"silent for {timeout:g} s: dropped", now)
            elif (
                served_since is not None and info.blocks_done < self.nblocks
                and now - max(info.progress_at, served_since) > stall
            ):
                got = 100.0 * info.delivery.fraction
                self._finish_receiver(
                    info, False,
                    f"stored nothing for {stall:g} s although served (it gets {got:.0f} % of "
                    f"the datagrams at {self.rate.rate / 1e6:.3g} Mbit/s): dropped", now)

    def _sample_rtt(self, info: ReceiverInfo, echo: float, hold: float, now: float) -> None:
        if echo < 0:
            return
        sample = now - echo - hold
        if not 0 <= sample <= self.config.grtt_max:
            return
        info.rtt = sample if info.rtt is None else 0.875 * info.rtt + 0.125 * sample

    def _update_grtt(self) -> None:
        rtts = [r.rtt for r in self.receivers.values() if r.outcome is None and r.rtt is not None]
        if rtts:
            cfg = self.config
            self.grtt = min(max(max(rtts), cfg.grtt_min), cfg.grtt_max)

    def _prune_logs(self) -> None:
        """Forget repair sends every active receiver has seen past: no longer in flight. A
        lagging one (served later anyway) does not hold the log: it would grow without bound."""
        seen = [r.seq_seen for r in self.receivers.values()
                if r.outcome is None and not r.lagging]
        if not seen or not self._sent_log:
            return
        low = min(seen)
        for index in list(self._sent_log):
            log = self._sent_log[index]
            while log and log[0][0] <= low:
                log.popleft()
            if not log:
                del self._sent_log[index]
