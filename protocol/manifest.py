"""The image manifest: one SHA-256 per raw block, provable piece by piece against one root.

A 500 GB image has half a million blocks: its digests (16 MB) cannot precede the data. They
are cut into chunks of ``CHUNK_DIGESTS``, each chunk is a leaf of a Merkle tree, and only the
tree's root travels in the signed ANNOUNCE. A chunk then arrives in one datagram with the
sibling hashes up to the root (``proof``), so a receiver can check the blocks of that chunk as
soon as it has it, before a byte of them reaches the disk.

Leaves and inner nodes are hashed with different prefixes (as in RFC 6962), so a chunk can
never pass for a node. A level with an odd number of nodes lifts its last one unchanged.
"""

from __future__ import annotations

import hashlib

DIGEST_SIZE = 32
# Block digests per chunk: 768 bytes, plus a proof of 15 hashes (480 bytes) for the 16,000
# chunks of a 500 GB image in 1 MiB blocks, fit one 1500-byte datagram.
CHUNK_DIGESTS = 24
# The digest standing for a block the source disk does not use (free space): never written,
# never sent. No block hashes to it (it would take a SHA-256 preimage of all zeros).
FREE_BLOCK_DIGEST = bytes(DIGEST_SIZE)
_LEAF, _NODE = b"\x00", b"\x01"


def block_digest(raw: bytes | bytearray | memoryview) -> bytes:
    return hashlib.sha256(raw).digest()


def chunk_of(block: int) -> int:
    return block // CHUNK_DIGESTS


def chunk_count(nblocks: int) -> int:
    return -(-nblocks // CHUNK_DIGESTS)


def _leaf(chunk: bytes) -> bytes:
    return hashlib.sha256(_LEAF + chunk).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


class Manifest:
    """All block digests of an image (the sender's side): chunks, proofs and the root."""

    def __init__(self, digests: bytes) -> None:
        if len(digests) % DIGEST_SIZE:
            raise ValueError("digests must be a whole number of SHA-256 digests")
        self.digests = digests
        self.nblocks = len(digests) // DIGEST_SIZE
        self.nchunks = chunk_count(self.nblocks)
        level = [_leaf(self.chunk(i)) for i in range(self.nchunks)]
        self._levels = [level]
        while len(level) > 1:
            level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                     for i in range(0, len(level), 2)]
            self._levels.append(level)

    @property
    def root(self) -> bytes:
        """The tree's root; an image of no blocks has the digest of nothing."""
        return self._levels[-1][0] if self.nchunks else hashlib.sha256(b"").digest()

    def chunk(self, index: int) -> bytes:
        size = CHUNK_DIGESTS * DIGEST_SIZE
        return self.digests[index * size : (index + 1) * size]

    def digest(self, block: int) -> bytes:
        return self.digests[block * DIGEST_SIZE : (block + 1) * DIGEST_SIZE]

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from chunk ``index``'s leaf up to the root (levels where the
        node was lifted have none)."""
        if not 0 <= index < self.nchunks:
            raise IndexError(f"chunk {index} is outside the manifest")
        path = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path


def verify_chunk(root: bytes, nblocks: int, index: int, chunk: bytes,
                 proof: list[bytes]) -> bool:
    """Whether ``chunk`` is chunk ``index`` of the manifest whose root is ``root``."""
    nchunks = chunk_count(nblocks)
    if not 0 <= index < nchunks:
        return False
    expected = min(CHUNK_DIGESTS, nblocks - index * CHUNK_DIGESTS) * DIGEST_SIZE
    if len(chunk) != expected or any(len(p) != DIGEST_SIZE for p in proof):
        return False
    node, width, used = _leaf(chunk), nchunks, 0
    while width > 1:
        sibling = index ^ 1
        if sibling < width:
            if used == len(proof):
                return False
            node = _node(node, proof[used]) if index % 2 == 0 else _node(proof[used], node)
            used += 1
        index //= 2
        width = -(-width // 2)
    return used == len(proof) and node == root
