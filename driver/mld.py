"""MLD, IGMP's IPv6 twin, for the querier check (driver/igmp.py): which packets are MLD
queries (ICMPv6 type 130), and a packet socket filtered to them, for the same reason as the
IGMP one: a query sent to a group this host has just left never reaches a raw ICMPv6 socket.
MLD packets carry a hop-by-hop header (the router alert) before the ICMPv6 one."""

from __future__ import annotations

import ipaddress

ETH_P_IPV6 = 0x86DD
MLD_QUERY = 130
IPPROTO_ICMPV6 = 58
_EXTENSION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options
_MAX_EXTENSIONS = 4  # a query has one; more is not a query

# Classic BPF over the IPv6 header: keep what starts with a hop-by-hop header (every MLD
# message) or is ICMPv6, drop the rest (a session's data at full rate costs nothing).
FILTER = [
    (0x30, 0, 0, 6),  # ldb [6]: the next header
    (0x15, 1, 0, 0),  # jeq #0 (hop-by-hop): keep
    (0x15, 0, 1, IPPROTO_ICMPV6),  # jeq #58: keep, else drop
    (0x06, 0, 0, 0xFFFF),  # ret: keep
    (0x06, 0, 0, 0),  # ret: drop
]


def mld_query_source(packet: bytes) -> str | None:
    """The source address of an IPv6 MLD query (v1 or v2), else None."""
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    next_header, offset = packet[6], 40
    for _ in range(_MAX_EXTENSIONS):
        if next_header not in _EXTENSION_HEADERS:
            break
        if len(packet) < offset + 8:
            return None
        next_header, offset = packet[offset], offset + 8 * (packet[offset + 1] + 1)
    if next_header != IPPROTO_ICMPV6 or len(packet) < offset + 24 or packet[offset] != MLD_QUERY:
        return None
    return str(ipaddress.IPv6Address(packet[8:24]))
