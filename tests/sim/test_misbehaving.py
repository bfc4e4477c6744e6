"""The misbehaving classroom in the simulator, each case over many seeds: late, refused, dead,
slow, crashing laptops and a crashing sender never stall or corrupt the others."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netsim.classroom import ClassroomResult, run_classroom
from netsim.scenarios import LAN, SCENARIOS

from .test_classroom import SEEDS, assert_every_survivor_exact

NEVER = float("inf")  # a receiver that never verified fails every comparison


def finish(result: ClassroomResult, indexes: set[int] | None = None) -> float:
    """Seconds from the transfer's start to the last of these (surviving) receivers' image."""
    times = [r.verified_at or NEVER for r in result.survivors
             if indexes is None or r.index in indexes]
    return max(times) - (result.started_at or 0.0)


def nblocks(result: ClassroomResult) -> int:
    size = result.scenario.block_size
    return -(-result.image_size // size)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_laptop_joining_after_the_first_pass_gets_every_block(seed: int) -> None:
    result = run_classroom(SCENARIOS["late_after_pass"], seed, trace=False)
    assert_every_survivor_exact(result)
    late = next(r for r in result.receivers if r.index == 2)
    on_time = max(r.verified_at or NEVER for r in result.receivers if r.index != 2)
    assert late.joined_at > on_time  # the others were done: it got everything on later passes
    assert late.written_blocks == nblocks(result)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_laptop_after_the_late_join_window_is_told_at_once(seed: int) -> None:
    result = run_classroom(SCENARIOS["late_refused"], seed, trace=False)
    assert_every_survivor_exact(result, frozenset({2}))
    late = next(r for r in result.receivers if r.index == 2)
    assert late.finished_at is not None and late.finished_at - late.joined_at < 2.0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_dead_laptop_is_dropped_within_the_timeout_and_costs_the_others_nothing(
    seed: int,
) -> None:
    scenario = SCENARIOS["dead_receiver"]
    result = run_classroom(scenario, seed, trace=False)
    assert_every_survivor_exact(result)
    assert result.complete is not None and result.complete.failed == 1
    died = scenario.crashes[1][0]
    assert result.end - died <= 10.0 + 1.5  # receiver_timeout, checked once a second
    without = run_classroom(replace(scenario, n_receivers=2, crashes={}), seed, trace=False)
    assert finish(result) <= 1.05 * finish(without)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_slow_laptop_does_not_drag_the_room_down(seed: int) -> None:
    scenario = SCENARIOS["slow_receiver"]  # r0: 20 Mbit/s; the sender paces at 50
    result = run_classroom(scenario, seed, trace=False)
    assert_every_survivor_exact(result)
    alone = run_classroom(replace(scenario, links=LAN), seed, trace=False)
    assert finish(result, {1, 2}) <= 1.10 * finish(alone)
    # The slow one completes on later passes, near its own link's speed.
    own_link = result.image_size * 8 / 20e6
    assert finish(result, {0}) <= 1.25 * own_link


@pytest.mark.parametrize("seed", SEEDS)
def test_a_restarted_laptop_receives_only_what_it_lacks(seed: int) -> None:
    result = run_classroom(SCENARIOS["crash_restart"], seed, trace=False)
    assert_every_survivor_exact(result)
    second = next(r for r in result.survivors if r.index == 1)
    assert second.resumed_blocks > 0
    assert second.written_blocks + second.resumed_blocks == nblocks(result)


@pytest.mark.parametrize("seed", SEEDS)
def test_laptops_waiting_for_a_restarted_sender_keep_what_they_have(seed: int) -> None:
    result = run_classroom(SCENARIOS["sender_restart"], seed, trace=False)
    assert_every_survivor_exact(result)
    assert result.senders == 2
    for r in result.survivors:
        assert r.resumed_blocks > 0
        assert r.written_blocks + r.resumed_blocks == nblocks(result)


@pytest.mark.parametrize("seed", SEEDS)
def test_without_a_sender_laptops_give_up_within_ten_seconds_and_say_why(seed: int) -> None:
    base = SCENARIOS["sender_restart"]
    assert base.sender_crash is not None
    died = base.sender_crash[0]
    scenario = replace(base, sender_crash=(died, None), wait_for_sender=False)
    result = run_classroom(scenario, seed, trace=False)
    assert result.survivors
    for r in result.survivors:
        assert r.ok is False and "the sender went silent" in r.reason
        assert r.finished_at is not None and r.finished_at - died <= 10.0 + 0.5
        assert r.image_matches is False  # (only part of it arrived)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rate_far_above_the_links_still_finishes_near_the_best_time(seed: int) -> None:
    scenario = SCENARIOS["overdriven"]  # the sender is told 200 Mbit/s; the links take 20
    result = run_classroom(scenario, seed, trace=False)
    assert_every_survivor_exact(result)
    matched = run_classroom(replace(scenario, rate_bps=20e6), seed, trace=False)
    assert finish(result) <= 1.25 * finish(matched)
