"""The datagram endpoint both daemon loops are written against.

``driver.udp.UdpEndpoint`` is the real one (a kernel socket); the netsim trio adapter provides
fake ones on trio's MockClock, so the very same loops are tested in virtual time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from protocol.config import Addr


class Endpoint(Protocol):
    @property
    def address(self) -> Addr: ...

    async def wait_readable(self) -> None: ...

    async def wait_writable(self) -> None: ...

    def receive_batch(self, out: list[tuple[bytes, Addr]], limit: int) -> None:
        """Append queued datagrams (about ``limit`` at most) to ``out``; never blocks."""

    def send_batch(self, datagrams: Sequence[tuple[bytes, Addr]], start: int = 0) -> int:
        """Send from ``start``; return the index of the first datagram not sent."""

    def close(self) -> None: ...
