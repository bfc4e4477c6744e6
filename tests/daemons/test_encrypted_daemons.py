"""`--encrypt` through the real daemon loops in virtual time: laptops with the secret write
the exact image; one without it, or with another, writes nothing and says what to pass."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from .room import run_room

SECRET = bytes(range(32))


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
