"""A laptop whose disk fails mid-way, over 20 seeds: it always ends failed, as a disk error in
the sender's eyes, never as a success; the other laptops finish exactly and are not slowed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netsim.classroom import ClassroomResult, run_classroom
from netsim.link import LinkSpec
from netsim.scenarios import Scenario
from protocol.events import Outcome

MiB = 1 << 20
ROOM = Scenario("disk_fails", 4, LinkSpec(loss=0.02, delay=0.0002), image_kind="random",
                image_size=8 * MiB, rate_bps=50e6, disk_fails={1: 12})  # of 32 blocks


def others_done(result: ClassroomResult) -> float:
    """When the last of the healthy laptops verified, from the transfer's start."""
    times = [r.verified_at for r in result.receivers if r.index != 1]
    assert all(t is not None for t in times)
    return max(t for t in times if t is not None) - (result.started_at or 0.0)


@pytest.mark.parametrize("seed", range(20))
def test_a_failing_disk_ends_as_a_disk_error_and_slows_no_one(seed: int) -> None:
    result = run_classroom(ROOM, seed, trace=False)
    failing = next(r for r in result.receivers if r.index == 1)
    assert failing.ok is False and "input/output error" in failing.reason
    assert failing.outcome is Outcome.DISK_ERROR
    assert result.complete is not None and result.complete.failed == 1
    for r in result.receivers:
        if r.index != 1:
            assert r.ok and r.image_matches and r.outcome is Outcome.VERIFIED
    healthy = run_classroom(replace(ROOM, disk_fails={}), seed, trace=False)
    assert others_done(result) <= 1.05 * others_done(healthy)


# A prepared image: its final check reads every used block back.
PREPARED = replace(ROOM, name="disk_lies", disk_fails={}, used_runs=((0, 20), (24, 32)))


def test_a_block_that_reads_back_wrong_twice_is_fetched_again_and_then_holds() -> None:
    result = run_classroom(replace(PREPARED, disk_lies={1: {5: 2, 30: 1}}), 3, trace=False)
    flaky = next(r for r in result.receivers if r.index == 1)
    assert flaky.ok and flaky.image_matches and flaky.outcome is Outcome.VERIFIED
    assert flaky.written_blocks == 28 + 3  # block 30 written again once, block 5 twice


def test_a_disk_that_keeps_lying_fails_naming_the_first_bad_block() -> None:
    result = run_classroom(replace(PREPARED, disk_lies={1: {7: 99, 9: 99}}), 4, trace=False)
    liar = next(r for r in result.receivers if r.index == 1)
    assert liar.ok is False and liar.outcome is Outcome.DISK_ERROR
    assert liar.reason == ("the disk returned other bytes than were written at byte "
                           "1835008 (block 7) after writing it 4 times: it does not keep what "
                           "it is given; replace it")
    assert all(r.ok for r in result.receivers if r.index != 1)
