"""Whole transfers through the simulator: every scenario × many seeds, byte-exact images."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from netsim.classroom import run_classroom
from netsim.link import LinkSpec
from netsim.scenarios import SCENARIOS, Scenario

from .trace_pins import PINS, fingerprint

SEEDS = range(int(os.environ.get("NETSIM_SEEDS", "20")))


# Receivers a scenario expects to be turned away (they came after the late-join window).
REFUSED = {"late_refused": {2}}


def assert_every_survivor_exact(result: object, refused: frozenset[int] = frozenset()) -> None:
    """Every receiver that did not crash wrote the exact image and said so, except the
    ``refused`` ones, which must say they failed (never a false success); the sender's
    summary counts every crashed one as failed."""
    from netsim.classroom import ClassroomResult

    assert isinstance(result, ClassroomResult)
    where = f"scenario {result.scenario.name} seed {result.seed}"
    assert result.complete is not None, f"{where}: the sender never completed"
    for r in result.survivors:
        if r.index in refused:
            assert r.ok is False and "stopped taking new receivers" in r.reason, where
            continue
        assert r.ok is True, f"{where}: receiver {r.index} reported failure"
        assert r.image_matches is True, f"{where}: receiver {r.index} wrote a wrong image"
    crashed = sum(1 for r in result.receivers if r.crashed)
    assert result.complete.failed == crashed, f"{where}: {result.complete}"
    assert result.complete.ok == len(result.survivors) - len(refused)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_delivers_exact_images(name: str, seed: int) -> None:
    pinned = PINS.get((name, seed))
    result = run_classroom(SCENARIOS[name], seed, trace=pinned is not None)
    assert_every_survivor_exact(result, frozenset(REFUSED.get(name, ())))
    if pinned is not None:
        assert fingerprint(result) == pinned, f"{name} seed {seed} behaves differently now"


@pytest.mark.parametrize(
    ("size", "kind"),
    [(0, "random"), (1, "random"), (1, "zeros"), (256 * 1024 * 3 + 1441, "disklike"),
     (4 * 1024 * 1024 + 77, "disklike"), (1440 * 7 - 3, "random"), (256 * 1024, "zeros")],
)
def test_awkward_image_sizes(size: int, kind: str) -> None:
    scenario = Scenario("awkward", 3, LinkSpec(loss=0.05, delay=0.0002), image_size=size,
                        image_kind=kind)
    for seed in range(3):
        assert_every_survivor_exact(run_classroom(scenario, seed))


def test_same_seed_same_trace_and_different_seed_different_trace() -> None:
    scenario = SCENARIOS["reorder"]
    first = run_classroom(scenario, 7)
    again = run_classroom(scenario, 7)
    other = run_classroom(scenario, 8)
    assert first.trace == again.trace
    assert first.data_bytes == again.data_bytes and first.end == again.end
    assert first.trace != other.trace


def test_corrupted_datagrams_are_never_written() -> None:
    result = run_classroom(SCENARIOS["corrupt"], 3)
    assert_every_survivor_exact(result)
    assert sum(r.rejected_blocks for r in result.receivers) > 0  # corruption did reach decoding


EFFICIENCY = Scenario("efficiency", 30, LinkSpec(loss=0.05, delay=0.0002),
                      image_size=8 * 1024 * 1024, block_size=1024 * 1024)


@pytest.mark.parametrize("seed", range(3))
def test_thirty_receivers_at_five_percent_loss_cost_at_most_twenty_percent(seed: int) -> None:
    result = run_classroom(EFFICIENCY, seed, trace=False)
    assert_every_survivor_exact(result)
    assert result.overhead <= 1.20, result.overhead


def test_a_clean_network_costs_at_most_five_percent() -> None:
    result = run_classroom(replace(EFFICIENCY, links=LinkSpec(delay=0.0002)), 0, trace=False)
    assert_every_survivor_exact(result)
    assert result.overhead <= 1.05, result.overhead
    assert result.naks == 0


def test_the_scenario_image_has_zero_compressible_and_random_blocks() -> None:
    from netsim.images import make_image
    from protocol.blockcodec import BlockEncoder, BlockKind

    scenario = SCENARIOS["loss5"]
    image = make_image(scenario.image_size, scenario.image_seed, scenario.image_kind)
    assert len(image) >= 4 * 1024 * 1024
    size = scenario.block_size
    encoder = BlockEncoder()
    kinds = {encoder.encode(image[i : i + size])[0] for i in range(0, len(image), size)}
    assert kinds == {BlockKind.ZERO, BlockKind.ZSTD, BlockKind.RAW}


@pytest.mark.parametrize("seed", range(5))
def test_a_late_joiner_does_not_slow_the_laptops_that_were_on_time(seed: int) -> None:
    with_late = run_classroom(SCENARIOS["late_joiner"], seed, trace=False)
    assert_every_survivor_exact(with_late)
    alone = run_classroom(replace(SCENARIOS["late_joiner"], n_receivers=2, late_joins={}), seed,
                          trace=False)
    late = max(SCENARIOS["late_joiner"].late_joins)
    never = float("inf")  # a receiver that never verified fails every comparison below
    on_time = max(r.verified_at or never for r in with_late.receivers if r.index != late)
    baseline = max(r.verified_at or never for r in alone.receivers)
    late_done = max(r.verified_at or never for r in with_late.receivers if r.index == late)
    assert on_time <= 1.05 * baseline < never
    assert on_time < late_done < never
