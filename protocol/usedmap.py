"""The used-block map: which blocks of the image hold something (the rest is free space that is
never sent, never written, and discarded on the target).

It travels as runs of used blocks, each a gap and a length in LEB128 varints, cut into pieces
that fit one datagram (USED_MAP); the ANNOUNCE carries the SHA-256 of the whole encoding, so a
receiver takes the map only once every piece arrived and the digest matches: the signature over
the ANNOUNCE covers it. A disk of a few hundred used runs encodes in a few hundred bytes; even a
badly fragmented terabyte stays far below a megabyte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .errors import BadPacket

PIECE_SIZE = 1024  # bytes of encoding per USED_MAP datagram
MAX_PIECES = 4096  # 4 MiB of encoding at most: more runs than any disk has


def encode_runs(runs: Iterable[tuple[int, int]]) -> bytes:
    """``[(start, end), ...]`` of used blocks, sorted and disjoint, as varint gaps and lengths."""
    out = bytearray()
    position = 0
    for start, end in runs:
        if start < position or end <= start:
            raise ValueError("runs must be sorted, disjoint and non-empty")
        _varint(out, start - position)
        _varint(out, end - start)
        position = end
    return bytes(out)


def decode_runs_untrusted(data: bytes, nblocks: int) -> list[tuple[int, int]]:
    """The runs of an encoding from the network; BadPacket unless every run lies in
    ``[0, nblocks)``, in order."""
    runs: list[tuple[int, int]] = []
    position = offset = 0
    while offset < len(data):
        gap, offset = _read_varint(data, offset)
        length, offset = _read_varint(data, offset)
        start = position + gap
        end = start + length
        if length == 0 or end > nblocks:
            raise BadPacket("a used-block run outside the image")
        runs.append((start, end))
        position = end
    return runs


def map_digest(encoded: bytes) -> bytes:
    return hashlib.sha256(b"mcastd used map v1\0" + encoded).digest()


def pieces(encoded: bytes) -> list[bytes]:
    """The encoding cut into datagram-sized pieces (at least one, even when empty)."""
    return [encoded[i : i + PIECE_SIZE] for i in range(0, len(encoded), PIECE_SIZE)] or [b""]


def runs_of(used: bytes | bytearray) -> list[tuple[int, int]]:
    """Runs of a per-block flag array (non-zero: used)."""
    runs: list[tuple[int, int]] = []
    start = -1
    for index, flag in enumerate(used):
        if flag and start < 0:
            start = index
        elif not flag and start >= 0:
            runs.append((start, index))
            start = -1
    if start >= 0:
        runs.append((start, len(used)))
    return runs


def _varint(out: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 56:
            raise BadPacket("a truncated or oversized varint in the used-block map")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


class UsedBlocks:
    """The sender's view of the map: which blocks to send, and the map's pieces."""

    __slots__ = ("flags", "count", "encoded", "digest", "pieces")

    def __init__(self, nblocks: int, runs: Iterable[tuple[int, int]]) -> None:
        self.flags = bytearray(nblocks)
        for start, end in runs:
            if not 0 <= start < end <= nblocks:
                raise ValueError(f"used run [{start}, {end}) is outside the image")
            self.flags[start:end] = b"\x01" * (end - start)
        clean = runs_of(self.flags)  # sorted and merged, whatever the caller gave
        self.count = self.flags.count(1)
        self.encoded = encode_runs(clean)
        self.digest = map_digest(self.encoded)
        self.pieces = pieces(self.encoded)

    def next_used(self, index: int) -> int:
        """The first used block at or after ``index`` (len: none)."""
        found = self.flags.find(1, index)
        return len(self.flags) if found < 0 else found
