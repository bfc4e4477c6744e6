"""The whole-image digest read back while blocks arrive: it follows the blocks on disk in
order, waits at a gap, and ends with the image's SHA-256 as the disk holds it."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from receiver.readback import RUN_BLOCKS, BlockChecks, HashAhead
from receiver.target import Target, check_target

BLOCK = 64 * 1024


def drain(ahead: HashAhead) -> int:
    """Read back as far as the disk holds the blocks; how many runs it took."""
    runs = 0
    while (count := ahead.next_run()) and not ahead.complete:
        ahead.hash_run(count)
        ahead.advance(count)
        runs += 1
    return runs


def test_the_digest_follows_the_blocks_on_disk_and_is_the_images(tmp_path: Path) -> None:
    rng = random.Random(5)
    image = rng.randbytes(5 * RUN_BLOCKS * BLOCK + 777)  # a short last block
    nblocks = -(-len(image) // BLOCK)
    order = list(range(nblocks))
    rng.shuffle(order)
    with Target(check_target(str(tmp_path / "disk.img")), len(image)) as target:
        ahead = HashAhead(target, nblocks, BLOCK)
        written = set()
        for index in order:
            target.write_block(index * BLOCK, image[index * BLOCK : (index + 1) * BLOCK])
            ahead.stored(index)
            written.add(index)
            drain(ahead)
            # It never passes a block that is not on the disk yet.
            assert all(i in written for i in range(ahead.hashed))
        assert ahead.complete
        assert ahead.digest() == hashlib.sha256(image).digest()


def test_a_gap_holds_it_until_the_block_arrives(tmp_path: Path) -> None:
    image = bytes(range(256)) * (3 * RUN_BLOCKS * BLOCK // 256)
    nblocks = len(image) // BLOCK
    with Target(check_target(str(tmp_path / "disk.img")), len(image)) as target:
        ahead = HashAhead(target, nblocks, BLOCK)
        for index in range(nblocks):
            if index != RUN_BLOCKS + 1:
                target.write_block(index * BLOCK, image[index * BLOCK : (index + 1) * BLOCK])
                ahead.stored(index)
        assert drain(ahead) == 1 and ahead.hashed == RUN_BLOCKS  # stops before the gap's run
        missing = RUN_BLOCKS + 1
        target.write_block(missing * BLOCK, image[missing * BLOCK : (missing + 1) * BLOCK])
        ahead.stored(missing)
        drain(ahead)
        assert ahead.complete and ahead.digest() == hashlib.sha256(image).digest()


def test_the_digest_is_of_the_disk_not_of_what_was_meant(tmp_path: Path) -> None:
    """A byte that changed on the disk after it was written shows in the digest."""
    image = bytes(RUN_BLOCKS * BLOCK)
    path = tmp_path / "disk.img"
    with Target(check_target(str(path)), len(image)) as target:
        ahead = HashAhead(target, RUN_BLOCKS, BLOCK)
        for index in range(RUN_BLOCKS):
            target.write_block(index * BLOCK, image[index * BLOCK : (index + 1) * BLOCK])
            ahead.stored(index)
        with open(path, "r+b") as other:  # another writer: the disk no longer holds the image
            other.seek(12345)
            other.write(b"\x01")
        drain(ahead)
        assert ahead.digest() != hashlib.sha256(image).digest()


def test_block_checks_leave_only_the_unchecked_and_the_wrong_for_the_end(tmp_path: Path) -> None:
    image = random.Random(2).randbytes(4 * BLOCK + 100)
    blocks = [(i * BLOCK, min(BLOCK, len(image) - i * BLOCK),
               hashlib.sha256(image[i * BLOCK : (i + 1) * BLOCK]).digest()) for i in range(5)]
    path = tmp_path / "disk.img"
    with Target(check_target(str(path)), len(image)) as target:
        checks = BlockChecks(target, 5, BLOCK)
        for index in (0, 1, 4):
            offset, length, digest = blocks[index]
            target.write_block(offset, image[offset : offset + length])
            assert checks.check(offset, length, digest)
            checks.passed(index, length)
        with open(path, "r+b") as other:  # block 1 changes on the disk behind our back
            other.seek(BLOCK + 7)
            other.write(b"\xff")
        assert not checks.check(*blocks[1])
        assert checks.checked_bytes == 2 * BLOCK + 100  # what passed, counted once each
        assert [b[0] // BLOCK for b in checks.unchecked(blocks)] == [2, 3]
