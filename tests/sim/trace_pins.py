"""Pinned simulator fingerprints: the behaviour-preserving refactors keep these identical.

A fingerprint hashes the run's trace (every delivery and timer: time, node, length, first 32
bytes) together with its outcome (bytes and NAKs on the wire, when it ended, what each
receiver wrote and said). A change that alters any of them alters the protocol's behaviour.

Print the table afresh, after a change that is *meant* to alter behaviour, with
``python -m tests.sim.trace_pins`` and paste it below, saying why in the commit.
"""

from __future__ import annotations

import hashlib

from netsim.classroom import ClassroomResult, run_classroom
from netsim.scenarios import NAK_FLOOD, SCENARIOS, Scenario

PINNED_SEEDS = (0, 1, 2)


def named_scenarios() -> dict[str, Scenario]:
    return {**SCENARIOS, NAK_FLOOD.name: NAK_FLOOD}


def fingerprint(result: ClassroomResult) -> str:
    h = hashlib.sha256(result.trace.encode())
    h.update(repr((result.data_bytes, result.encoded_bytes, result.naks, result.statuses,
                   result.limited, result.end, result.started_at, result.senders)).encode())
    for r in result.receivers:
        h.update(repr((r.index, r.ok, r.image_matches, r.verified_at, r.finished_at,
                       r.rejected_blocks, r.resumed_blocks, r.written_blocks, r.crashed,
                       r.reason, r.forged_bytes, r.garbled, r.foreign)).encode())
    return h.hexdigest()[:32]


PINS: dict[tuple[str, int], str] = {
    ('bursty20', 0): '2a265888a2d1d4f12bb93e57a28a3479',
    ('bursty20', 1): '8495a0b5afcb3a5225975a6d7c9a2d55',
    ('bursty20', 2): '62f9464ea7b1649a843d64a34ba9c595',
    ('clean', 0): '056f7dc258fdd5524ce269e0ab1a8f24',
    ('clean', 1): '2c7f3b7ba334afd17c3e25433cb8d20b',
    ('clean', 2): 'fe386ceed39d001ee386885571e1839b',
    ('corrupt', 0): 'af13dcba8dd1946de3ac165b70f1dfba',
    ('corrupt', 1): '4e2692dba11135fe21b2212c8cccc372',
    ('corrupt', 2): '29c61f01876c95bdf84ea8ed592fb200',
    ('crash_restart', 0): '0c4846a764d3e45c20373e4de4048d63',
    ('crash_restart', 1): '093b12e1faf98514cc5784b3d7fc07a1',
    ('crash_restart', 2): '28b1388128b43b3692bec22c01613d1e',
    ('dead_receiver', 0): '31ccbf30ec2b07aac11a732f08b640ed',
    ('dead_receiver', 1): 'ed66cb988fe2442e8897c6c4416322d9',
    ('dead_receiver', 2): 'cba83e4fa081446fc40186ea921fad43',
    ('duplicate', 0): '7b2276c2fceaf90b3b0444eb88e7348e',
    ('duplicate', 1): '7f13ff436cb88c73a74080c8bf7ddbde',
    ('duplicate', 2): '701bec57a0beefa528a8851c9a7871f8',
    ('encrypted_loss5', 0): '37140e732b2db263e16beaf30171d619',
    ('encrypted_loss5', 1): 'd09ff2ef02cd749f92d9ee30769653df',
    ('encrypted_loss5', 2): '1ab5db5ab1d161740b3312a6e41dfa9d',
    ('forged_blocks', 0): '2c2928fc3813c389e358eb968edf814f',
    ('forged_blocks', 1): '5f4de5e3a8dac3ffd3ea539959fbeefe',
    ('forged_blocks', 2): 'c1614d74e44a236d7ca8cba609a00c9f',
    ('forged_manifest', 0): '39a8ff1fbc28af076f0049afc19d0901',
    ('forged_manifest', 1): '828f74b73c1cf74a07a1ef8f96ff9ce9',
    ('forged_manifest', 2): '61ce4c0d319076016c61cd75f12781d6',
    ('late_after_pass', 0): '1361e630aec26fdcf3c4d9d9cba7799a',
    ('late_after_pass', 1): '6ae38043cee4bbeb293db344806cc3b8',
    ('late_after_pass', 2): 'ce3e58fc939fc262cefd92b21315ca87',
    ('late_joiner', 0): 'fae0fbb4d4dba0080162a26158a015c6',
    ('late_joiner', 1): 'af4c89b9daefaa1c2b5fb8339d1f1b23',
    ('late_joiner', 2): '5227ce6315ac9b6b828f7f995793ae9c',
    ('late_refused', 0): '9039f1024d898e8c477cebb617ee55ec',
    ('late_refused', 1): '248185953349c1d659f445d31939f1a9',
    ('late_refused', 2): '77a2522431b70069068aaa12e501e514',
    ('loss5', 0): '65ac47a3d3cfe337489ba00e90592b07',
    ('loss5', 1): 'e9e26fce1b869d4c99ba2e8c0e0761ea',
    ('loss5', 2): '755ba1b10aaab2980cc05a25e1b487df',
    ('mixed50', 0): '79604d056deffc11ce49bfd14a81c413',
    ('mixed50', 1): 'c30cd3d1a046bb673a818cc384498b0a',
    ('mixed50', 2): '92f75ddecdffdff370fe864e56192b12',
    ('nak_flood', 0): '387e25b0a9853758dfe0164c3e39745e',
    ('nak_flood', 1): 'e8c4927c4c40003bc8aa3e9204935ea0',
    ('nak_flood', 2): '504554e47a7b9fd117800aa9f863988a',
    ('overdriven', 0): '3a943975ae84b055ebf21b43cd6a7600',
    ('overdriven', 1): 'fb6e34809b7f371b8ce675b980260506',
    ('overdriven', 2): 'bd9ca5ec77379f4b1c3302bfa93155e5',
    ('prepared', 0): 'd3072fd8b6255552925446dd42f636f0',
    ('prepared', 1): '5473f760c3fefb59f41c3093b491fcf5',
    ('prepared', 2): '4d9719bee97547c7f62a857dff587e48',
    ('reorder', 0): '1019c5323af2b2ca38d270cdbe47f2dc',
    ('reorder', 1): 'bc5d27e79edeadc03f5a9f8cc4fedf1b',
    ('reorder', 2): '0aa7180a81a1e0ad9597942b5357e7e4',
    ('replayed_session', 0): 'acc7d1b2d67b35516c6148e33fb63db1',
    ('replayed_session', 1): 'd92d3d1e44e8fed9429c1f2010964b97',
    ('replayed_session', 2): '694e10ae3f4acae6373821908e9766e1',
    ('sender_restart', 0): '3618ceb0f5accabcaed1d40029026ec6',
    ('sender_restart', 1): 'cb42b30764a1db68073c1a778e751e2c',
    ('sender_restart', 2): '53bef5fcc224748977af192fb0a1628d',
    ('signed_loss5', 0): '28f55b2f836472ee0d90c74428bfe5f7',
    ('signed_loss5', 1): 'da0d5db5c7173da5f389329c1c55d156',
    ('signed_loss5', 2): 'e354e6c2fd7a7c3a9ba0c8177e0aff1c',
    ('slow_receiver', 0): 'd6a9b89450433ded24fdd853ca192504',
    ('slow_receiver', 1): '2b2f2c5124b6c867432c397ab9c3fe26',
    ('slow_receiver', 2): 'aa3466bd77bb4597cf0349a0da4d8f2e',
}


def main() -> None:
    print("PINS: dict[tuple[str, int], str] = {")
    for name, scenario in sorted(named_scenarios().items()):
        for seed in PINNED_SEEDS:
            print(f"    ({name!r}, {seed}): {fingerprint(run_classroom(scenario, seed))!r},")
    print("}")


if __name__ == "__main__":
    main()
