"""The manifest's chunks prove themselves against the root, and nothing else does."""

from __future__ import annotations

import hashlib

import pytest

from protocol.manifest import (
    CHUNK_DIGESTS,
    DIGEST_SIZE,
    Manifest,
    block_digest,
    chunk_count,
    chunk_of,
    verify_chunk,
)


def manifest(nblocks: int) -> Manifest:
    return Manifest(b"".join(block_digest(i.to_bytes(4, "little")) for i in range(nblocks)))


@pytest.mark.parametrize("nblocks", [1, 2, 23, 24, 25, 48, 49, 24 * 5 + 7, 24 * 64, 24 * 65 + 1])
def test_every_chunk_verifies_with_its_proof(nblocks: int) -> None:
    m = manifest(nblocks)
    assert m.nchunks == chunk_count(nblocks)
    for index in range(m.nchunks):
        assert verify_chunk(m.root, nblocks, index, m.chunk(index), m.proof(index))
    assert m.digest(nblocks - 1) == m.chunk(chunk_of(nblocks - 1))[-DIGEST_SIZE:]


def test_a_forged_chunk_index_or_proof_fails() -> None:
    nblocks = 24 * 9 + 5
    m = manifest(nblocks)
    chunk, proof = m.chunk(3), m.proof(3)
    bad = bytearray(chunk)
    bad[10] ^= 1
    assert not verify_chunk(m.root, nblocks, 3, bytes(bad), proof)
    assert not verify_chunk(m.root, nblocks, 4, chunk, proof)  # right chunk, wrong place
    assert not verify_chunk(m.root, nblocks, 3, chunk, proof[:-1])  # truncated proof
    assert not verify_chunk(m.root, nblocks, 3, chunk, [*proof, proof[0]])  # padded proof
    assert not verify_chunk(m.root, nblocks, 3, chunk, [proof[0][:31], *proof[1:]])
    flipped = [bytes(32), *proof[1:]]
    assert not verify_chunk(m.root, nblocks, 3, chunk, flipped)
    assert not verify_chunk(hashlib.sha256(b"other").digest(), nblocks, 3, chunk, proof)
    assert not verify_chunk(m.root, nblocks, 99, chunk, proof)


def test_the_last_short_chunk_must_have_its_exact_length() -> None:
    nblocks = 24 * 2 + 5
    m = manifest(nblocks)
    last = m.chunk(2)
    assert len(last) == 5 * DIGEST_SIZE
    assert verify_chunk(m.root, nblocks, 2, last, m.proof(2))
    assert not verify_chunk(m.root, nblocks, 2, last + bytes(32), m.proof(2))


def test_a_chunk_cannot_pass_for_an_inner_node() -> None:
    # Two leaves' hashes concatenated look like a 64-byte chunk: the domain prefixes differ.
    m = manifest(48)
    assert m.nchunks == 2
    inner = hashlib.sha256(b"\x00" + m.chunk(0)).digest() + hashlib.sha256(
        b"\x00" + m.chunk(1)).digest()
    assert not verify_chunk(m.root, 2 * CHUNK_DIGESTS, 0, inner, [])


def test_a_500_gb_image_s_chunk_and_proof_fit_one_datagram() -> None:
    nblocks = 500 * 1000**3 // (1 << 20)
    nchunks = chunk_count(nblocks)
    depth = (nchunks - 1).bit_length()
    assert CHUNK_DIGESTS * DIGEST_SIZE + depth * DIGEST_SIZE + 100 < 1472


def test_an_empty_image_has_a_root_and_no_chunks() -> None:
    m = Manifest(b"")
    assert m.nchunks == 0 and len(m.root) == 32
    with pytest.raises(IndexError):
        m.proof(0)
    with pytest.raises(ValueError):
        Manifest(bytes(31))
