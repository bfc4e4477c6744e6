"""The doctor's probe messages: round trips, bounded bursts, and garbage never raises anything
but BadPacket (nor reaches a session's decoder as one of its own)."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.doctor import (
    MAX_BURST_COUNT,
    MAX_BURST_SECONDS,
    PROBE_HEADER_SIZE,
    BurstDone,
    BurstPlan,
    BurstRequest,
    Here,
    Ping,
    Pong,
    Probe,
    Result,
    burst_count,
    datagram_size,
    decode_doctor_untrusted,
    decode_probe_untrusted,
    plan_burst,
    probe_addresses,
    probe_datagram,
)
from protocol.errors import BadPacket
from protocol.wire import (
    MAGIC,
    PREFIX,
    PROTOCOL_VERSION,
    Announce,
    PacketType,
    decode_control_untrusted,
)

MESSAGES = [
    Here(7, "10.77.0.1", 9772, 9000, "239.255.77.250", 9769, [10_000_000, 500_000_000]),
    Ping(1, 2, 3.5),
    Pong(1, 2, 3.5),
    BurstRequest(1, 3, 100_000_000, 1472, 4063, 1500),
    BurstDone(1, 3, 4063, 0.49, ""),
    Result(1, [["mtu", "ok", "ok: fine"], ["querier", "problem", "no IGMP querier ..."]]),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(msg: object) -> None:
    assert decode_doctor_untrusted(msg.encode()) == msg  # type: ignore[attr-defined]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_sessions_decoder_drops_doctor_messages_as_foreign(msg: object) -> None:
    with pytest.raises(BadPacket):
        decode_control_untrusted(msg.encode())  # type: ignore[attr-defined]


def test_a_sessions_datagram_is_not_a_doctor_message() -> None:
    announce = Announce(1, "a", 10, bytes(32), 4096, 1448, "239.255.77.2", 9771, "10.0.0.1",
                        9772, 0.0)
    with pytest.raises(BadPacket, match="not a doctor message"):
        decode_doctor_untrusted(announce.encode())


def _with_body(ptype: PacketType, body: object) -> bytes:
    return PREFIX.pack(MAGIC, PROTOCOL_VERSION, ptype) + msgpack.packb(body)


@pytest.mark.parametrize("body", [
    {"laptop_id": 1, "seq": 2},  # lacks sent
    {"laptop_id": -1, "seq": 2, "sent": 1.0},
    {"laptop_id": True, "seq": 2, "sent": 1.0},
    {"laptop_id": 1, "seq": "2", "sent": 1.0},
    [1, 2, 3],
])
def test_a_bad_ping_is_refused(body: object) -> None:
    with pytest.raises(BadPacket):
        decode_doctor_untrusted(_with_body(PacketType.DOCTOR_PING, body))


def test_results_must_be_few_short_printable_lines() -> None:
    def result(findings: object) -> bytes:
        return _with_body(PacketType.DOCTOR_RESULT, {"laptop_id": 1, "findings": findings})

    for bad in ([["a", "ok", "\x1b[2Jcleared"]], [["a", "ok"]], [["a", "ok", "x" * 401]],
                [["a", "ok", "x"]] * 33):
        with pytest.raises(BadPacket):
            decode_doctor_untrusted(result(bad))


def test_rates_are_bounded() -> None:
    for rates in ([], [0], [10**11], [1] * 9):
        body = {"responder_id": 1, "control_host": "h", "control_port": 1, "mtu": 1500,
                "probe_group": "g", "probe_port": 2, "rates": rates}
        with pytest.raises(BadPacket):
            decode_doctor_untrusted(_with_body(PacketType.DOCTOR_HERE, body))


@settings(max_examples=1000)
@given(st.binary(max_size=200))
def test_garbage_raises_only_bad_packet(data: bytes) -> None:
    for decode in (decode_doctor_untrusted, decode_probe_untrusted):
        with contextlib.suppress(BadPacket):
            decode(data)


@settings(max_examples=500)
@given(st.sampled_from(MESSAGES), st.integers(0, 400), st.integers(0, 255))
def test_a_mutated_message_raises_only_bad_packet(msg: object, at: int, byte: int) -> None:
    data = bytearray(msg.encode())  # type: ignore[attr-defined]
    data[at % len(data)] = byte
    with contextlib.suppress(BadPacket):
        decode_doctor_untrusted(bytes(data))


def test_a_probe_carries_its_laptop_burst_and_index_padded_to_its_size() -> None:
    data = probe_datagram(2**63, 3, 17, 1472)
    assert len(data) == 1472
    assert decode_probe_untrusted(data) == Probe(2**63, 3, 17)
    assert len(probe_datagram(1, 1, 1, 5)) == PROBE_HEADER_SIZE  # never shorter than its header
    with pytest.raises(BadPacket):
        decode_probe_untrusted(data[:PROBE_HEADER_SIZE - 1])
    with pytest.raises(BadPacket):
        decode_probe_untrusted(Ping(1, 2, 3.0).encode() + bytes(20))


def test_datagram_sizes_follow_the_mtu_up_to_a_jumbo_frame() -> None:
    assert datagram_size(1500) == 1472
    assert datagram_size(9000) == 8972
    assert datagram_size(65535) == 8972


def test_ipv6_datagrams_carry_20_bytes_less_and_pace_by_their_longer_headers() -> None:
    assert datagram_size(1500, ipv6=True) == 1452
    assert datagram_size(65535, ipv6=True) == 8952
    # 1452 + 48 + 38 = 1538 bytes on the wire, as an IPv4 frame of 1472.
    assert burst_count(10_000_000, 1452, ipv6=True) == burst_count(10_000_000, 1472) == 406
    plan = plan_burst(BurstRequest(1, 2, 10_000_000, 1452, 10**9, 1500), 10**8, ipv6=True)
    assert isinstance(plan, BurstPlan) and plan.count == 406
    assert plan.interval == BurstPlan(1, 2, 10_000_000, 1472, 406).interval
    # The largest IPv4 probe does not fit an IPv6 jumbo frame.
    assert isinstance(plan_burst(BurstRequest(1, 2, 10**7, 8972, 5, 9000), 10**8, True), str)


def test_each_family_probes_groups_of_its_own() -> None:
    assert probe_addresses(False) == (("239.255.77.250", 9769), "239.255.77.251")
    (probe6, port), querier6 = probe_addresses(True)
    assert probe6.startswith("ff12::") and querier6.startswith("ff12::") and port == 9769


def test_a_burst_holds_half_a_second_of_its_rate_within_the_count_limit() -> None:
    # 1472 bytes + 28 IP/UDP + 38 Ethernet = 1538 bytes on the wire.
    assert burst_count(10_000_000, 1472) == int(10e6 * 0.5 / (8 * 1538)) == 406
    assert burst_count(500_000_000, 1472) == MAX_BURST_COUNT
    assert burst_count(1, 1472) == 1


def test_a_plan_is_bounded_whatever_is_asked() -> None:
    plan = plan_burst(BurstRequest(1, 2, 100_000_000, 1472, 10**9, 1500), 500_000_000)
    assert isinstance(plan, BurstPlan)
    assert plan.count == burst_count(100_000_000, 1472)
    assert plan.count * plan.interval <= MAX_BURST_SECONDS
    assert plan_burst(BurstRequest(1, 2, 10_000_000, 1472, 5, 1500), 10**8) == BurstPlan(
        1, 2, 10_000_000, 1472, 5)
    # Too small, too big, no rate, above what the responder announced, none at all.
    for size, rate, count in ((10, 10**7, 5), (9000, 10**7, 5), (1472, 0, 5),
                              (1472, 10**9, 5), (1472, 10**7, 0)):
        assert isinstance(plan_burst(BurstRequest(1, 2, rate, size, count, 1500), 10**8), str)
