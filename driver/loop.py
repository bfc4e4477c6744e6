"""The event loop both daemons share: feed a sans-I/O session datagrams and timer ticks, send
what it returns, hand its events to the daemon.

One main task owns the timer and sending; one reader task per endpoint drains datagrams into
the session and pokes the main task. trio runs one task at a time, so the session is never
entered concurrently.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, TypeVarTuple

import trio

from protocol.config import Addr
from protocol.datapath import Datagrams
from protocol.events import Event

from .batchio import RecvRing
from .endpoint import Endpoint

_RECEIVE_SLOTS = 64  # receive slots per system call (with GRO, each up to 64 datagrams)
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Worker:
    """Runs blocking work (disk, zstd, FEC, hashing) in threads, ``threads`` at a time.

    ``inline=True`` runs it in the trio thread instead: for tests on trio's MockClock, whose
    autojump would otherwise see every thread wait as idle time and race ahead."""

    def __init__(self, threads: int, *, inline: bool = False) -> None:
        self._limiter = trio.CapacityLimiter(threads)
        self.inline = inline

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        if self.inline:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)


class Session(Protocol):
    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None: ...
    def receive_many(self, batch: Datagrams, now: float) -> None:
        """All ``ring.count`` datagrams of one receive, as ``receive_datagram`` of each in
        turn would take them (the receiver places its data in one call)."""
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]: ...
    def next_event(self) -> Event | None: ...


class SessionDriver:
    def __init__(
        self, session: Session, endpoint: Endpoint, on_event: Callable[[Event], None]
    ) -> None:
        self.session = session
        self.endpoint = endpoint  # everything the session sends leaves through this one
        self.on_event = on_event
        self._wake = trio.Event()
        self._stopped = False

    def poke(self) -> None:
        """Something changed outside the loop (a block was fed or stored): run it now."""
        self._wake.set()

    def stop(self) -> None:
        """Leave ``run`` after sending what is queued."""
        self._stopped = True
        self._wake.set()

    async def receive_from(
        self, endpoint: Endpoint, room: Callable[[], Awaitable[None]] | None = None,
        linger: float = 0.0,
    ) -> None:
        """Reader task: everything ``endpoint`` receives goes into the session. ``room``, if
        given, is awaited before each read: a receiver whose disk lags stops reading, so the
        kernel drops what it cannot hold and the protocol asks for it again later. ``linger``
        seconds after a short batch let more datagrams queue up: a paced stream otherwise
        wakes the loop once per datagram, which costs more CPU than the datagram itself."""
        ring = RecvRing(_RECEIVE_SLOTS)
        session = self.session
        while True:
            if room is not None:
                await room()
            await endpoint.wait_readable()
            count = endpoint.receive_into(ring)
            if not count:
                continue
            session.receive_many(ring, trio.current_time())
            short = ring.slots[count - 1] + 1 < ring.nslots  # slots left empty
            self._wake.set()
            if linger and short:
                await trio.sleep(linger)

    async def run(self) -> None:
        session = self.session
        while True:
            now = trio.current_time()
            timer = session.get_timer()
            if timer is not None and timer <= now:
                session.handle_timer(now)
            self._dispatch()
            await self._flush()
            self._dispatch()
            if self._stopped:
                await self._flush()
                return
            if not self._wake.is_set():
                timer = session.get_timer()
                with trio.move_on_at(math.inf if timer is None else timer):
                    await self._wake.wait()
            self._wake = trio.Event()

    def _dispatch(self) -> None:
        session = self.session
        while (event := session.next_event()) is not None:
            self.on_event(event)

    async def _flush(self) -> None:
        session, endpoint = self.session, self.endpoint
        while batch := session.datagrams_to_send(trio.current_time()):
            sent = endpoint.send_batch(batch)
            while sent < len(batch):
                await endpoint.wait_writable()
                sent = endpoint.send_batch(batch, sent)
            # When the CPU, not the pacer, is the limit this loop never sleeps: let the
            # reader tasks in between batches.
            await trio.lowlevel.checkpoint()
