"""Is there an IGMP querier on the LAN? Hosts cannot ask for a general query, but a querier
answers a leave with a group-specific query within about a second: join a probe group, leave
it, and listen for any membership query (type 0x11) for a bounded time. Needs root.

The listening socket is a packet socket filtered to IGMP, not ``socket(AF_INET, SOCK_RAW,
IPPROTO_IGMP)``: a router sends its group-specific query to the group itself, and the kernel
drops a datagram for a group this host has just left before any AF_INET raw socket sees it
(a Linux bridge's querier sends it to 224.0.0.1, which both see). On IPv6 the same is done
with MLD (driver/mld.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Callable

import trio

from .family import is_ipv6
from .mld import ETH_P_IPV6, mld_query_source
from .mld import FILTER as MLD_FILTER
from .udp import NetworkError

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
IGMP_MEMBERSHIP_QUERY = 0x11
IPPROTO_IGMP = 2
JOIN_SETTLE = 0.3  # the switch must have the join before the leave means anything to it

# Classic BPF over the IP header (a SOCK_DGRAM packet socket starts there): keep IGMP only, so
# a busy link (a session at 900 Mbit/s) costs the check nothing.
_FILTER = [
    (0x30, 0, 0, 9),  # ldb [9]: the protocol
    (0x15, 0, 1, IPPROTO_IGMP),  # jeq #2
    (0x06, 0, 0, 0xFFFF),  # ret: keep
    (0x06, 0, 0, 0),  # ret: drop
]


def membership_query_source(packet: bytes) -> str | None:
    """The source address of an IPv4 IGMP membership query, else None."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != IPPROTO_IGMP:
        return None
    header = (packet[0] & 0x0F) * 4
    if len(packet) < header + 8 or packet[header] != IGMP_MEMBERSHIP_QUERY:
        return None
    return socket.inet_ntoa(packet[12:16])


def _attach_filter(sock: socket.socket, insns: list[tuple[int, int, int, int]]) -> None:
    program = b"".join(struct.pack("=HBBI", *insn) for insn in insns)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HP", len(insns), ctypes.addressof(buffer))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_igmp_listener(ifname: str, ipv6: bool = False) -> socket.socket:
    """A packet socket on ``ifname`` that sees IGMP (``ipv6``: MLD) packets, sent or heard."""
    name, ethertype, insns = ("MLD", ETH_P_IPV6, MLD_FILTER) if ipv6 else ("IGMP", ETH_P_IP,
                                                                            _FILTER)
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ethertype))
    except PermissionError:
        raise NetworkError(f"listening for {name} queries needs root (a raw socket)") from None
    try:
        _attach_filter(sock, insns)
        sock.bind((ifname, ethertype))
    except OSError as exc:
        sock.close()
        raise NetworkError(f"cannot listen for {name} on {ifname}: {exc.strerror}") from exc
    sock.setblocking(False)
    # What arrived before the filter was attached may be anything: start clean.
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(1)
    return sock


async def find_querier(ifname: str, probe_group: str, seconds: float) -> str | None:
    """The address of a querier heard within ``seconds`` of leaving ``probe_group`` on
    ``ifname``, else None. An IPv6 group: an MLD querier."""
    index = socket.if_nametoindex(ifname)
    ipv6 = is_ipv6(probe_group)
    if ipv6:
        family, level, join, leave = (socket.AF_INET6, socket.IPPROTO_IPV6,
                                      socket.IPV6_JOIN_GROUP, socket.IPV6_LEAVE_GROUP)
        mreq = socket.inet_pton(socket.AF_INET6, probe_group) + struct.pack("=I", index)
    else:
        family, level, join, leave = (socket.AF_INET, socket.IPPROTO_IP,
                                      socket.IP_ADD_MEMBERSHIP, socket.IP_DROP_MEMBERSHIP)
        mreq = socket.inet_aton(probe_group) + socket.inet_aton("0.0.0.0") + struct.pack(
            "=i", index)
    listener = open_igmp_listener(ifname, ipv6)
    member = socket.socket(family, socket.SOCK_DGRAM)
    source = mld_query_source if ipv6 else membership_query_source
    try:
        member.setsockopt(level, join, mreq)
        heard = await _query_within(listener, JOIN_SETTLE, source)  # a general one counts too
        member.setsockopt(level, leave, mreq)
        return heard or await _query_within(listener, seconds, source)
    except OSError as exc:
        raise NetworkError(f"cannot join {probe_group} on {ifname}: {exc.strerror}") from exc
    finally:
        member.close()
        listener.close()


async def _query_within(sock: socket.socket, seconds: float,
                        query_source: Callable[[bytes], str | None]) -> str | None:
    with trio.move_on_after(seconds):
        while True:
            await trio.lowlevel.wait_readable(sock)
            while True:
                try:
                    packet, address = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                if address[2] == PACKET_OUTGOING:
                    continue
                source = query_source(packet)
                if source is not None:
                    return source
    return None
