"""The state and reason the sender shows for each laptop (live table, --json, summary)."""

from __future__ import annotations

import hashlib
import random

from mcastd.serve import receiver_reason, receiver_state
from protocol.config import SenderConfig
from protocol.sender import ReceiverInfo, SenderSession, SenderState


def session(**kw: object) -> SenderSession:
    config = SenderConfig(image_size=4 << 20, image_sha256=hashlib.sha256(b"x").digest(),
                          control_addr=("10.0.0.1", 9000), **kw)  # type: ignore[arg-type]
    return SenderSession(config, random.Random(1), 0.0)


def laptop(fraction: float | None = None) -> ReceiverInfo:
    info = ReceiverInfo(7, ("10.0.0.7", 5000), 0.0)
    if fraction is not None:
        info.delivery.begin(0)
        info.delivery.report(1000, int(1000 * fraction), 0)
    return info


def test_a_laptop_is_joining_until_the_transfer_runs_and_it_reported() -> None:
    s = session()
    assert receiver_state(laptop(), s) == "joining"
    s.state = SenderState.SENDING
    assert receiver_state(laptop(), s) == "joining"  # no delivery window yet
    assert receiver_state(laptop(1.0), s) == "receiving"


def test_a_lagging_laptop_says_what_share_it_gets() -> None:
    s = session()
    s.state = SenderState.SENDING
    slow = laptop(0.2)
    slow.delivery.lagging = True
    assert receiver_state(slow, s) == "lagging"
    assert receiver_reason(slow) == "gets 20 % of the datagrams: served after the others"


def test_verifying_done_failed_and_dropped() -> None:
    s = session()
    s.state = SenderState.SENDING
    info = laptop(1.0)
    info.blocks_done = s.nblocks
    assert receiver_state(info, s) == "verifying"
    info.outcome = True
    assert receiver_state(info, s) == "done"
    info.outcome, info.reason = False, "the disk is full"
    assert receiver_state(info, s) == "failed" and receiver_reason(info) == "the disk is full"
    info.reason = "silent for 10 s: dropped"
    assert receiver_state(info, s) == "dropped"
    info.reason = "stored nothing for 60 s although served (it gets 3 % of the datagrams at 1 " \
                  "Mbit/s): dropped"
    assert receiver_state(info, s) == "dropped"
