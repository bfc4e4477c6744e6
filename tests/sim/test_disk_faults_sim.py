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
