"""Delta re-imaging in the simulator: laptops whose disks hold an earlier version of a prepared
image compare them with the manifest and receive only what changed; a fresh laptop in the
room, or one joining late, still ends with the exact image."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netsim.classroom import ClassroomResult, run_classroom
from netsim.link import LinkSpec
from netsim.scenarios import Scenario

from .test_classroom import assert_every_survivor_exact

MiB, KiB = 1 << 20, 1 << 10
# 16 MiB in 64 KiB blocks: 256 blocks, of which 200 used; 5 % of them changed is 10 blocks.
ROOM = Scenario("delta_room", 4, LinkSpec(loss=0.02, delay=0.0002), signed=True,
                image_kind="random", image_size=16 * MiB, block_size=64 * KiB,
                rate_bps=50e6, used_runs=((0, 120), (150, 230)), delta=0.05)


def full_run(scenario: Scenario, seed: int) -> ClassroomResult:
    """The same room with blank disks: what a plain re-imaging puts on the wire."""
    return run_classroom(replace(scenario, delta=None, name="delta_room_full"), seed,
                         trace=False)


@pytest.mark.parametrize("seed", range(3))
def test_a_room_re_imaged_after_five_percent_changed_gets_only_the_changes(seed: int) -> None:
    result = run_classroom(ROOM, seed, trace=False)
    assert_every_survivor_exact(result)
    for r in result.survivors:
        assert r.compared_blocks == 190  # 200 used, 10 changed
        assert r.written_blocks == 10
    ratio = result.data_bytes / full_run(ROOM, seed).data_bytes
    assert 0.04 < ratio <= 0.08, ratio


def test_a_fresh_laptop_in_the_room_gets_every_used_block() -> None:
    scenario = replace(ROOM, name="delta_mixed", fresh=frozenset({2}))
    result = run_classroom(scenario, 0, trace=False)
    assert_every_survivor_exact(result)
    assert [r.written_blocks for r in result.survivors] == [10, 10, 200, 10]
    assert result.data_bytes >= 0.95 * full_run(scenario, 0).data_bytes


def test_a_delta_laptop_joining_late_compares_and_catches_up() -> None:
    # It comes after the room's changes went out (0.1 s): it asks for them whole.
    scenario = replace(ROOM, name="delta_late", late_joins={3: 0.2}, late_join_window=5.0)
    result = run_classroom(scenario, 1, trace=False)
    assert_every_survivor_exact(result)
    late = next(r for r in result.survivors if r.index == 3)
    assert (late.compared_blocks, late.written_blocks) == (190, 10)


def test_an_unchanged_room_verifies_with_no_data_sent() -> None:
    result = run_classroom(replace(ROOM, name="delta_same", delta=0.0), 0, trace=False)
    assert_every_survivor_exact(result)
    assert result.data_bytes == 0
    assert all(r.compared_blocks == 200 for r in result.survivors)
