"""Hostile traffic in the simulator, over many seeds: forged blocks, well formed down to their
own xxh3 and sent before the real ones, never put a wrong byte on a disk."""

from __future__ import annotations

import pytest

from netsim.classroom import run_classroom
from netsim.scenarios import SCENARIOS

from .test_classroom import SEEDS, assert_every_survivor_exact


@pytest.mark.parametrize("seed", SEEDS)
def test_forged_blocks_cost_a_refetch_and_write_no_wrong_byte(seed: int) -> None:
    result = run_classroom(SCENARIOS["forged_blocks"], seed, trace=False)
    assert_every_survivor_exact(result)
    assert all(r.forged_datagrams > 0 for r in result.receivers)  # the forger sent them all
    # Forgeries reached the laptops, were decoded, checked and refused (a laptop that missed
    # the first ANNOUNCEs may have joined after them)...
    assert any(r.rejected_blocks > 0 for r in result.receivers)
    # ...and not one wrong byte was ever written.
    assert all(r.forged_bytes == 0 for r in result.receivers)
