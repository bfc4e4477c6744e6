"""The state and reason the sender shows for each laptop (live table, --json, summary)."""

from __future__ import annotations

import hashlib
import random

from mcastd.serve import receiver_reason, receiver_state
from protocol.config import SenderConfig
from protocol.events import Outcome
from protocol.roster import ReceiverInfo
from protocol.sender import SenderSession, SenderState
from protocol.wire import Join


def session(**kw: object) -> SenderSession:
    config = SenderConfig(image_size=4 << 20, image_sha256=hashlib.sha256(b"x").digest(),
                          control_addr=("10.0.0.1", 9000), **kw)  # type: ignore[arg-type]
    return SenderSession(config, random.Random(1), 0.0)


def sending(**kw: object) -> SenderSession:
    """A session whose transfer runs: one receiver (not the laptops below) joined."""
    s = session(**kw)
    s.receive_datagram(Join(s.session_id, 99).encode(), ("10.0.0.99", 5000), 0.0)
    assert s.state is SenderState.SENDING
    return s


def laptop(fraction: float | None = None) -> ReceiverInfo:
    info = ReceiverInfo(7, ("10.0.0.7", 5000), 0.0)
    if fraction is not None:
        info.delivery.begin(0)
        info.delivery.report(1000, int(1000 * fraction), 0)
    return info


def test_a_laptop_is_joining_until_the_transfer_runs_and_it_reported() -> None:
    assert receiver_state(laptop(), session()) == "joining"
    s = sending()
    assert receiver_state(laptop(), s) == "joining"  # no delivery window yet
    assert receiver_state(laptop(1.0), s) == "receiving"


def test_a_lagging_laptop_says_what_share_it_gets() -> None:
    s = sending()
    slow = laptop(0.2)
    slow.delivery.lagging = True
    assert receiver_state(slow, s) == "lagging"
    assert receiver_reason(slow) == "gets 20 % of the datagrams: served after the others"


def test_verifying_done_failed_and_dropped() -> None:
    s = sending()
    info = laptop(1.0)
    info.blocks_done = s.nblocks
    assert receiver_state(info, s) == "verifying"
    info.outcome = Outcome.VERIFIED
    assert receiver_state(info, s) == "done"
    info.outcome, info.reason = Outcome.FAILED, "the disk is full"
    assert receiver_state(info, s) == "failed" and receiver_reason(info) == "the disk is full"
    info.outcome, info.reason = Outcome.DISK_ERROR, "writing /dev/sda failed: replace it"
    assert receiver_state(info, s) == "disk error" and receiver_reason(info) == info.reason
    info.outcome, info.reason = Outcome.DROPPED, "silent for 10 s: dropped"
    assert receiver_state(info, s) == "dropped" and receiver_reason(info) == info.reason


def test_the_outcome_decides_not_the_sentence() -> None:
    s = sending()
    info = laptop(1.0)
    info.outcome, info.reason = Outcome.FAILED, "the receiver said: dropped"
    assert receiver_state(info, s) == "failed"


def test_the_session_sets_the_outcome_of_a_silent_laptop() -> None:
    s = sending(receiver_timeout=3.0)
    s.handle_timer(5.0)
    (info,) = s.receivers.values()
    assert info.outcome is Outcome.DROPPED
    assert receiver_state(info, s) == "dropped"
    assert receiver_reason(info) == "silent for 3 s: dropped"


def test_a_delta_laptop_is_comparing_until_its_report_is_in_and_counts_used_blocks() -> None:
    s = session(used_runs=((0, 2),))  # 2 of the 4 blocks used
    info = laptop(1.0)
    info.delta = True
    assert receiver_state(info, s) == "comparing"
    info.lacked = [(1, 2)]
    info.blocks_done = 1
    assert receiver_state(info, s) == "joining"
    info.blocks_done = 2  # every used block: it checks them now
    assert receiver_state(info, s) == "verifying"


def test_a_verified_laptop_read_back_the_used_blocks_or_the_whole_image() -> None:
    from mcastd.serve import verified_size

    MiB = 1 << 20
    assert verified_size(session()) == 4 << 20  # no used-block map: the SHA-256 of it all

    def used(*runs: tuple[int, int]) -> int:
        config = SenderConfig(image_size=3 * MiB + MiB // 2, image_sha256=bytes(32),
                              control_addr=("10.0.0.1", 9000), block_size=MiB, used_runs=runs)
        return verified_size(SenderSession(config, random.Random(1), 0.0))

    assert used((0, 1), (3, 4)) == MiB + MiB // 2  # the last block is short
    assert used((1, 2)) == MiB
    assert used() == 0
