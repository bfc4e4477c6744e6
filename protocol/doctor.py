"""The doctor's probe messages (`mcastd doctor` ↔ `mcast-receive --doctor`), pure.

They share the 4-byte prefix of every mcastd datagram (protocol/wire.py) and PacketType values
of their own, so a session's decoder drops them as foreign and a doctor's drops a session's
datagrams. Control messages are msgpack maps; a probe datagram is a fixed binary header padded
to the size being probed::

    responder → discovery group   HERE        who answers probes, where, its MTU, the rates
    laptop → responder (unicast)  PING        answered by PONG: the round-trip time
    laptop → responder (unicast)  BURST       asks for COUNT probe datagrams of SIZE at RATE
    responder → probe group       PROBE       the burst itself
    responder → laptop (unicast)  BURST_DONE  how many it sent, in what time
    laptop → responder (unicast)  RESULT      the laptop's findings, for the admin's screen

The decoders of network bytes (``decode_*_untrusted``) raise nothing but BadPacket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import msgpack

from .errors import BadPacket
from .wire import JUMBO_MTU, MAGIC, PREFIX, PROTOCOL_VERSION, PacketType, ip_udp_headers

# Probe bursts go to a group of their own, on a port outside the control range (a firewall
# that drops the control ports then still lets the probe through: the doctor can tell them
# apart). The querier check joins and leaves another group, which no session uses.
PROBE_ADDR = ("239.255.77.250", 9769)
QUERIER_PROBE_GROUP = "239.255.77.251"
# Their IPv6 twins, link scope, beside the discovery group and below the data groups.
PROBE_ADDR6 = ("ff12::6d63:fa", 9769)
QUERIER_PROBE_GROUP6 = "ff12::6d63:fb"
DEFAULT_RATES = (10_000_000, 100_000_000, 500_000_000)
# Every burst is bounded in time and count, whatever a request asks.
MAX_BURST_SECONDS = 0.5
MAX_BURST_COUNT = 20_000
MAX_RATE_BPS = 10_000_000_000
ETHERNET_OVERHEAD = 38  # preamble 8, header 14, FCS 4, inter-frame gap 12
MAX_RATES = 8
MAX_RESULT_LINES = 32
MAX_TEXT = 400

PROBE_HEADER = struct.Struct("<2sBBQII")  # prefix, laptop id, burst, index
PROBE_HEADER_SIZE = PROBE_HEADER.size  # 20
_MAX_MESSAGE = 16384


@dataclass(frozen=True, slots=True)
class DoctorMessage:
    TYPE: ClassVar[PacketType]

    def encode(self) -> bytes:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        return PREFIX.pack(MAGIC, PROTOCOL_VERSION, self.TYPE) + msgpack.packb(body)


@dataclass(frozen=True, slots=True)
class Here(DoctorMessage):
    """Responder → discovery group, twice a second: where laptops send PING/BURST."""

    TYPE: ClassVar[PacketType] = PacketType.DOCTOR_HERE
    responder_id: int
    control_host: str
    control_port: int
    mtu: int  # the responder's interface MTU
    probe_group: str
    probe_port: int
    rates: list[int]  # bits/s the laptops should probe at, lowest first


@dataclass(frozen=True, slots=True)
class Ping(DoctorMessage):
    TYPE: ClassVar[PacketType] = PacketType.DOCTOR_PING
    laptop_id: int
    seq: int
    sent: float  # the laptop's clock, echoed back


@dataclass(frozen=True, slots=True)
class Pong(DoctorMessage):
    TYPE: ClassVar[PacketType] = PacketType.DOCTOR_PONG
    laptop_id: int
    seq: int
    sent: float


@dataclass(frozen=True, slots=True)
class BurstRequest(DoctorMessage):
    """Laptop → responder: send ``count`` PROBE datagrams of ``size`` bytes (UDP payload) at
    ``rate_bps`` to the probe group. ``mtu``: the laptop's interface MTU, for the admin."""

    TYPE: ClassVar[PacketType] = PacketType.DOCTOR_BURST
    laptop_id: int
    burst: int
    rate_bps: int
    size: int
    count: int
    mtu: int


@dataclass(frozen=True, slots=True)
class BurstDone(DoctorMessage):
    """Responder → laptop: burst ``burst`` is out, ``sent`` datagrams in ``seconds``;
    ``error``: why it sent fewer (e.g. its link refused the size), else empty."""

    TYPE: ClassVar[PacketType] = PacketType.DOCTOR_BURST_DONE
    laptop_id: int
    burst: int
    sent: int
    seconds: float
    error: str


@dataclass(frozen=True, slots=True)
class Result(DoctorMessage):
    """Laptop → responder: its findings as [check, status, text] triples, to be shown."""

    TYPE: ClassVar[PacketType] = PacketType.DOCTOR_RESULT
    laptop_id: int
    findings: list[list[str]]


MESSAGE_TYPES: dict[int, type[DoctorMessage]] = {
    cls.TYPE: cls for cls in (Here, Ping, Pong, BurstRequest, BurstDone, Result)}
DOCTOR_PACKET_TYPES = frozenset({*MESSAGE_TYPES, PacketType.DOCTOR_PROBE})


def _text_ok(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT and value.isprintable()


def _valid(name: str, value: object, expected: object) -> bool:
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64
    if expected == "float":
        return isinstance(value, float | int) and not isinstance(value, bool)
    if expected == "str":
        return _text_ok(value)
    if name == "rates":
        return isinstance(value, list) and 0 < len(value) <= MAX_RATES and all(
            isinstance(r, int) and not isinstance(r, bool) and 0 < r <= MAX_RATE_BPS
            for r in value)
    if name == "findings":
        return isinstance(value, list) and len(value) <= MAX_RESULT_LINES and all(
            isinstance(item, list) and len(item) == 3 and all(_text_ok(t) for t in item)
            for item in value)
    return False


def decode_doctor_untrusted(data: bytes | memoryview) -> DoctorMessage:
    """Parse a doctor control datagram (not a PROBE). Raises only BadPacket."""
    if len(data) < PREFIX.size or len(data) > _MAX_MESSAGE:
        raise BadPacket("not a doctor message (size)")
    magic, version, ptype = PREFIX.unpack_from(data)
    if magic != MAGIC or version != PROTOCOL_VERSION:
        raise BadPacket("foreign datagram")
    cls = MESSAGE_TYPES.get(ptype)
    if cls is None:
        raise BadPacket(f"not a doctor message (type {ptype})")
    try:
        body = msgpack.unpackb(memoryview(data)[PREFIX.size:], raw=False, strict_map_key=True,
                               max_str_len=MAX_TEXT * 4, max_bin_len=0,
                               max_array_len=MAX_RESULT_LINES * 3, max_map_len=16)
    except Exception as exc:  # msgpack raises many types on garbage
        raise BadPacket(f"undecodable doctor message: {exc.__class__.__name__}") from None
    if not isinstance(body, dict):
        raise BadPacket("doctor message is not a map")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in body:
            raise BadPacket(f"{cls.__name__} lacks {f.name}")
        value = body[f.name]
        if not _valid(f.name, value, f.type):
            raise BadPacket(f"bad field {f.name!r} in {cls.__name__}")
        kwargs[f.name] = float(value) if f.type == "float" else value
    return cls(**kwargs)


# --- probe datagrams ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    laptop_id: int
    burst: int
    index: int


def probe_datagram(laptop_id: int, burst: int, index: int, size: int) -> bytes:
    """PROBE datagram ``index`` of a burst, zero-padded to ``size`` bytes."""
    header = PROBE_HEADER.pack(MAGIC, PROTOCOL_VERSION, PacketType.DOCTOR_PROBE, laptop_id,
                               burst, index)
    return header + bytes(max(0, size - PROBE_HEADER_SIZE))


def decode_probe_untrusted(data: bytes | memoryview) -> Probe:
    if len(data) < PROBE_HEADER_SIZE:
        raise BadPacket("short probe datagram")
    magic, version, ptype, laptop_id, burst, index = PROBE_HEADER.unpack_from(data)
    if magic != MAGIC or version != PROTOCOL_VERSION or ptype != PacketType.DOCTOR_PROBE:
        raise BadPacket("not a probe datagram")
    return Probe(laptop_id, burst, index)


# --- bursts ------------------------------------------------------------------------------


def probe_addresses(ipv6: bool) -> tuple[tuple[str, int], str]:
    """(the probe group, the querier check's group) of a family."""
    return (PROBE_ADDR6, QUERIER_PROBE_GROUP6) if ipv6 else (PROBE_ADDR, QUERIER_PROBE_GROUP)


def datagram_size(mtu: int, ipv6: bool = False) -> int:
    """The largest probe (UDP payload) one IP packet of ``mtu`` bytes carries."""
    return min(mtu, JUMBO_MTU) - ip_udp_headers(ipv6)


def burst_count(rate_bps: int, size: int, seconds: float = MAX_BURST_SECONDS,
                ipv6: bool = False) -> int:
    """How many datagrams of ``size`` a burst of ``seconds`` at ``rate_bps`` holds (on the
    wire, Ethernet frames counted), within MAX_BURST_COUNT."""
    wire_bits = 8 * (size + ip_udp_headers(ipv6) + ETHERNET_OVERHEAD)
    return max(1, min(MAX_BURST_COUNT, int(rate_bps * seconds / wire_bits)))


@dataclass(frozen=True, slots=True)
class BurstPlan:
    laptop_id: int
    burst: int
    rate_bps: int
    size: int
    count: int
    ipv6: bool = False

    @property
    def interval(self) -> float:
        """Seconds between two datagrams at the plan's rate."""
        return 8 * (self.size + ip_udp_headers(self.ipv6) + ETHERNET_OVERHEAD) / self.rate_bps


def plan_burst(request: BurstRequest, max_rate_bps: int, ipv6: bool = False
               ) -> BurstPlan | str:
    """What the responder sends for ``request``: bounded in count, time and size; or why not
    (one sentence). ``max_rate_bps``: the highest rate the responder announced; no laptop
    makes it send faster. A size above the responder's own link is not refused here: its
    kernel refuses it (EMSGSIZE), and BURST_DONE says so. ``ipv6``: the probe group's family
    (its headers are 20 bytes longer)."""
    largest = datagram_size(JUMBO_MTU, ipv6)
    if not PROBE_HEADER_SIZE <= request.size <= largest:
        return f"a probe of {request.size} bytes is outside {PROBE_HEADER_SIZE}-{largest}"
    if not 0 < request.rate_bps <= min(max_rate_bps, MAX_RATE_BPS):
        return f"a rate of {request.rate_bps} bit/s is above the {max_rate_bps} announced"
    count = min(request.count, burst_count(request.rate_bps, request.size, ipv6=ipv6))
    if count <= 0:
        return "a burst of no datagrams"
    return BurstPlan(request.laptop_id, request.burst, request.rate_bps, request.size, count,
                     ipv6)
