"""The sender daemon: one SenderSession, the image read and encoded in worker threads, and a
live view of every receiver."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio

from driver.batchio import RecvRing
from driver.console import Console
from driver.endpoint import Endpoint
from driver.loop import SessionDriver, Worker
from driver.report import FinalReport, RateMeter, ReceiverRow, SenderSnapshot
from driver.units import format_bytes, format_rate
from protocol.blockcache import precompute_repairs
from protocol.events import (
    BlockWanted,
    Event,
    Outcome,
    ReceiverFinished,
    ReceiverJoined,
    SessionComplete,
    TransferStarted,
)
from protocol.layout import raw_block_length
from protocol.roster import ReceiverInfo
from protocol.sender import SenderSession, SenderState

from .image import BlockSource, ImageError
from .neighbours import Neighbours

REPORT_INTERVAL = 0.25
NEIGHBOUR_CHECK_INTERVAL = 0.5
ENCODE_THREADS = 2  # the machines we target have 2+ cores; zstd releases the GIL
# A task run beside the session with the daemon (the status page: mcastd/status.py).
StatusTask = Callable[["SenderDaemon"], Awaitable[None]]


class SenderDaemon:
    def __init__(
        self, session: SenderSession, source: BlockSource, endpoint: Endpoint, console: Console,
        *, worker: Worker | None = None, status: StatusTask | None = None,
        discovery: Endpoint | None = None,
    ) -> None:
        """``discovery``: a listener on the discovery group, to hear the other sessions
        (mcastd/neighbours.py)."""
        self.session = session
        self.source = source
        self.endpoint = endpoint
        self.console = console
        self.driver = SessionDriver(session, endpoint, self._on_event)
        self.worker = worker or Worker(ENCODE_THREADS)
        self._nursery: trio.Nursery | None = None
        self.error: str | None = None
        self._started = trio.current_time()
        self._wall = time.time() - self._started  # trio's clock + this = the wall clock
        self._send_rate = RateMeter(self._started, 0, interval=REPORT_INTERVAL, weight=1.0)
        self._rates: dict[int, RateMeter] = {}  # receiver id → image bits it stores per second
        self.status = status
        self.discovery = discovery
        self.last_snapshot: SenderSnapshot | None = None  # what the status page reads

    async def run(self) -> FinalReport:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.driver.receive_from, self.endpoint)
            nursery.start_soon(self._report_loop)
            if self.status is not None:
                nursery.start_soon(self.status, self)
            if self.discovery is not None:
                nursery.start_soon(self._hear_neighbours, self.discovery)
            await self.driver.run()
            nursery.cancel_scope.cancel()
        return self.final_report()

    # --- session events -------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        assert self._nursery is not None
        if isinstance(event, BlockWanted):
            self._nursery.start_soon(self._load, event.index)
        elif isinstance(event, ReceiverJoined):
            self.console.message(f"receiver {_addr(event.addr)} joined")
        elif isinstance(event, TransferStarted):
            self.console.message(f"sending to {event.receivers} receiver(s)")
        elif isinstance(event, ReceiverFinished):
            outcome = "verified its image" if event.ok else f"failed: {event.reason}"
            self.console.message(f"receiver {_addr(event.addr)} {outcome}")
        elif isinstance(event, SessionComplete):
            self.driver.stop()

    async def _load(self, index: int) -> None:
        try:
            kind, payload, repairs = await self.worker.run(self._encode, index)
        except ImageError as exc:
            self.error = str(exc)
            self.session.abort(self.error, trio.current_time())  # the laptops are told
            self.driver.stop()
            return
        self.session.feed_block(index, kind, payload, repairs)
        self.driver.poke()

    def stop(self, reason: str) -> None:
        """The admin stops the session: the laptops are told ``reason``, as when the image
        fails to read, and serve exits non-zero."""
        self.error = f"the session was {reason} from the status page."
        self.session.abort(reason, trio.current_time())
        self.driver.stop()

    def _encode(self, index: int) -> tuple[int, bytes, list[dict[int, bytes]]]:
        """Worker thread: read, compress and make the first repair symbols of one block, so
        the event loop only frames and sends."""
        kind, payload = self.source.read_encoded(index)
        session = self.session
        return kind, payload, precompute_repairs(payload, session.config.symbol_size,
                                                 session.fec_overhead)

    async def _hear_neighbours(self, discovery: Endpoint) -> None:
        """Warn of another session on our group; share this machine's link with the other
        sessions sending from it (mcastd/neighbours.py)."""
        session = self.session
        config = session.config
        neighbours = Neighbours(session.session_id, config.data_addr, config.control_addr[0])
        ceiling, sharing = config.rate_bps, 0
        ring = RecvRing(16)
        while True:
            with trio.move_on_after(NEIGHBOUR_CHECK_INTERVAL):
                await discovery.wait_readable()
            now = trio.current_time()
            for i in range(discovery.receive_into(ring)):
                warning = neighbours.heard(ring.datagram(i), ring.address_of(i), now)
                if warning is not None:
                    self.console.message(warning, level=logging.WARNING)
            others = neighbours.sending_here(now)
            if others != sharing:
                sharing = others
                session.set_rate(ceiling / (1 + others), now)
                self.driver.poke()
                share = format_rate(ceiling / (1 + others))
                self.console.message(
                    f"{others} other session(s) send from this machine: this one takes "
                    f"{share} of its {format_rate(ceiling)} link" if others else
                    f"no other session sends from this machine: back to {share}")

    # --- progress -------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        while True:
            self.last_snapshot = self.snapshot()
            self.console.update(self.last_snapshot)
            await trio.sleep(REPORT_INTERVAL)

    def snapshot(self) -> SenderSnapshot:
        session = self.session
        now = trio.current_time()
        stats = session.stats
        rows = [self._row(info, now) for info in session.receivers.values()]
        active = [i.blocks_done for i in session.receivers.values() if i.outcome is None]
        nblocks = max(1, session.used_count)  # (free blocks are never stored)
        if session.state is SenderState.COMPLETE:
            percent = 100.0
        elif active:
            percent = 100.0 * min(active) / nblocks
        else:
            percent = 0.0
        eta = None
        if session.started_at is not None and 0 < percent < 100:
            eta = (now - session.started_at) * (100 - percent) / percent
        return SenderSnapshot(
            name=session.config.name,
            image_size=session.config.image_size,
            elapsed=now - self._started,
            state=session.state.value,
            percent=percent,
            rate_bps=self._send_rate.update(now, stats.data_bytes),
            eta=eta,
            sent_bytes=stats.data_bytes,
            repair_bytes=stats.repair_bytes,
            receivers=rows,
        )

    def _row(self, info: ReceiverInfo, now: float) -> ReceiverRow:
        session = self.session
        stored = info.blocks_done * session.config.block_size
        meter = self._rates.get(info.receiver_id)
        if meter is None:
            meter = self._rates[info.receiver_id] = RateMeter(now, stored, interval=REPORT_INTERVAL)
        rate = meter.update(now, stored)
        seconds = None
        if info.finished_at is not None and session.started_at is not None:
            seconds = info.finished_at - max(session.started_at, info.joined_at)
        started = None if session.started_at is None else max(session.started_at, info.joined_at)
        verified = info.outcome is Outcome.VERIFIED
        return ReceiverRow(
            addr=_addr(info.addr),
            state=receiver_state(info, session),
            percent=100.0 if verified else 100.0 * info.blocks_done / max(1, session.nblocks),
            rate_bps=rate if info.outcome is None else 0.0,
            loss=info.loss,
            reason=receiver_reason(info),
            seconds=seconds,
            verified_bytes=(info.verified_bytes or verified_size(session)) if verified else 0,
            host=dict(info.host),
            started_at=None if started is None else started + self._wall,
            finished_at=None if info.finished_at is None else info.finished_at + self._wall,
        )

    def final_report(self) -> FinalReport:
        session = self.session
        rows = [self._row(info, trio.current_time()) for info in session.receivers.values()]
        ok_count = sum(1 for i in session.receivers.values() if i.outcome is Outcome.VERIFIED)
        seconds = 0.0
        if session.started_at is not None:
            seconds = trio.current_time() - session.started_at
        size = format_bytes(session.config.image_size)
        if self.error is not None:
            ok, message = False, self.error
        elif not rows:
            ok, message = False, "no receiver joined the session."
        elif ok_count == len(rows):
            ok, message = True, f"all {ok_count} receiver(s) verified the {size} image."
        else:
            ok = False
            message = f"{len(rows) - ok_count} of {len(rows)} receiver(s) did not verify the image."
        stats = session.stats
        return FinalReport(
            role="sender",
            ok=ok,
            message=message,
            seconds=seconds,
            image_size=session.config.image_size,
            details={
                "data_group": list(session.config.data_addr),
                "control_port": self.endpoint.address[1],
                "sent_bytes": stats.data_bytes,
                "datagrams": stats.data_datagrams,
                "repair_datagrams": stats.repair_datagrams,
                "naks": stats.naks_received,
                "garbled": stats.garbled,
                "foreign": stats.foreign,
                "repairs_made_inline": stats.repairs_made_inline,
            },
            receivers=rows,
        )


# How a finished receiver shows in the table.
_FINISHED_STATE = {Outcome.VERIFIED: "done", Outcome.FAILED: "failed", Outcome.DROPPED: "dropped",
                   Outcome.DISK_ERROR: "disk error"}


def receiver_state(info: ReceiverInfo, session: SenderSession) -> str:
    """joining, comparing, receiving, lagging, verifying, done, failed, disk error or
    dropped."""
    if info.outcome is not None:
        return _FINISHED_STATE[info.outcome]
    if info.comparing:
        return "comparing"  # a delta receiver reading its disk
    if info.blocks_done >= session.used_count:
        return "verifying"
    if session.state is SenderState.WAITING or not info.delivery.sampled:
        return "joining"
    return "lagging" if info.lagging else "receiving"


def verified_size(session: SenderSession) -> int:
    """What a laptop that verified the image read back and found right, as the receiver
    checks it: every used block of an image with a used-block map (the last may be short),
    else the whole image, whose SHA-256 it compared."""
    config, used = session.config, session.used
    if used is None:
        return config.image_size
    size = session.used_count * config.block_size
    last = session.nblocks - 1
    if last >= 0 and used.flags[last]:
        size -= config.block_size - raw_block_length(last, config.image_size, config.block_size)
    return size


def receiver_reason(info: ReceiverInfo) -> str:
    """Why it failed or was dropped; for a lagging one, what it gets and what happens."""
    if info.lagging:
        got = 100.0 * info.delivery.fraction
        return f"gets {got:.0f} % of the datagrams: served after the others"
    return info.reason


def _addr(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"
