"""The trio adapter: fake datagram endpoints for the real daemon loops, on trio's clock.

Endpoints implement ``driver.endpoint.Endpoint``. A datagram sent to a unicast address goes to
the endpoint bound there; one sent to a multicast group goes to every endpoint that joined it.
Each copy may be lost (seeded) and arrives after ``delay`` seconds of trio time, so under
``MockClock(autojump_threshold=0)`` a whole transfer runs in virtual time.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

import trio

from driver.batchio import RecvRing
from protocol.config import Addr


class FakeEndpoint:
    def __init__(self, net: FakeNetwork, address: Addr) -> None:
        self.net = net
        self._address = address
        self.groups: set[Addr] = set()
        self.inbox: deque[tuple[bytes, Addr]] = deque()
        self._arrived = trio.Event()
        self.closed = False
        self.writable_waits = 0

    @property
    def address(self) -> Addr:
        return self._address

    async def wait_readable(self) -> None:
        while not self.inbox:
            await self._arrived.wait()
            self._arrived = trio.Event()

    async def wait_writable(self) -> None:
        self.writable_waits += 1
        await trio.lowlevel.checkpoint()

    def receive_into(self, ring: RecvRing) -> int:
        inbox = self.inbox
        batch = [inbox.popleft() for _ in range(min(len(inbox), ring.nslots))]
        return ring.put(batch)

    def send_batch(self, datagrams: Sequence[tuple[bytes, Addr]], start: int = 0) -> int:
        end = len(datagrams)
        if self.net.send_limit is not None:  # a full socket buffer: the caller must wait
            end = min(end, start + self.net.send_limit)
        for data, dest in datagrams[start:end]:
            self.net.send(self._address, data, dest)
        return end

    def deliver(self, data: bytes, source: Addr) -> None:
        if not self.closed:
            self.inbox.append((data, source))
            self._arrived.set()

    def close(self) -> None:
        self.closed = True
        self.net.remove(self)


class FakeNetwork:
    """Hosts endpoints; ``loss`` applies to each delivered copy, from a seeded generator."""

    def __init__(
        self, nursery: trio.Nursery, *, delay: float = 0.0005, loss: float = 0.0, seed: int = 0,
        send_limit: int | None = None,
    ) -> None:
        self.nursery = nursery
        self.delay = delay
        self.loss = loss
        self.send_limit = send_limit
        self.rng = random.Random(seed)
        self.endpoints: dict[Addr, FakeEndpoint] = {}
        self.members: dict[Addr, list[FakeEndpoint]] = {}
        self.delivered = 0
        self.lost = 0
        self._port = 40000

    def endpoint(self, host: str, port: int = 0) -> FakeEndpoint:
        if port == 0:
            self._port += 1
            port = self._port
        ep = FakeEndpoint(self, (host, port))
        self.endpoints[ep.address] = ep
        return ep

    def join(self, endpoint: FakeEndpoint, group: Addr) -> None:
        endpoint.groups.add(group)
        self.members.setdefault(group, []).append(endpoint)

    def remove(self, endpoint: FakeEndpoint) -> None:
        self.endpoints.pop(endpoint.address, None)
        for group in endpoint.groups:
            self.members[group].remove(endpoint)

    def send(self, source: Addr, data: bytes, dest: Addr) -> None:
        targets = self.members.get(dest)
        if targets is None:
            single = self.endpoints.get(dest)
            targets = [single] if single is not None else []
        for target in targets:
            if self.loss and self.rng.random() < self.loss:
                self.lost += 1
                continue
            self.delivered += 1
            self.nursery.start_soon(self._arrive, target, data, source)

    async def _arrive(self, target: FakeEndpoint, data: bytes, source: Addr) -> None:
        await trio.sleep(self.delay)
        target.deliver(data, source)


class FakeReceiverNet:
    """``receiver.net.ReceiverNet`` over a FakeNetwork: one laptop's three endpoints."""

    def __init__(self, net: FakeNetwork, host: str, discovery: Addr) -> None:
        self.net = net
        self.host = host
        self.discovery = net.endpoint(host)
        net.join(self.discovery, discovery)
        self.control = net.endpoint(host)
        self.groups: list[FakeEndpoint] = []

    def open_group(self, group: Addr) -> FakeEndpoint:
        endpoint = self.net.endpoint(self.host)
        self.net.join(endpoint, group)
        self.groups.append(endpoint)
        return endpoint

    def overruns(self) -> int | None:
        return None  # the fake network drops nothing for want of buffer

    def reassert(self) -> None:
        pass  # no switch to forget us

    def close_groups(self) -> None:
        for endpoint in self.groups:
            endpoint.close()
        self.groups.clear()

    def close(self) -> None:
        self.close_groups()
        for endpoint in (self.discovery, self.control):
            endpoint.close()
