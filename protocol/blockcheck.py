"""The one check a complete block passes before any byte of it reaches the target.

Its own digest catches damage (a corrupted or wrongly repaired symbol: ``decode_block``); in a
signed session the manifest's SHA-256 catches forgery (a block that decodes, but is not the one
the sender signed). Every driver calls ``verified_block``, the daemon from its worker threads:
it keeps no state but a thread-safe cache, so it is safe with one decoder per thread.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from .assembly import decode_block
from .blockcodec import BlockCorrupt, BlockDecoder, BlockKind
from .events import BlockReady


@lru_cache(maxsize=4)
def zeros_digest(length: int) -> bytes:
    """SHA-256 of a zero block (there are only the full size and the last block's)."""
    return hashlib.sha256(bytes(length)).digest()


def verified_block(ready: BlockReady, decoder: BlockDecoder) -> bytes | None:
    """The raw bytes of the block, checked; None for a zero block that checked: the driver
    writes ``ready.length`` zeros (not materialised here: a disk can write them cheaper).
    Raises BlockCorrupt for a block that must not be written, damaged or forged."""
    assembly = ready.assembly
    if assembly.kind == BlockKind.ZERO:
        if assembly.layout.encoded_length:
            raise BlockCorrupt("ZERO block with a payload")
        if ready.digest and ready.digest != zeros_digest(ready.length):
            raise BlockCorrupt("a zero block, where the signed manifest has another")
        return None
    raw = decode_block(assembly, ready.length, decoder)
    if ready.digest and hashlib.sha256(raw).digest() != ready.digest:
        raise BlockCorrupt("the block decodes, but is not the one the signed manifest has")
    return raw
