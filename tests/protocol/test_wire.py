"""Wire format: round trips, and garbage never raises anything but BadPacket."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.doctor import DOCTOR_PACKET_TYPES
from protocol.errors import BadPacket
from protocol.wire import (
    CONTROL_TYPES,
    DATA_HEADER_SIZE,
    DEFAULT_SYMBOL_SIZE,
    FLAG_AUTHENTICATED,
    FLAG_REPAIR,
    HOST_MAX_CHARS,
    HOST_MAX_ENTRIES,
    MAGIC,
    PREFIX,
    PROTOCOL_VERSION,
    Accept,
    Announce,
    Done,
    DoneAck,
    Join,
    PacketType,
    Status,
    Sync,
    data_header,
    decode_control_as_untrusted,
    decode_control_untrusted,
    decode_data_untrusted,
    session_tag,
)

u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
times = st.floats(0, 1e9, allow_nan=False)
text = st.text(max_size=40)
# What a laptop may say of itself: printable (a space is, other separators and controls not).
printable = st.text(st.characters(exclude_categories=("C", "Z")) | st.just(" "),
                    max_size=HOST_MAX_CHARS)
hosts = st.dictionaries(printable, printable, max_size=HOST_MAX_ENTRIES)


def test_default_symbol_fits_a_1500_byte_mtu() -> None:
    assert DATA_HEADER_SIZE == 24
    assert 20 + 8 + DATA_HEADER_SIZE + DEFAULT_SYMBOL_SIZE == 1500
    assert DEFAULT_SYMBOL_SIZE / 1500 >= 0.965  # the floor: 96 % image per packet


@given(st.sampled_from([0, FLAG_REPAIR, FLAG_AUTHENTICATED, FLAG_REPAIR | FLAG_AUTHENTICATED]),
       st.integers(0, 2), u64, u32, u16, st.integers(0, 255), u32, u32, st.binary(max_size=64))
def test_data_header_round_trip(
    flags: int, kind: int, sid: int, block: int, group: int, esi: int, length: int, seq: int,
    symbol: bytes,
) -> None:
    datagram = data_header(flags, kind, sid, block, group, esi, length, seq) + symbol
    header, payload = decode_data_untrusted(datagram)
    assert (header.flags, header.kind, header.block) == (flags, kind, block)
    assert header.session_tag == session_tag(sid) == sid & 0xFFFFFFFF
    assert (header.group, header.esi, header.encoded_length, header.seq) == (
        group, esi, length, seq,
    )
    assert bytes(payload) == symbol


def test_repair_flag_is_its_own_bit() -> None:
    header = data_header(FLAG_REPAIR, 1, 7, 1, 2, 3, 4, 5)
    assert len(header) == DATA_HEADER_SIZE
    assert decode_data_untrusted(header)[0].flags & FLAG_REPAIR


announces = st.builds(
    Announce, u64, text, u64, st.binary(min_size=32, max_size=32), st.integers(1, 2**30),
    st.integers(1, 9000), text, u16, text, u16, times, st.booleans(),
)
syncs = st.builds(Sync, u64, times, times, u32, st.integers(-1, 2**32), times)
joins = st.builds(Join, u64, u64, times, times, host=hosts)
accepts = st.builds(Accept, u64, u64)
statuses = st.builds(
    Status, u64, u64, times, times, st.integers(-1, 2**32), u32,
    st.lists(st.tuples(u32, st.lists(st.integers(0, 256), max_size=20)), max_size=30),
    st.lists(st.tuples(u32, u32), max_size=30), u32, u32,
)
dones = st.builds(Done, u64, u64, st.booleans(), st.binary(max_size=32), text, host=hosts)
acks = st.builds(DoneAck, u64, u64)
controls = st.one_of(announces, syncs, joins, accepts, statuses, dones, acks)


@given(controls)
def test_control_round_trip(msg: object) -> None:
    encoded = msg.encode()  # type: ignore[attr-defined]
    assert decode_control_untrusted(encoded) == msg


@given(controls)
def test_unknown_fields_are_ignored(msg: object) -> None:
    encoded = msg.encode()  # type: ignore[attr-defined]
    body = msgpack.unpackb(encoded[PREFIX.size :])
    body["future_field"] = [1, 2, {"x": 3}]
    extended = encoded[: PREFIX.size] + msgpack.packb(body)
    assert decode_control_untrusted(extended) == msg


def test_missing_required_field_is_bad_packet() -> None:
    encoded = Accept(1, 2).encode()
    body = msgpack.unpackb(encoded[PREFIX.size :])
    del body["receiver_id"]
    with pytest.raises(BadPacket):
        decode_control_untrusted(encoded[: PREFIX.size] + msgpack.packb(body))


def test_wrong_field_type_is_bad_packet() -> None:
    encoded = Join(1, 2, 0.5, 0.1).encode()
    body = msgpack.unpackb(encoded[PREFIX.size :])
    body["receiver_id"] = "two"
    with pytest.raises(BadPacket):
        decode_control_untrusted(encoded[: PREFIX.size] + msgpack.packb(body))


def test_an_empty_host_leaves_the_join_as_it_was() -> None:
    """A field at its default stays off the wire: the simulator's traces do not change."""
    body = {"session_id": 1, "receiver_id": 2}
    assert Join(1, 2).encode() == PREFIX.pack(MAGIC, PROTOCOL_VERSION, PacketType.JOIN) + \
        msgpack.packb(body)
    host = {"mac": "52:54:00:12:34:56", "disk_model": "QEMU NVMe Ctrl"}
    assert decode_control_untrusted(Join(1, 2, host=host).encode()) == Join(1, 2, host=host)


def with_host(host: object) -> bytes:
    body = {"session_id": 1, "receiver_id": 2, "host": host}
    return PREFIX.pack(MAGIC, PROTOCOL_VERSION, PacketType.JOIN) + msgpack.packb(body)


@pytest.mark.parametrize("host", [
    [], "52:54:00:12:34:56", {"mac": 5}, {b"mac": "x"}, {"mac": b"x"}, {"mac": None},
    {f"k{i}": "v" for i in range(HOST_MAX_ENTRIES + 1)},
    {"k" * (HOST_MAX_CHARS + 1): "v"}, {"mac": "v" * (HOST_MAX_CHARS + 1)},
    {"mac": "\x1b[2J"}, {"mac": "a\nb"},  # bound for the admin's terminal
], ids=repr)
def test_a_host_that_is_not_a_few_short_printable_strings_is_bad_packet(host: object) -> None:
    with pytest.raises(BadPacket):
        decode_control_untrusted(with_host(host))


def test_the_largest_host_is_taken() -> None:
    host = {f"{i}".ljust(HOST_MAX_CHARS, "k"): "v" * HOST_MAX_CHARS
            for i in range(HOST_MAX_ENTRIES)}
    msg = decode_control_untrusted(with_host(host))
    assert isinstance(msg, Join) and msg.host == host


def test_decode_as_checks_the_type() -> None:
    with pytest.raises(BadPacket):
        decode_control_as_untrusted(Accept(1, 2).encode(), Join)
    assert decode_control_as_untrusted(Accept(1, 2).encode(), Accept) == Accept(1, 2)


def test_every_control_type_is_registered() -> None:
    # DATA has its fixed header; SEALED wraps any other (protocol/seal.py); the doctor's
    # probes are no session's (protocol/doctor.py).
    assert set(CONTROL_TYPES) == (set(PacketType) - {PacketType.DATA, PacketType.SEALED}
                                  - DOCTOR_PACKET_TYPES)


@settings(max_examples=2000)
@given(st.binary(max_size=200))
def test_garbage_raises_only_bad_packet(data: bytes) -> None:
    for decode in (decode_control_untrusted, decode_data_untrusted):
        with contextlib.suppress(BadPacket):
            decode(data)


@settings(max_examples=2000)
@given(st.sampled_from(sorted(CONTROL_TYPES)), st.binary(max_size=300))
def test_garbage_after_a_valid_prefix_raises_only_bad_packet(ptype: int, tail: bytes) -> None:
    with contextlib.suppress(BadPacket):
        decode_control_untrusted(PREFIX.pack(MAGIC, PROTOCOL_VERSION, ptype) + tail)


@settings(max_examples=1000)
@given(
    st.sampled_from(sorted(CONTROL_TYPES)),
    st.dictionaries(
        st.sampled_from(["session_id", "receiver_id", "need", "whole", "name", "ok", "grtt",
                         "image_sha256", "echo_time", "seq_seen", "cursor", "host", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | text
            | st.binary(max_size=40),
            lambda children: st.lists(children, max_size=4)
            | st.dictionaries(text, children, max_size=4),
            max_leaves=12,
        ),
    ),
)
def test_hostile_maps_raise_only_bad_packet(ptype: int, body: dict[str, object]) -> None:
    data = PREFIX.pack(MAGIC, PROTOCOL_VERSION, ptype) + msgpack.packb(body)
    with contextlib.suppress(BadPacket):
        decode_control_untrusted(data)


def test_other_versions_and_foreign_bytes_are_refused() -> None:
    encoded = bytearray(Accept(1, 2).encode())
    encoded[2] = PROTOCOL_VERSION + 1
    with pytest.raises(BadPacket, match="version"):
        decode_control_untrusted(bytes(encoded))
    with pytest.raises(BadPacket):
        decode_control_untrusted(b"GET / HTTP/1.1\r\n")
