"""The querier check's packet parsing, IGMP and MLD (the socket part runs in
tests/lab/test_doctor_lab.py and tests/lab/test_doctor_ipv6_lab.py)."""

from __future__ import annotations

import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from driver.igmp import membership_query_source
from driver.mld import mld_query_source


def ip_packet(protocol: int, payload: bytes, source: str = "10.0.0.254", ihl: int = 5) -> bytes:
    options = bytes(4 * (ihl - 5))
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 0,
                         0, 1, protocol, 0, socket.inet_aton(source),
                         socket.inet_aton("224.0.0.1"))
    return header + options + payload


QUERY = bytes([0x11, 100, 0, 0]) + socket.inet_aton("239.255.77.251")


def test_a_membership_query_gives_its_source() -> None:
    assert membership_query_source(ip_packet(2, QUERY)) == "10.0.0.254"
    # Router alert: an IP option, as IGMP queries carry.
    assert membership_query_source(ip_packet(2, QUERY, "0.0.0.0", ihl=6)) == "0.0.0.0"


def test_reports_leaves_and_other_packets_are_not_queries() -> None:
    for igmp_type in (0x16, 0x17, 0x22):
        assert membership_query_source(ip_packet(2, bytes([igmp_type]) + QUERY[1:])) is None
    assert membership_query_source(ip_packet(17, QUERY)) is None  # UDP
    assert membership_query_source(ip_packet(2, QUERY)[:24]) is None  # cut short
    assert membership_query_source(b"") is None
    assert membership_query_source(b"\x60" + bytes(40)) is None  # IPv6


def ipv6_packet(next_header: int, payload: bytes, source: str = "fe80::1") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 1,
                       socket.inet_pton(socket.AF_INET6, source),
                       socket.inet_pton(socket.AF_INET6, "ff02::1")) + payload


# A hop-by-hop header with the router alert (as every MLD message has), then ICMPv6.
HOP_BY_HOP = bytes([58, 0, 5, 2, 0, 0, 1, 0])
MLD_QUERY = bytes([130, 0, 0, 0, 0x27, 0x10, 0, 0]) + bytes(16)  # v1: 24 bytes


def test_an_mld_query_gives_its_source() -> None:
    assert mld_query_source(ipv6_packet(0, HOP_BY_HOP + MLD_QUERY)) == "fe80::1"
    assert mld_query_source(ipv6_packet(0, HOP_BY_HOP + MLD_QUERY + bytes(4), "::")) == "::"
    assert mld_query_source(ipv6_packet(58, MLD_QUERY)) == "fe80::1"  # no extension header


def test_mld_reports_and_other_packets_are_not_queries() -> None:
    for icmp_type in (131, 132, 143, 135):  # v1 report, done, v2 report, neighbour solicit
        packet = ipv6_packet(0, HOP_BY_HOP + bytes([icmp_type]) + MLD_QUERY[1:])
        assert mld_query_source(packet) is None
    assert mld_query_source(ipv6_packet(0, HOP_BY_HOP + MLD_QUERY)[:60]) is None  # cut short
    assert mld_query_source(ipv6_packet(0, HOP_BY_HOP[:4])) is None
    assert mld_query_source(ipv6_packet(17, MLD_QUERY)) is None  # UDP
    assert mld_query_source(ip_packet(2, QUERY)) is None  # IPv4
    assert mld_query_source(b"") is None


@given(st.binary(max_size=200))
def test_no_bytes_make_the_mld_parser_raise(data: bytes) -> None:
    mld_query_source(data)
    mld_query_source(ipv6_packet(0, data))
