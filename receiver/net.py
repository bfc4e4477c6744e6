"""The receiver's sockets: the discovery group from the start, the data group once a session
is chosen, and a unicast socket for talking to the sender."""

from __future__ import annotations

import socket
from typing import Protocol

from driver.endpoint import Endpoint
from driver.udp import UdpEndpoint, open_group_listener, open_unicast
from protocol.config import Addr


class ReceiverNet(Protocol):
    @property
    def discovery(self) -> Endpoint: ...

    @property
    def control(self) -> Endpoint: ...

    def open_group(self, group: Addr) -> Endpoint:
        """Join ``group`` (raises driver.udp.NetworkError with a sentence if it cannot)."""

    def overruns(self) -> int | None:
        """Datagrams the kernel dropped for want of room in our group sockets (None: unknown)."""

    def reassert(self) -> None:
        """Announce our group memberships again (snooping switches forget silent members)."""

    def close_groups(self) -> None:
        """Leave the groups ``open_group`` joined (a new session joins its own)."""

    def close(self) -> None: ...


class KernelNet:
    def __init__(self, ifname: str, discovery: Addr, *, gro: bool | None = None,
                 family: int = socket.AF_INET) -> None:
        self.ifname = ifname
        self.gro = gro
        self.discovery = open_group_listener(discovery, ifname, buffer=1 << 20)
        try:
            self.control = open_unicast(ifname, family)
        except BaseException:
            self.discovery.close()
            raise
        self._groups: list[UdpEndpoint] = []

    def open_group(self, group: Addr) -> Endpoint:
        endpoint = open_group_listener(group, self.ifname, gro=self.gro)
        self._groups.append(endpoint)
        return endpoint

    def overruns(self) -> int | None:
        counts = [endpoint.drops() for endpoint in self._groups]
        known = [n for n in counts if n is not None]
        return sum(known) if known else None

    def reassert(self) -> None:
        for endpoint in (self.discovery, *self._groups):
            endpoint.reassert_membership()

    def close_groups(self) -> None:
        for endpoint in self._groups:
            endpoint.close()
        self._groups.clear()

    def close(self) -> None:
        self.close_groups()
        for endpoint in (self.discovery, self.control):
            endpoint.close()
