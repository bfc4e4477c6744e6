"""The datagram endpoint both daemon loops are written against.

``driver.udp.UdpEndpoint`` is the real one (a kernel socket); the netsim trio adapter provides
fake ones on trio's MockClock, so the very same loops are tested in virtual time.
"""

from __future__ import annotations

from typing import Protocol

from protocol.config import Addr

from .batchio import RecvRing


class Endpoint(Protocol):
    @property
    def address(self) -> Addr: ...

    async def wait_readable(self) -> None: ...

    async def wait_writable(self) -> None: ...

    def receive_into(self, ring: RecvRing) -> int:
        """Fill ``ring`` with queued datagrams and return how many (``ring.count`` too);
        never blocks."""

    def send_batch(self, datagrams: list[tuple[bytes, Addr]], start: int = 0) -> int:
        """Send from ``start``; return the index of the first datagram not sent."""

    def close(self) -> None: ...
