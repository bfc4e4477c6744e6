"""Security through the real daemon loops in virtual time. `--encrypt`: laptops with the
secret write the exact image; one without it, or with another, writes nothing and says what to
pass. A replayed signed announcement: laptops end up in the live session."""

from __future__ import annotations

import random
from pathlib import Path

import trio
import trio.testing

from protocol.config import SenderConfig
from protocol.manifest import Manifest, block_digest
from protocol.receiver import REJECT_LIMIT
from protocol.sender import SenderSession
from protocol.trust import Signer

from .room import BLOCK, run_room

SECRET = bytes(range(32))
KEY = Signer.from_raw(bytes(range(32)))


async def test_encrypted_laptops_at_3_percent_loss_get_the_exact_image(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=3, loss=0.03, secret=SECRET)
    assert room.sender is not None and room.sender.ok
    for i in range(3):
        assert room.receivers[i].ok and room.written(i) == room.image


async def test_a_laptop_without_the_secret_writes_nothing_and_says_to_pass_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=3, secret=SECRET, min_receivers=2,
                              laptop_secrets={2: None, 1: bytes(32)}, discovery_timeout=5.0)
    assert room.receivers[0].ok and room.written(0) == room.image
    without, other = room.receivers[2], room.receivers[1]
    assert not without.ok and not other.ok
    assert "encrypted datagram(s) arrived that need a secret: pass --encrypt" in without.message
    assert "does not open: use the sender's secret file" in other.message
    for i in (1, 2):
        assert not room.targets[i].exists() or not any(room.written(i))


async def test_a_replayed_old_announce_gives_way_to_the_live_session(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A rogue replays last week's signed announcement before the admin starts: laptops
    follow it, are never accepted, and switch to the live session of the same key."""
    old = SenderSession(SenderConfig(1 << 20, bytes(32), ("10.0.0.1", 9999), name="old",
                                     created=1000.0), random.Random(9), 0.0, signer=KEY,
                        manifest=Manifest(block_digest(bytes(1 << 20))))
    old.handle_timer(0.0)
    ((replayed, _),) = old.datagrams_to_send(0.0)
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=2, signer=KEY, replayed=replayed,
                              sender_delay=1.0)
    assert room.sender is not None and room.sender.ok
    for i in range(2):
        assert room.receivers[i].ok and room.written(i) == room.image
    switched = '"level": "warning", "text": "a later session of the same sender is announced'
    assert room.log.getvalue().count(switched) == 2  # each laptop followed the replay first


async def test_blocks_that_never_match_the_signed_manifest_are_never_written(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The manifest says block 1 is something else (the image changed after it was hashed,
    or the manifest was tampered with before signing): every copy of block 1 is refused, the
    laptop gives up after REJECT_LIMIT copies with one sentence, and block 1 is never written."""

    def tampered(image: bytes) -> bytes:
        at = BLOCK + 1000
        return image[:at] + bytes([image[at] ^ 0xFF]) + image[at + 1 :]

    with trio.fail_after(300):
        room = await run_room(tmp_path, receivers=1, signer=KEY, manifest_of=tampered)
    report = room.receivers[0]
    assert not report.ok
    assert f"block 1 failed its check {REJECT_LIMIT} times: the image changed" in report.message
    assert not any(room.written(0)[BLOCK : 2 * BLOCK])  # not one byte of it reached the disk
    assert room.sender is not None and not room.sender.ok
