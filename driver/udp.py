"""UDP sockets for both daemons: multicast set-up, and batched send/receive for the data path.

trio's own socket methods cost 20-45 µs a datagram (BUILDING-BLOCKS.md §3), so the data path
uses plain non-blocking stdlib sockets, drained until EAGAIN, and awaits
``trio.lowlevel.wait_readable/wait_writable`` only then. Where the kernel has them, UDP GSO
(one sendmsg carries up to 64 equal datagrams) and GRO (one recvmsg returns several) cut the
cost per datagram 5-12×; the plain path is kept as a fallback, chosen at start-up.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct

import trio

from protocol.config import CONTROL_PORTS, Addr

from .batchio import UDP_GRO, UDP_SEGMENT, RecvRing, recv_into, run_end, send_run
from .family import ipv4_address, is_ipv6, link_local_address, scoped
from .neterror import NetworkError as NetworkError  # where the programs import it from

log = logging.getLogger(__name__)

SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
IP_MULTICAST_ALL = 49
IPV6_MULTICAST_ALL = 29  # linux/in6.h
IP_MTU_DISCOVER = 10  # linux/in.h
IPV6_MTU_DISCOVER = 23
IP_PMTUDISC_DO = 2  # (IPV6_PMTUDISC_DO too)
SO_MEMINFO = 55  # asm-generic/socket.h
_MEMINFO = struct.Struct("=9I")  # linux/sock_diag.h: SK_MEMINFO_VARS u32s, up to ...
SK_MEMINFO_DROPS = 8  # ... the datagrams dropped because the receive buffer was full

# Switches that snoop IGMP but hear no querier time a member out after ~260 s by default
# (robustness 2 × query interval 125 s + 10 s), and Linux sends an unsolicited membership
# report only when a socket joins: a receiver re-joins once a minute to stay well inside that.
IGMP_REASSERT_INTERVAL = 60.0
# Send errors that mean "no way there right now", not a broken socket.
UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN})

SOCKET_BUFFER = 8 << 20  # ~6,000 full datagrams: rides out a few ms of a busy event loop
# The sender's socket holds this long of its rate (within SEND_BUFFER_MIN..SOCKET_BUFFER): what
# is queued at its own interface (qdisc, shaper, NIC ring) counts against the buffer, so the
# socket blocks before that queue overflows. A UDP datagram dropped there is dropped silently
# (the kernel reports the qdisc's ENOBUFS only with IP_RECVERR) and every laptop would have to
# ask for it; a blocked socket makes the sender wait for its link instead, as TCP's small
# queues do. 20 ms: at 100 Mbit/s 10 ms cost a lossy room 1.5-4.5 % of its time (a sender
# woken late found its link idle); a 50 ms interface queue (the lab's shaper) still holds it.
SEND_BUFFER_SECONDS = 0.02
SEND_BUFFER_MIN = 64 << 10  # one GSO batch


def gso_supported() -> bool:
    return _probe(UDP_SEGMENT, 1400)


def gro_supported() -> bool:
    return _probe(UDP_GRO, 1)


def _probe(option: int, value: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.setsockopt(socket.SOL_UDP, option, value)
        except OSError:
            return False
    return True


def socket_drops(sock: socket.socket) -> int | None:
    """How many datagrams the kernel dropped for ``sock`` because its receive buffer was full
    (SK_MEMINFO_DROPS); None where the kernel does not say."""
    try:
        info = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size)
    except OSError:
        return None
    if len(info) < _MEMINFO.size:  # a kernel older than the drops counter
        return None
    return int(_MEMINFO.unpack(info)[SK_MEMINFO_DROPS])


class UdpEndpoint:
    """One non-blocking UDP socket with batched I/O. Implements the daemons' Endpoint."""

    def __init__(self, sock: socket.socket, *, gso: bool = False, gro: bool = False) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.gso = gso
        self.gro = gro
        # The ip_mreqn of the group this socket joined (set by open_group_listener), else None.
        self.membership: bytes | None = None
        self.unreachable = 0  # datagrams lost to ENETUNREACH and the like
        if gro:
            sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)

    @property
    def address(self) -> Addr:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self.sock)

    async def wait_writable(self) -> None:
        await trio.lowlevel.wait_writable(self.sock)

    def receive_into(self, ring: RecvRing) -> int:
        """Fill ``ring`` with what is queued (one recvmmsg); never blocks."""
        ring.count = recv_into(self.sock, ring, self.gro)
        return ring.count

    def send_batch(self, datagrams: list[tuple[bytes, Addr]], start: int = 0) -> int:
        """Send ``datagrams[start:]``; returns the index of the first one not sent (the
        socket buffer is full: await ``wait_writable`` and call again from there)."""
        sock, gso = self.sock, self.gso
        i, n = start, len(datagrams)
        while i < n:
            i, err = send_run(sock, datagrams, i, gso)
            if not err:
                continue
            if err in UNREACHABLE:
                # A cable pulled or a route not up yet: these datagrams are lost, as on a
                # wire; the protocol's timers send again. Not a reason to stop the program.
                end = run_end(datagrams, i, gso)
                self.unreachable += end - i
                return end
            if err in (errno.EAGAIN, errno.EINTR, errno.ENOBUFS):
                return i
            raise OSError(err, os.strerror(err))
        return i

    def drops(self) -> int | None:
        """Datagrams lost to this socket's full receive buffer so far (None: unknown). A
        receiver whose socket overflows (a CPU-starved laptop) reports the count to the sender
        as a congestion signal, rather than letting it pass for silent loss on the wire."""
        return socket_drops(self.sock)

    def reassert_membership(self) -> None:
        """Leave and re-join this socket's group, so the kernel sends a fresh unsolicited
        IGMP (MLD) membership report (see IGMP_REASSERT_INTERVAL). No-op for a socket that
        joined no group."""
        membership = self.membership
        if membership is None:
            return
        level, drop, add = _MEMBERSHIP_OPTIONS[len(membership) == _IPV6_MREQ_SIZE]
        try:
            self.sock.setsockopt(level, drop, membership)
            self.sock.setsockopt(level, add, membership)
        except OSError as exc:
            raise NetworkError(
                f"cannot renew membership of multicast group {_group_of(membership)}: "
                f"{exc.strerror}."
            ) from exc

    def close(self) -> None:
        self.sock.close()


# --- set-up ---------------------------------------------------------------------------------


def interface_address(ifname: str, family: int = socket.AF_INET) -> tuple[str, int]:
    """(address, index) of interface ``ifname``: its IPv4 address, or for AF_INET6 its
    link-local one with the interface as zone ("fe80::1%eth0")."""
    try:
        index = socket.if_nametoindex(ifname)
    except OSError:
        raise NetworkError(
            f"there is no network interface called {ifname!r}: pick one from `ip link`."
        ) from None
    if family == socket.AF_INET6:
        local = link_local_address(ifname)
        if local is None:
            raise NetworkError(f"interface {ifname} has no usable IPv6 link-local address: "
                               "bring it up, or wait a second for it to pass duplicate "
                               "address detection.")
        return scoped(local, ifname), index
    ip = ipv4_address(ifname)
    if ip is None:
        raise NetworkError(f"interface {ifname} has no IPv4 address: configure one, pick "
                           "another, or pass --ipv6.")
    return ip, index


def interface_mtu(ifname: str) -> int:
    """The MTU of interface ``ifname`` (SIOCGIFMTU): the largest IP packet its link carries."""
    import fcntl

    siocgifmtu = 0x8921
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            res = fcntl.ioctl(sock.fileno(), siocgifmtu, struct.pack("16si", ifname.encode()[:15],
                                                                     0))
        except OSError:
            raise NetworkError(
                f"there is no network interface called {ifname!r}: pick one from `ip link`."
            ) from None
    return int(struct.unpack_from("i", res, 16)[0])


def interface_speed(ifname: str, sysfs: str = "/sys/class/net") -> float | None:
    """The link speed the NIC negotiated, bits per second; None where it says none (a virtual
    interface, a link that is down, a driver that does not tell)."""
    try:
        with open(f"{sysfs}/{ifname}/speed") as f:
            mbit = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return mbit * 1e6 if 0 < mbit < 10_000_000 else None


def default_interface(route_table: str = "/proc/net/route",
                      ipv6_route_table: str = "/proc/net/ipv6_route") -> str:
    """The interface of the IPv4 default route, else of the IPv6 one (an IPv6-only LAN)."""
    for table, is_default in ((route_table, _ipv4_default), (ipv6_route_table, _ipv6_default)):
        try:
            with open(table) as f:
                for line in f.readlines():
                    fields = line.split()
                    if is_default(fields) and fields[-1] != "lo":
                        return fields[0] if table == route_table else fields[-1]
        except OSError:
            pass
    raise NetworkError("there is no default route to pick an interface from: pass --interface.")


def _ipv4_default(fields: list[str]) -> bool:
    return len(fields) > 2 and fields[1] == "00000000"


def _ipv6_default(fields: list[str]) -> bool:
    # destination ::/0, whatever the next hop; the kernel lists "unreachable" ones on lo.
    return len(fields) == 10 and fields[0] == "0" * 32 and fields[1] == "00"


def _raise_buffer(sock: socket.socket, force: int, option: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)  # root may exceed net.core.*mem_max
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)
    got = sock.getsockopt(socket.SOL_SOCKET, option) // 2  # the kernel reports double
    if got < size:
        log.warning(
            "the kernel capped a socket buffer at %d KiB (wanted %d KiB): raise "
            "net.core.rmem_max/wmem_max to avoid drops at high rates.", got >> 10, size >> 10
        )


def _ip_mreqn(group: str, ifindex: int) -> bytes:
    return socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("=i", ifindex)


def _ipv6_mreq(group: str, ifindex: int) -> bytes:
    return socket.inet_pton(socket.AF_INET6, group) + struct.pack("=I", ifindex)


_IPV6_MREQ_SIZE = 20
# (level, leave, join) by "is IPv6"
_MEMBERSHIP_OPTIONS = {
    False: (socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, socket.IP_ADD_MEMBERSHIP),
    True: (socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, socket.IPV6_JOIN_GROUP),
}


def _group_of(membership: bytes) -> str:
    if len(membership) == _IPV6_MREQ_SIZE:
        return socket.inet_ntop(socket.AF_INET6, membership[:16])
    return socket.inet_ntoa(membership[:4])


def _sockaddr(host: str, port: int, index: int) -> tuple[str, int] | tuple[str, int, int, int]:
    """What bind() takes for ``host``: IPv6 with its interface as scope (link-local needs it)."""
    if is_ipv6(host):
        return host.split("%")[0], port, 0, index
    return host, port


def send_buffer_for(rate_bps: float) -> int:
    """The sender's socket buffer for a ceiling of ``rate_bps`` (see SEND_BUFFER_SECONDS)."""
    return max(SEND_BUFFER_MIN, min(SOCKET_BUFFER, int(rate_bps / 8 * SEND_BUFFER_SECONDS)))


def bind_control_port(sock: socket.socket, ip: str, index: int, port: int | None) -> None:
    """Bind ``sock`` to ``port`` on ``ip`` (of interface ``index``), or (None) to the first
    free one of CONTROL_PORTS."""
    if port is not None:
        try:
            sock.bind(_sockaddr(ip, port, index))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise NetworkError(f"udp port {port} on {ip} is taken (another session?): pick "
                               "another --control-port, or leave it out to take a free one."
                               ) from None
        return
    for candidate in CONTROL_PORTS:
        try:
            sock.bind(_sockaddr(ip, candidate, index))
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise NetworkError(f"every control port {CONTROL_PORTS.start}-{CONTROL_PORTS.stop - 1} on "
                       f"{ip} is taken: {len(CONTROL_PORTS)} sessions run here already; stop "
                       "one, or pass --control-port.")


def open_sender(ifname: str, ttl: int, rate_bps: float, *, gso: bool | None = None,
                control_port: int | None = None, family: int = socket.AF_INET
                ) -> UdpEndpoint:
    """The sender's one socket: sends to the multicast groups out of ``ifname`` and receives
    the receivers' unicast control messages on its own address, at ``control_port`` (None: the
    first free one of CONTROL_PORTS). ``rate_bps``: the session's ceiling, which sizes what it
    may have queued at its interface (``send_buffer_for``)."""
    ip, index = interface_address(ifname, family)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        bind_control_port(sock, ip, index, control_port)
        # Looped back to this machine's own members only (the kernel copies nothing where
        # there are none): another session run here hears our announcements, and a laptop
        # program run here for a test receives.
        loop = 1
        # Never fragment: a datagram too big for the link is refused here (EMSGSIZE), not cut
        # into fragments that one lost piece makes worthless on every laptop.
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, loop)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_DO)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            _ip_mreqn("0.0.0.0", index))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, loop)
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        _raise_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, send_buffer_for(rate_bps))
        _raise_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, 1 << 20)
    except OSError as exc:
        sock.close()
        raise NetworkError(f"cannot open the sending socket on {ifname}: {exc.strerror}.") from exc
    except NetworkError:
        sock.close()
        raise
    return UdpEndpoint(sock, gso=gso_supported() if gso is None else gso)


def open_group_listener(
    group: Addr, ifname: str, *, gro: bool | None = None, buffer: int = SOCKET_BUFFER
) -> UdpEndpoint:
    """A socket that receives ``group`` on ``ifname`` only (several receivers on one host may
    share the port)."""
    ipv6 = is_ipv6(group[0])
    try:
        index = socket.if_nametoindex(ifname)
    except OSError:
        raise NetworkError(
            f"there is no network interface called {ifname!r}: pick one from `ip link`."
        ) from None
    if not ipv6:
        interface_address(ifname)  # says in one sentence if it has no IPv4 address
    membership = _ipv6_mreq(group[0], index) if ipv6 else _ip_mreqn(group[0], index)
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Bound to the group address: no other group's traffic gets in (IPv6: and to the
        # interface, which a link-scope group needs).
        sock.bind(_sockaddr(group[0], group[1], index))
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        _raise_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, buffer)
    except OSError as exc:
        sock.close()
        raise NetworkError(
            f"cannot join multicast group {group[0]}:{group[1]} on {ifname}: {exc.strerror}."
        ) from exc
    endpoint = UdpEndpoint(sock, gro=gro_supported() if gro is None else gro)
    endpoint.membership = membership
    return endpoint


def open_unicast(ifname: str, family: int = socket.AF_INET) -> UdpEndpoint:
    """The receiver's control socket: JOIN/STATUS/DONE out, ACCEPT/DONE_ACK in."""
    ip, index = interface_address(ifname, family)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(_sockaddr(ip, 0, index))
    except OSError as exc:
        sock.close()
        raise NetworkError(f"cannot open a socket on {ifname}: {exc.strerror}.") from exc
    return UdpEndpoint(sock)
