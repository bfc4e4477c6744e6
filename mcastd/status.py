"""`mcastd serve --status [HOST:]PORT`: where the status page listens, its token, and the
task the SenderDaemon runs it in. Loopback by default, and then without a token (whoever can
reach 127.0.0.1 is on the admin's machine already); beyond loopback, control actions need the
token serve prints at start."""

from __future__ import annotations

import argparse
import ipaddress
import secrets
from dataclasses import dataclass

import trio

from driver.udp import NetworkError

from .serve import SenderDaemon
from .status_api import StatusApi
from .status_control import DaemonControls
from .status_http import HttpServer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9780
DEFAULT_ADDRESS = f"{DEFAULT_HOST}:{DEFAULT_PORT}"


def status_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` (port 0: any free one)."""
    host, colon, port = text.rpartition(":")
    if not colon:
        host = DEFAULT_HOST
    host = host.removeprefix("[").removesuffix("]") or DEFAULT_HOST
    if host == "localhost":
        host = DEFAULT_HOST
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not PORT or ADDRESS:PORT (an IP address: 127.0.0.1, 0.0.0.0)"
        ) from None
    if not (port.isdigit() and int(port) < 65536):
        raise argparse.ArgumentTypeError(f"{text!r} has no TCP port (0-65535)")
    return host, int(port)


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


@dataclass
class StatusServer:
    host: str
    port: int  # the one bound (a free one when asked for 0)
    token: str | None  # None on loopback
    listeners: list[trio.SocketListener]

    @classmethod
    async def open(cls, host: str, port: int) -> StatusServer:
        """Bind now, so a port in use fails before the image is hashed."""
        try:
            listeners = await trio.open_tcp_listeners(port, host=host, backlog=16)
        except OSError as exc:
            raise NetworkError(f"the status page cannot listen on {host}:{port}: "
                               f"{exc.strerror or exc}.") from exc
        bound = listeners[0].socket.getsockname()[1]
        token = None if is_loopback(host) else secrets.token_urlsafe(18)
        return cls(host, bound, token, listeners)

    def url(self, interface_address: str) -> str:
        """What the admin opens; a wildcard bind is shown at the interface's address."""
        host = self.host
        if ipaddress.ip_address(host).is_unspecified:
            host = interface_address
        if ":" in host:  # IPv6, its zone (a link-local address's interface) escaped (RFC 6874)
            host = f"[{host.replace('%', '%25')}]"
        query = f"?token={self.token}" if self.token is not None else ""
        return f"http://{host}:{self.port}/{query}"

    def allowed_hosts(self) -> frozenset[str] | None:
        """On loopback, the Host headers a control action may carry (no DNS rebinding)."""
        if self.token is not None:
            return None
        names = ("127.0.0.1", "localhost", "[::1]", f"[{self.host}]", self.host)
        return frozenset(n for name in names for n in (name, f"{name}:{self.port}"))

    async def run(self, daemon: SenderDaemon) -> None:
        api = StatusApi(DaemonControls(daemon), token=self.token,
                        allowed_hosts=self.allowed_hosts())
        await HttpServer(api.handle).serve(self.listeners)

    async def aclose(self) -> None:
        for listener in self.listeners:
            await listener.aclose()
