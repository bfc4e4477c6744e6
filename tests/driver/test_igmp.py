"""The querier check's packet parsing (the socket part runs in tests/lab/test_doctor_lab.py)."""

from __future__ import annotations

import socket
import struct

from driver.igmp import membership_query_source


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
