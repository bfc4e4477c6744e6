"""One image block <-> its encoded payload (what the FEC layer cuts into symbols).

ZERO blocks have an empty payload. RAW and ZSTD payloads are ``digest + body``, the digest being
xxh3_128 of the raw block, so a receiver never writes a block that does not match what the
sender read, whatever the network, the FEC decode or a hostile sender did to it.
"""

from __future__ import annotations

from enum import IntEnum

import xxhash
import zstandard

DIGEST_SIZE = 16  # xxh3_128 digest, big-endian bytes (xxhash.xxh3_128_digest)


class BlockKind(IntEnum):
    ZERO = 0
    RAW = 1
    ZSTD = 2


class BlockCorrupt(Exception):
    """Decoded block fails its check: discard and re-fetch, never write."""


class BlockEncoder:
    """One per thread (a zstd compressor must never be shared between threads)."""

    def __init__(self, level: int = 3) -> None:
        # Content size in the frame lets the decoder check it before allocating anything.
        self._cctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
        # Grow-only; zeros.startswith(raw) is a memcmp (~30 GB/s) for bytes and memoryviews
        # alike, and fits every block no longer than the largest seen (short last block).
        self._zeros = b""

    def encode(self, raw: bytes | memoryview) -> tuple[BlockKind, bytes]:
        """All-zero block → (ZERO, b""). Otherwise payload = xxh3_128 digest of raw (16 bytes) +
        body, where body is the zstd frame (ZSTD) if it is smaller than raw, else raw itself (RAW).
        """
        size = len(raw)
        if size > len(self._zeros):
            self._zeros = bytes(size)
        if self._zeros.startswith(raw):
            return BlockKind.ZERO, b""
        digest = xxhash.xxh3_128_digest(raw)
        frame = self._cctx.compress(raw)
        if len(frame) < size:
            return BlockKind.ZSTD, digest + frame
        return BlockKind.RAW, digest + raw


class BlockDecoder:
    """One per thread."""

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        # Returned for ZERO blocks of the usual size instead of a fresh allocation each time.
        self._zeros = b""

    def decode(self, kind: int, payload: bytes | memoryview, raw_length: int) -> bytes:
        """Inverse of encode. raw_length is the block's known size (from the image size and block
        index). Untrusted input: any problem raises BlockCorrupt and nothing else. zstd never
        produces more than raw_length bytes: the frame must declare exactly that content size,
        which is checked before zstd allocates its output (frames without one are rejected)."""
        if raw_length < 0:
            raise BlockCorrupt(f"negative raw length {raw_length}")
        if kind == BlockKind.ZERO:
            if len(payload):
                raise BlockCorrupt("ZERO block with a payload")
            return self._zero_block(raw_length)
        if len(payload) < DIGEST_SIZE:
            raise BlockCorrupt(f"payload of {len(payload)} bytes has no digest")
        view = memoryview(payload)
        body = view[DIGEST_SIZE:]
        if kind == BlockKind.RAW:
            if len(body) != raw_length:
                raise BlockCorrupt(f"RAW body is {len(body)} bytes, expected {raw_length}")
            raw = bytes(body)
        elif kind == BlockKind.ZSTD:
            try:
                # Checked first: zstd allocates the declared content size, ignoring
                # max_output_size, so a tiny frame could otherwise claim gigabytes.
                declared = zstandard.frame_content_size(body)
                if declared != raw_length:
                    raise BlockCorrupt(f"zstd frame declares {declared} bytes, not {raw_length}")
                raw = self._dctx.decompress(
                    body, max_output_size=raw_length, allow_extra_data=False
                )
            except zstandard.ZstdError as e:
                raise BlockCorrupt(f"zstd: {e}") from e
            if len(raw) != raw_length:
                raise BlockCorrupt(f"zstd produced {len(raw)} bytes, expected {raw_length}")
        else:
            raise BlockCorrupt(f"unknown block kind {kind!r}")
        if xxhash.xxh3_128_digest(raw) != bytes(view[:DIGEST_SIZE]):
            raise BlockCorrupt("digest mismatch")
        return raw

    def _zero_block(self, size: int) -> bytes:
        if size == len(self._zeros):
            return self._zeros
        zeros = bytes(size)
        # Keep the largest: that is the usual block size, the odd one is the image's last.
        if size > len(self._zeros):
            self._zeros = zeros
        return zeros
