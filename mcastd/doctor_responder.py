"""`mcastd doctor`'s responder: announces itself on the discovery group and answers laptops'
pings and burst requests on its control port (the range a session's sits in), sending each
burst to the probe group bounded in count and time; laptops' findings come back to be shown."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable

import trio

from driver.batchio import RecvRing
from driver.family import is_ipv6
from driver.udp import UdpEndpoint
from protocol.config import Addr
from protocol.diagnosis import Finding
from protocol.doctor import (
    MAX_BURST_SECONDS,
    BurstDone,
    BurstPlan,
    BurstRequest,
    Here,
    Ping,
    Pong,
    Result,
    decode_doctor_untrusted,
    plan_burst,
    probe_datagram,
)
from protocol.errors import BadPacket

HERE_INTERVAL = 0.5
SEND_TICK = 0.001  # the pacer's step: at 500 Mbit/s ~40 datagrams, within a GSO batch
MAX_LAPTOPS = 1024  # laptops remembered (bursts done, results shown): bounds the memory
MAX_BURSTS_KEPT = 8192  # answers kept for repeated requests, oldest forgotten first
MAX_QUEUED = 16  # bursts waiting their turn; more requests are dropped (a flood)

LaptopReport = Callable[[str, list[Finding]], None]  # (the laptop's address, its findings)


class Responder:
    def __init__(self, endpoint: UdpEndpoint, here: Here, discovery: Addr, probe: Addr,
                 on_report: LaptopReport) -> None:
        self.endpoint = endpoint
        self.here = here
        self.discovery = discovery
        self.probe = probe
        self.on_report = on_report
        self.dropped = 0  # foreign or garbled datagrams
        self.send_errors = 0
        self._done: dict[tuple[int, int], BurstDone] = {}
        self._under_way: set[tuple[int, int]] = set()
        self._laptops: set[int] = set()  # ids of the laptops that asked for bursts
        self._reported: set[int] = set()
        self._sending = trio.Lock()  # one burst at a time: they would measure each other

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._announce)
            await self._serve(nursery)

    async def _announce(self) -> None:
        datagram = self.here.encode()
        while True:
            self._send(datagram, self.discovery)
            await trio.sleep(HERE_INTERVAL)

    def _send(self, datagram: bytes, addr: Addr) -> None:
        try:
            self.endpoint.sock.sendto(datagram, addr)
        except OSError:  # a full buffer, no route, a local firewall: as if lost on the wire
            self.send_errors += 1

    async def _serve(self, nursery: trio.Nursery) -> None:
        ring = RecvRing(16)
        while True:
            await self.endpoint.wait_readable()
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while self.endpoint.receive_into(ring):
                    for i in range(ring.count):
                        self._handle(ring.datagram(i), ring.address_of(i), nursery)

    def _handle(self, data: bytes, source: Addr, nursery: trio.Nursery) -> None:
        try:
            msg = decode_doctor_untrusted(data)
        except BadPacket:
            self.dropped += 1
            return
        if isinstance(msg, Ping):
            self._send(Pong(msg.laptop_id, msg.seq, msg.sent).encode(), source)
        elif isinstance(msg, BurstRequest):
            self._on_burst(msg, source, nursery)
        elif isinstance(msg, Result):
            if msg.laptop_id not in self._reported and len(self._reported) < MAX_LAPTOPS:
                self._reported.add(msg.laptop_id)  # the laptop sends it more than once
                findings = [Finding(check, status, text) for check, status, text in msg.findings]
                self.on_report(source[0], findings)
        else:
            self.dropped += 1  # a doctor message not meant for the responder

    def _on_burst(self, request: BurstRequest, source: Addr, nursery: trio.Nursery) -> None:
        key = (request.laptop_id, request.burst)
        if key in self._under_way:
            return  # its BURST_DONE follows
        if key in self._done:  # a repeated request: its BURST_DONE was lost
            self._send(self._done[key].encode(), source)
            return
        if len(self._under_way) >= MAX_QUEUED or (
                len(self._laptops) >= MAX_LAPTOPS and request.laptop_id not in self._laptops):
            self.dropped += 1
            return
        self._laptops.add(request.laptop_id)
        plan = plan_burst(request, max(self.here.rates), is_ipv6(self.probe[0]))
        if isinstance(plan, str):
            self._finish(key, BurstDone(request.laptop_id, request.burst, 0, 0.0, plan), source)
            return
        self._under_way.add(key)
        nursery.start_soon(self._burst, plan, source)

    def _finish(self, key: tuple[int, int], done: BurstDone, source: Addr) -> None:
        self._under_way.discard(key)
        if len(self._done) >= MAX_BURSTS_KEPT:
            del self._done[next(iter(self._done))]
        self._done[key] = done
        self._send(done.encode(), source)

    async def _burst(self, plan: BurstPlan, source: Addr) -> None:
        async with self._sending:
            sent, seconds, error = await send_burst(self.endpoint, plan, self.probe)
        self._finish((plan.laptop_id, plan.burst),
                     BurstDone(plan.laptop_id, plan.burst, sent, seconds, error), source)


async def send_burst(endpoint: UdpEndpoint, plan: BurstPlan, group: Addr) -> tuple[int, float,
                                                                                     str]:
    """Send ``plan`` to ``group``, paced at its rate; stops at its count or after twice its
    time at most. Returns (datagrams sent, seconds, why fewer were sent or "")."""
    started = trio.current_time()
    deadline = started + 2 * MAX_BURST_SECONDS
    interval = plan.interval
    sent = 0
    while sent < plan.count:
        now = trio.current_time()
        if now >= deadline:
            return sent, now - started, "it took too long to send"
        due = min(plan.count, int((now - started) / interval) + 1)
        batch = [(probe_datagram(plan.laptop_id, plan.burst, i, plan.size), group)
                 for i in range(sent, due)]
        try:
            sent += endpoint.send_batch(batch)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                return sent, now - started, (f"its link refuses {plan.size}-byte datagrams "
                                             "(its MTU is smaller)")
            return sent, now - started, f"sending failed: {exc.strerror}"
        if sent < due:
            await endpoint.wait_writable()
        else:
            await trio.sleep(SEND_TICK)
    return sent, trio.current_time() - started, ""


def responder_here(responder_id: int, control: Addr, mtu: int, probe: Addr,
                   rates: list[int]) -> Here:
    return Here(responder_id, control[0], control[1], mtu, probe[0], probe[1], rates)

