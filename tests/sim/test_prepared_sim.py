"""A prepared image (a used-block map) with a laptop that crashes mid-way and resumes from its
journal: it asks for the manifest chunks of the blocks it took from the journal, checks every
used block at the end, and ends exact."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netsim.scenarios import SCENARIOS, _at_fraction

from .test_classroom import assert_every_survivor_exact

MiB = 1 << 20


@pytest.mark.parametrize("seed", range(3))
def test_a_laptop_resumes_a_prepared_image_after_a_crash(seed: int) -> None:
    from netsim.classroom import run_classroom

    scenario = replace(SCENARIOS["prepared"], name="prepared_crash", late_joins={},
                       n_receivers=3,
                       crashes={1: (_at_fraction(8 * MiB, 20e6, 0.3),
                                    _at_fraction(8 * MiB, 20e6, 0.5))})
    result = run_classroom(scenario, seed, trace=False)
    assert_every_survivor_exact(result)
    restarted = [r for r in result.receivers if r.index == 1 and not r.crashed]
    assert len(restarted) == 1 and restarted[0].resumed_blocks > 0
    assert restarted[0].written_blocks < 22  # it did not fetch everything again
