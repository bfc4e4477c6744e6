"""The data path's per-datagram loops, each run over a whole batch in one call.

Sender side, ``source_datagrams``: a run of a block's source symbols as DATA datagrams, from
one header template (each gets its esi, group and seq patched in).

Receiver side, ``place_run``: many DATA datagrams placed in one call.

``place_run`` walks datagrams ``start..end`` of a received batch (``spans`` holds each one's
offset and length in ``buf``) and places every one that is the plain case: a source symbol of
the followed session, for a block already being assembled, that does not complete it; or a
symbol of a block already complete (stale) or already held (duplicate). It stops at the first
datagram that is anything else (a control message, another session, the first data of a
transfer, a new block, a repair symbol, the symbol completing a block, anything garbled) and
returns its index: the caller gives that one to ``ReceiverSession.receive_datagram``, whose
``Transfer.place`` decides it as always, and calls again after it. So the two paths agree by
construction: this one only takes the cases whose outcome ``Transfer.place`` would reach without
asking anything of the session, and it changes state exactly as ``place`` would.

The compiled twins (``protocol/_datapath.c``, built at install) run the same loops without a
Python object per datagram on the receiver and one ``bytes`` per datagram on the sender;
``COMPILED`` says which are in use. Both are tested on the same inputs
(tests/protocol/test_datapath.py).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .assembly import HAVE_BYTES
from .transfer import DECODING, STORED, Transfer
from .wire import DATA_HEADER_SIZE as HEADER_SIZE
from .wire import FLAG_REPAIR, KIND_MASK, MAGIC, PROTOCOL_VERSION, PacketType

if TYPE_CHECKING:
    from .config import Addr


class Datagrams(Protocol):
    """One receive's datagrams, in place (driver/batchio.py's RecvRing): datagram ``i`` is
    ``buf[spans[2i] : spans[2i] + spans[2i + 1]]``."""

    buf: bytearray
    spans: array[int]
    count: int

    def address_of(self, i: int) -> Addr: ...

    def datagram(self, i: int) -> bytes: ...

# protocol/wire.py's DATA header read with its 4-byte prefix as one field (the C twin spells
# out the same layout; a test parses wire.data_header's bytes with it).
HEADER = struct.Struct("<4sBBHIIII")  # prefix, flags|kind, esi, group, tag, block, len, seq
PREFIX = MAGIC + bytes((PROTOCOL_VERSION, PacketType.DATA))
SYMBOL_FIELDS = struct.Struct("<BH")  # esi, group at offset 5
SEQ_FIELD = struct.Struct("<I")  # at offset 20


def source_datagrams_py(template: bytes, payload: bytes | memoryview, symbol_size: int,
                        groups: int, start: int, end: int, seq: int) -> list[bytes]:
    """Source symbols ``start..end`` of a block as DATA datagrams. ``template`` is the block's
    header with esi, group and seq 0; symbol i goes to group i % groups at esi i // groups and
    gets seq ``seq + i - start``."""
    out = []
    view = memoryview(payload)
    header = bytearray(template)
    for i in range(start, end):
        SYMBOL_FIELDS.pack_into(header, 5, i // groups, i % groups)
        SEQ_FIELD.pack_into(header, 20, (seq + i - start) & 0xFFFFFFFF)  # wraps, as the sender's
        out.append(bytes(header) + view[i * symbol_size : (i + 1) * symbol_size])
    return out


def place_run_py(transfer: Transfer, tag: int, buf: bytearray | memoryview,
                 spans: array[int], start: int, end: int) -> int:
    """Place datagrams ``start..end`` while each is the plain case; the index of the first
    one that is not (``end``: all were placed)."""
    stats = transfer._stats
    blocks = transfer._blocks
    assemblies = transfer._assemblies
    nblocks, cursor, seq_seen = transfer.nblocks, transfer.cursor, transfer.seq_seen
    unpack = HEADER.unpack_from
    arrived = received = duplicates = stale = 0
    i = start
    while i < end:
        off, n = spans[2 * i], spans[2 * i + 1]
        if n < HEADER_SIZE or seq_seen < 0:
            break
        prefix, flags, esi, group, dtag, block, length, seq = unpack(buf, off)
        if prefix != PREFIX or dtag != tag or block >= nblocks or (
                block > cursor and not flags & FLAG_REPAIR):
            break
        state = blocks[block]
        if state == STORED or state == DECODING:  # noqa: SIM109 (as in Transfer.place)
            stale += 1
        else:
            asm = assemblies.get(block)
            if (asm is None or asm.kind != flags & KIND_MASK or asm.encoded_length != length
                    or group >= len(asm.counts)):
                break
            k = asm.group_k[group]
            at = group * HAVE_BYTES + (esi >> 3)
            bit = 1 << (esi & 7)
            count = asm.counts[group]
            if asm.have[at] & bit or count >= k:
                duplicates += 1
            else:
                if esi >= k or count + 1 == k and asm.groups_left == 1:
                    break  # a repair symbol (kept as bytes), or the block's last: the full path
                size = asm.layout.symbol_size
                first = (esi * len(asm.counts) + group) * size
                last = first + size if first + size < length else length
                if n - HEADER_SIZE != last - first:
                    break  # garbled: the full path counts it
                asm.buffer[first:last] = buf[off + HEADER_SIZE : off + n]
                asm.have[at] |= bit
                asm.counts[group] = count + 1
                asm.total += 1
                if count + 1 == k:
                    asm.groups_left -= 1
                received += 1
        arrived += 1
        if seq > seq_seen:
            seq_seen = seq
        i += 1
    transfer.seq_seen = seq_seen
    stats.data_arrived += arrived
    stats.received += received
    stats.duplicates += duplicates
    stats.stale += stale
    return i


PlaceRun = Callable[["Transfer", int, "bytearray | memoryview", "array[int]", int, int], int]
SourceDatagrams = Callable[[bytes, "bytes | memoryview", int, int, int, int, int], list[bytes]]
place_run: PlaceRun
source_datagrams: SourceDatagrams
try:
    from ._datapath import place_run, source_datagrams
except ImportError:  # no compiler at install: the pure loops, same results, slower
    COMPILED = False
    place_run, source_datagrams = place_run_py, source_datagrams_py
else:
    COMPILED = True
