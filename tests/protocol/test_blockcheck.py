"""verified_block: the one check before a block reaches the target. Good blocks come back as
their raw bytes, zero blocks as None (written as zeros); damaged and forged ones raise."""

from __future__ import annotations

import hashlib
import random

import pytest

from protocol.assembly import ADD_COMPLETE, BlockAssembly
from protocol.blockcheck import verified_block, zeros_digest
from protocol.blockcodec import BlockCorrupt, BlockDecoder, BlockEncoder, BlockKind
from protocol.events import BlockReady

SYMBOL = 512
RANDOM = random.Random(4).randbytes(5000)
WORDS = (b"the same words again " * 300)[:5000]


def ready(raw: bytes, digest: bytes = b"", flip: int | None = None) -> BlockReady:
    """Block 2 of an image, complete from its source symbols (byte ``flip`` of the payload
    damaged on the way)."""
    kind, payload = BlockEncoder().encode(raw)
    if flip is not None:
        payload = payload[:flip] + bytes([payload[flip] ^ 1]) + payload[flip + 1 :]
    asm = BlockAssembly(2, kind, len(payload), SYMBOL)
    groups = asm.layout.group_count
    results = [asm.add(0, 0, memoryview(b""))] if kind == BlockKind.ZERO else [
        asm.add(i % groups, i // groups, memoryview(payload[i * SYMBOL : (i + 1) * SYMBOL]))
        for i in range(asm.layout.source_count)
    ]
    assert results[-1] == ADD_COMPLETE
    return BlockReady(2, offset=2 * len(raw), length=len(raw), assembly=asm, digest=digest)


@pytest.mark.parametrize("raw", [RANDOM, WORDS], ids=["raw", "zstd"])
def test_a_good_block_comes_back_as_its_bytes(raw: bytes) -> None:
    decoder = BlockDecoder()
    assert verified_block(ready(raw), decoder) == raw  # unsigned: its own digest only
    assert verified_block(ready(raw, hashlib.sha256(raw).digest()), decoder) == raw


def test_a_zero_block_is_none_and_checked_against_the_manifest_too() -> None:
    decoder = BlockDecoder()
    zeros = bytes(5000)
    assert ready(zeros).assembly.kind == BlockKind.ZERO
    assert verified_block(ready(zeros), decoder) is None
    assert verified_block(ready(zeros, hashlib.sha256(zeros).digest()), decoder) is None
    with pytest.raises(BlockCorrupt):  # the manifest signed another block here
        verified_block(ready(zeros, hashlib.sha256(RANDOM).digest()), decoder)
    assert zeros_digest(5000) == hashlib.sha256(zeros).digest()


@pytest.mark.parametrize("flip", [0, 20, 4999], ids=["digest", "body", "last byte"])
def test_a_damaged_block_raises(flip: int) -> None:
    with pytest.raises(BlockCorrupt):
        verified_block(ready(RANDOM, flip=flip), BlockDecoder())


def test_a_forged_block_that_decodes_raises() -> None:
    # Consistent in itself (its own digest holds), but not the block the sender signed.
    forged = ready(RANDOM, digest=hashlib.sha256(WORDS).digest())
    with pytest.raises(BlockCorrupt, match="signed manifest"):
        verified_block(forged, BlockDecoder())
