"""Wire format: one fixed binary header for data, msgpack maps for control.

Every datagram starts with the same 4-byte prefix::

    offset size field
    0      2    magic  b"MC"
    2      1    version (PROTOCOL_VERSION)
    3      1    type   (PacketType)

DATA datagrams (the hot path, no msgpack) continue with a fixed 20-byte tail, 24 bytes in all,
little-endian, then the symbol bytes (a 1500-byte IPv4 packet carries 1448: 96.5 % image)::

    4      1    flags   bits 0-3: BlockKind (0 ZERO, 1 RAW, 2 ZSTD); bit 4 AUTHENTICATED
                        (reserved for a future tag), bit 5 REPAIR (sent in answer to a NAK,
                        not in the block's first pass)
    5      1    esi     encoding symbol id inside the group: < k source, >= k repair
    6      2    group   FEC group inside the block
    8      4    session tag: the low 32 bits of the session id (the control messages carry
                        it whole; a session's data also has its own group)
    12     4    block index
    16     4    encoded length of the block's payload (determines its layout)
    20     4    seq     sender's datagram sequence number (data datagrams only)
    24     ...  symbol  (source symbols may be short at the end of the payload)

Control datagrams carry a msgpack map after the prefix. Unknown keys are ignored, so newer
senders and receivers can add fields without breaking older ones. Decoders of network bytes are
named ``decode_*_untrusted`` and raise nothing but ``BadPacket``.
"""

from __future__ import annotations

import struct
from dataclasses import MISSING, dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

import msgpack

from .errors import BadPacket

MAGIC = b"MC"
PROTOCOL_VERSION = 2  # 2: the 24-byte DATA header

PREFIX = struct.Struct("<2sBB")
DATA_HEADER = struct.Struct("<2sBBBBHIIII")
DATA_HEADER_SIZE = DATA_HEADER.size  # 24
SESSION_TAG_MASK = 0xFFFFFFFF
KIND_MASK = 0x0F
IPV4_UDP_HEADERS = 20 + 8
IPV6_UDP_HEADERS = 40 + 8
# IPv4 (20) + UDP (8) + our header fit a 1500-byte MTU with this symbol size.
DEFAULT_SYMBOL_SIZE = 1500 - IPV4_UDP_HEADERS - DATA_HEADER_SIZE  # 1448
# Links with a larger MTU (jumbo frames) get larger symbols, up to a 9000-byte frame's: beyond
# that a block has too few symbols for its FEC groups to spread a burst of loss.
JUMBO_MTU = 9000


def ip_udp_headers(ipv6: bool) -> int:
    return IPV6_UDP_HEADERS if ipv6 else IPV4_UDP_HEADERS


def symbol_size_for(mtu: int, ipv6: bool = False) -> int:
    """The largest symbol whose DATA datagram fits one IP packet of ``mtu`` bytes."""
    return min(mtu, JUMBO_MTU) - ip_udp_headers(ipv6) - DATA_HEADER_SIZE
MAX_CONTROL_SIZE = 65507

CAUSE_DISK = "disk"  # a DONE's cause: the laptop's own disk failed (receiver/faults.py)

# DATA flags, above the BlockKind in the same byte.
FLAG_AUTHENTICATED = 0x10
FLAG_REPAIR = 0x20


class PacketType(IntEnum):
    DATA = 1
    ANNOUNCE = 2
    SYNC = 3
    JOIN = 4
    ACCEPT = 5
    STATUS = 6
    DONE = 7
    DONE_ACK = 8
    REFUSE = 9
    MANIFEST = 10
    SEALED = 11  # an encrypted datagram (protocol/seal.py)
    USED_MAP = 12  # a piece of the used-block map (protocol/usedmap.py)
    LACKS = 13  # a piece of a delta receiver's report of what its disk lacks (protocol/delta.py)
    LACKS_ACK = 14  # the sender's answer: the pieces it still lacks (none: the report is in)
    ABORT = 15  # the sender stops mid-way (its image failed to read): the laptops stop too
    # The doctor's probes (protocol/doctor.py): never part of a session.
    DOCTOR_HERE = 16
    DOCTOR_PING = 17
    DOCTOR_PONG = 18
    DOCTOR_BURST = 19
    DOCTOR_BURST_DONE = 20
    DOCTOR_PROBE = 21
    DOCTOR_RESULT = 22


def data_header(
    flags: int, kind: int, session_id: int, block: int, group: int, esi: int,
    encoded_length: int, seq: int,
) -> bytes:
    """The 24-byte header of a DATA datagram; the symbol follows it."""
    return _pack_data(
        MAGIC, PROTOCOL_VERSION, PacketType.DATA, flags | kind, esi, group,
        session_id & SESSION_TAG_MASK, block, encoded_length, seq,
    )


def session_tag(session_id: int) -> int:
    """What a DATA header carries of the session id."""
    return session_id & SESSION_TAG_MASK


_pack_data = DATA_HEADER.pack


@dataclass(frozen=True, slots=True)
class DataHeader:
    flags: int
    kind: int
    session_tag: int
    block: int
    group: int
    esi: int
    encoded_length: int
    seq: int


def decode_data_untrusted(data: bytes | memoryview) -> tuple[DataHeader, memoryview]:
    """Parse a DATA datagram (for tests and tools; sessions unpack inline on the hot path)."""
    if len(data) < DATA_HEADER_SIZE:
        raise BadPacket("short data datagram")
    magic, version, ptype, flags, esi, group, tag, block, length, seq = (
        DATA_HEADER.unpack_from(data)
    )
    if magic != MAGIC or version != PROTOCOL_VERSION or ptype != PacketType.DATA:
        raise BadPacket("not an mcastd data datagram")
    return (
        DataHeader(flags & ~KIND_MASK, flags & KIND_MASK, tag, block, group, esi, length, seq),
        memoryview(data)[DATA_HEADER_SIZE:],
    )


def packet_type_untrusted(data: bytes | memoryview) -> int:
    """The type of an mcastd datagram, or BadPacket for anything else."""
    if len(data) < PREFIX.size:
        raise BadPacket("short datagram")
    magic, version, ptype = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BadPacket("foreign datagram")
    if version != PROTOCOL_VERSION:
        raise BadPacket(f"unsupported protocol version {version}")
    return int(ptype)


# ---------------------------------------------------------------------------------------------
# Control messages. Each is a frozen dataclass; its fields are the msgpack map's keys. Fields
# with defaults are optional on the wire (older peers may not send them).

C = TypeVar("C", bound="Control")


@dataclass(frozen=True, slots=True)
class Control:
    TYPE: ClassVar[PacketType]
    session_id: int

    def encode(self) -> bytes:
        """The prefix and the msgpack map; a field at its default is left out (the decoder
        gives it back), so a field added later changes nothing on the wire until it is used."""
        body = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is not MISSING and value == f.default or (
                    f.default_factory is not MISSING and value == f.default_factory()):
                continue
            body[f.name] = value
        return PREFIX.pack(MAGIC, PROTOCOL_VERSION, self.TYPE) + msgpack.packb(body)


@dataclass(frozen=True, slots=True)
class Announce(Control):
    """Sender → discovery group, every announce interval: everything needed to join."""

    TYPE: ClassVar[PacketType] = PacketType.ANNOUNCE
    name: str
    image_size: int
    image_sha256: bytes
    block_size: int
    symbol_size: int
    data_host: str
    data_port: int
    control_host: str
    control_port: int
    sender_time: float
    started: bool = False
    manifest: bytes = b""  # root of the block digests (protocol/manifest.py; empty: none)
    # When the session began by the sender's wall clock (seconds since the epoch; 0: unknown).
    # Of two sessions signed by one key, the later is the live one: a replay is older.
    created: float = 0.0
    key: bytes = b""  # the sender's Ed25519 public key (empty: an unsigned session)
    # SHA-256 of the used-block map (protocol/usedmap.py map_digest; empty: every block is
    # used), and the smallest disk that holds the image (0: image_size).
    used_map: bytes = b""
    min_size: int = 0
    # Bytes of the image the capture could not read from the golden disk (zeros in it).
    unreadable: int = 0
    signature: bytes = b""  # over everything above (protocol/trust.py announce_payload)


@dataclass(frozen=True, slots=True)
class Sync(Control):
    """Sender → data group, every sync interval: clock probe and transmission progress."""

    TYPE: ClassVar[PacketType] = PacketType.SYNC
    sender_time: float
    grtt: float  # group round-trip time estimate, seconds
    cursor: int  # blocks below this index have had their first pass
    last_seq: int  # seq of the last data datagram sent before this one (-1: none yet)
    nak_interval: float  # the least time between two STATUS messages of one receiver
    backlog: int = 0  # data datagrams queued or owed; 0: anything still missing was lost


@dataclass(frozen=True, slots=True)
class Join(Control):
    """Receiver → sender's control address, until accepted."""

    TYPE: ClassVar[PacketType] = PacketType.JOIN
    receiver_id: int
    echo_time: float = -1.0  # sender_time of the last ANNOUNCE/SYNC heard (-1: none)
    hold: float = 0.0  # seconds between hearing it and sending this
    nonce: bytes = b""  # fresh per session: a signed ACCEPT must answer this very JOIN
    # A delta receiver: its disk may hold an earlier version of the image. It compares its
    # disk with the manifest and reports what it lacks (LACKS) before the sender starts.
    delta: bool = False
    # Who the laptop is, for the admin's summary: "mac", "dmi_serial", "disk_model",
    # "disk_serial" (receiver/identity.py); at most HOST_MAX_ENTRIES, each HOST_MAX_CHARS.
    host: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Accept(Control):
    TYPE: ClassVar[PacketType] = PacketType.ACCEPT
    receiver_id: int
    proof: bytes = b""  # the sender's signature over (session, receiver, the JOIN's nonce)


@dataclass(frozen=True, slots=True)
class Status(Control):
    """Receiver → sender: progress, clock echo and what is still missing (the NAK).

    ``need`` lists, per incomplete block whose first pass is over, how many more symbols each
    of its groups needs (not which: any fresh symbol of the group helps). ``whole`` lists
    [start, end) ranges of blocks of which nothing usable arrived.
    """

    TYPE: ClassVar[PacketType] = PacketType.STATUS
    receiver_id: int
    echo_time: float
    hold: float
    seq_seen: int  # highest data seq heard (or learnt from SYNC)
    blocks_done: int
    need: list[tuple[int, list[int]]] = field(default_factory=list)
    whole: list[tuple[int, int]] = field(default_factory=list)
    received: int = 0  # data datagrams accepted so far
    dropped: int = 0  # datagrams dropped as garbled, foreign or over the memory window
    loss_ppm: int = 0  # data datagrams lost on the way, parts per million (an estimate)
    arrived: int = 0  # data datagrams of this session that reached us, whatever their use
    overruns: int = 0  # datagrams our kernel dropped because our socket buffer was full
    chunks: list[int] = field(default_factory=list)  # manifest chunks it still needs
    map_pieces: list[int] = field(default_factory=list)  # used-map pieces it still needs
    # A delta receiver's report of what it lacks: its pieces in all, while the sender has not
    # confirmed it whole (0: none, or confirmed).
    lacks_pieces: int = 0


@dataclass(frozen=True, slots=True)
class Done(Control):
    """Receiver → sender: the whole image was verified (ok) or could not be (reason)."""

    TYPE: ClassVar[PacketType] = PacketType.DONE
    receiver_id: int
    ok: bool
    digest: bytes = b""
    reason: str = ""
    verified_bytes: int = 0  # bytes of the image read back from the disk and found right
    cause: str = ""  # what failed, for the admin's summary: CAUSE_DISK, or "" (anything else)
    # As in JOIN: a laptop that fails before its JOIN arrives is still named in the summary.
    host: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DoneAck(Control):
    TYPE: ClassVar[PacketType] = PacketType.DONE_ACK
    receiver_id: int


@dataclass(frozen=True, slots=True)
class Refuse(Control):
    """Sender → receiver: this session will not take it (``reason``, one sentence)."""

    TYPE: ClassVar[PacketType] = PacketType.REFUSE
    receiver_id: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ManifestChunk(Control):
    """Sender → data group: one chunk of block digests and its proof up to the signed root."""

    TYPE: ClassVar[PacketType] = PacketType.MANIFEST
    index: int
    digests: bytes
    proof: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UsedMapPiece(Control):
    """Sender → data group: piece ``index`` of ``count`` of the used-block map's encoding,
    whose SHA-256 the signed ANNOUNCE carries."""

    TYPE: ClassVar[PacketType] = PacketType.USED_MAP
    index: int
    count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Lacks(Control):
    """Delta receiver → sender: piece ``index`` of ``count`` of the used blocks its disk
    lacks, as used-map runs (protocol/usedmap.py encode_runs)."""

    TYPE: ClassVar[PacketType] = PacketType.LACKS
    receiver_id: int
    index: int
    count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LacksAck(Control):
    """Sender → delta receiver: the pieces of its LACKS report still missing (a few of them;
    empty: the report is whole and taken)."""

    TYPE: ClassVar[PacketType] = PacketType.LACKS_ACK
    receiver_id: int
    missing: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Abort(Control):
    """Sender → data group: the session stops here, for ``reason`` (one sentence). Signed as
    the session is (protocol/trust.py abort_payload): a stranger cannot stop a room."""

    TYPE: ClassVar[PacketType] = PacketType.ABORT
    reason: str
    signature: bytes = b""


CONTROL_TYPES: dict[int, type[Control]] = {
    cls.TYPE: cls for cls in (Announce, Sync, Join, Accept, Status, Done, DoneAck, Refuse,
                              ManifestChunk, UsedMapPiece, Lacks, LacksAck, Abort)
}

_MAX_LIST = 4096
HOST_MAX_ENTRIES = 8
HOST_MAX_CHARS = 64


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_pairs(v: object, inner_list: bool) -> bool:
    """need: [(block, [counts…])…]; whole: [(start, end)…]."""
    if not isinstance(v, list) or len(v) > _MAX_LIST:
        return False
    for item in v:
        if not isinstance(item, list | tuple) or len(item) != 2 or not _is_int(item[0]):
            return False
        second = item[1]
        if inner_list:
            if not isinstance(second, list | tuple) or len(second) > 256:
                return False
            if not all(_is_int(c) and 0 <= c <= 256 for c in second):
                return False
        elif not _is_int(second):
            return False
    return True


def _check_host(v: object) -> bool:
    """host: a few short printable str → str (it ends up on the admin's terminal)."""
    return isinstance(v, dict) and len(v) <= HOST_MAX_ENTRIES and all(
        isinstance(text, str) and len(text) <= HOST_MAX_CHARS and text.isprintable()
        for item in v.items() for text in item)


def _valid(name: str, value: object, expected: object) -> bool:
    # With postponed annotations, dataclass field types are the annotation strings.
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool) and -1 <= value < 2**64
    if expected == "float":
        return isinstance(value, float | int) and not isinstance(value, bool)
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "str":
        return isinstance(value, str) and len(value) <= 1024
    if expected == "bytes":
        return isinstance(value, bytes) and len(value) <= 1024
    if expected == "list[int]":
        return isinstance(value, list) and len(value) <= 64 and all(
            _is_int(v) and 0 <= v < 2**32 for v in value)
    if expected == "list[bytes]":
        return isinstance(value, list) and len(value) <= 40 and all(
            isinstance(v, bytes) and len(v) <= 64 for v in value)
    if expected == "dict[str, str]":
        return _check_host(value)
    if name == "need":
        return _check_pairs(value, True)
    if name == "whole":
        return _check_pairs(value, False)
    return False


def decode_control_untrusted(data: bytes | memoryview) -> Control:
    """Parse any control datagram into its dataclass. Raises only BadPacket."""
    if len(data) > MAX_CONTROL_SIZE:
        raise BadPacket("oversized control message")
    ptype = packet_type_untrusted(data)
    cls = CONTROL_TYPES.get(ptype)
    if cls is None:
        raise BadPacket(f"not a control datagram (type {ptype})")
    try:
        body = msgpack.unpackb(
            memoryview(data)[PREFIX.size :],
            raw=False,
            strict_map_key=True,
            max_str_len=1024,
            max_bin_len=1024,
            max_array_len=_MAX_LIST * 2,
            max_map_len=64,
        )
    except Exception as exc:  # msgpack raises many types on garbage
        raise BadPacket(f"undecodable control message: {exc.__class__.__name__}") from None
    if not isinstance(body, dict):
        raise BadPacket("control message is not a map")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in body:
            value = body[f.name]
            if not _valid(f.name, value, f.type):
                raise BadPacket(f"bad field {f.name!r} in {cls.__name__}")
            if f.type == "float":
                value = float(value)
            elif f.name == "need":
                value = [(int(b), list(c)) for b, c in value]
            elif f.name == "whole":
                value = [(int(a), int(b)) for a, b in value]
            kwargs[f.name] = value
    missing = [
        f.name for f in fields(cls)
        if f.name not in kwargs and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise BadPacket(f"{cls.__name__} lacks {', '.join(missing)}")
    return cls(**kwargs)


def decode_control_as_untrusted(data: bytes | memoryview, cls: type[C]) -> C:
    msg = decode_control_untrusted(data)
    if not isinstance(msg, cls):
        raise BadPacket(f"expected {cls.__name__}")
    return msg

