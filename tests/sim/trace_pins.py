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
    ('bursty20', 0): '963c6867c813e4f51cfd3d58790cb673',
    ('bursty20', 1): 'eb1078adfbd45d99baaa023bcf64c4cc',
    ('bursty20', 2): '83397254347585abba728a69f41a3d9a',
    ('clean', 0): '6520d2be1901a3d82407e3c009782bca',
    ('clean', 1): '2bb83ea84c5e1dd1375a512a5dfbb21c',
    ('clean', 2): 'c656aa71a4d25d3fd92a14572aed90ab',
    ('corrupt', 0): '8a19372f2edba76e7f8b532283bd73b5',
    ('corrupt', 1): '84455b287fcbe4b363493f3d9214952f',
    ('corrupt', 2): '3a54175839701c57ef6be88195c1d5d7',
    ('crash_restart', 0): 'c76da23a01598e7e020cf7b568d99325',
    ('crash_restart', 1): '996860b147cb1659b9ac012f4024976d',
    ('crash_restart', 2): '60d87e4362c1ae24b587849a4ecaffd2',
    ('dead_receiver', 0): 'f6c194da20bccdb18c236fa964c285b8',
    ('dead_receiver', 1): '39e67dc17a1362823982fd5ed91352a7',
    ('dead_receiver', 2): '82fafa2c3e34a041816dc05353c415b0',
    ('duplicate', 0): '0cde4fe76f159bd35023b57b7b42f425',
    ('duplicate', 1): 'a0280c4b7095a12f156720e92d9e5ca2',
    ('duplicate', 2): '88d48659b5a130805da738b5c7cc0a1f',
    ('encrypted_loss5', 0): '2c001655ca7b1da6be1bec996a11c2e2',
    ('encrypted_loss5', 1): '6efba0a5d2bbba6a896b2219340dbf15',
    ('encrypted_loss5', 2): '7e25f8015299474380780b6a5f4fe1dc',
    ('forged_blocks', 0): '313ebd82e5841a4be2288d4f5b2f22da',
    ('forged_blocks', 1): 'fce43fa2a76ae19d4a88d5d9613114ec',
    ('forged_blocks', 2): 'ea06d523cb9bc3b017330e9f6cd0bb5d',
    ('forged_manifest', 0): '86cce4867347759410459d71718da822',
    ('forged_manifest', 1): '6cf322d65419e9fd8d58747dbed670e6',
    ('forged_manifest', 2): '63c2cedd013f618c2dacb4147d7c9ef0',
    ('late_after_pass', 0): 'd3b0db5ddb52fcc33b01bd4e411767a8',
    ('late_after_pass', 1): 'd01a453effbe872bdeabddf5dae749c8',
    ('late_after_pass', 2): '36ef73b128f3728dde0615a3449bf434',
    ('late_joiner', 0): '8f2fe5272e84e287d31765954e2c888c',
    ('late_joiner', 1): '1c864b87b444f190fa2d8e1cf07c3dc2',
    ('late_joiner', 2): '4405996025bbf7e760eaf2cfcd3daa78',
    ('late_refused', 0): 'b629272ef95d39639077f11e7037025f',
    ('late_refused', 1): '590782f56f8af9fbce4252d6f2714872',
    ('late_refused', 2): '66a9807a2880ddabc700235c0694ce7f',
    ('loss5', 0): 'b73cc585885c054f7bdd1de6bfa7c600',
    ('loss5', 1): 'a4b72e93506eef8b37ebd009dafa333e',
    ('loss5', 2): 'a6b2875860467d772379aeeadd6a13ee',
    ('mixed50', 0): 'd66373c528c301f3354789c30b734796',
    ('mixed50', 1): '9f4c52ce80612aeb6196eebf4f2bc291',
    ('mixed50', 2): '35ff53dba2b3181c3b5bf0ce9b757c43',
    ('nak_flood', 0): 'a9545ffc03e311a246a791c751316178',
    ('nak_flood', 1): 'befc8064f6f08685107cccdd75150754',
    ('nak_flood', 2): '63810e07fec8babe313dba98cf31c50b',
    ('overdriven', 0): 'da01de583f62ddc64f9b7dd701a16ed6',
    ('overdriven', 1): '877ef13464c4a2d9e0ecd3009827d762',
    ('overdriven', 2): '77a70698f39a146c995e70f752fb6aeb',
    ('prepared', 0): 'd4f6bc41b1f5a75190a68566bc417354',
    ('prepared', 1): 'efb5a2042d1102907cf37ee6f0db35b9',
    ('prepared', 2): '220043df825def534e3749ccc2cddca7',
    ('reorder', 0): '34586e658772a5aed524263562d49e5b',
    ('reorder', 1): '837bd9986dd5c01c362abb8b19065b09',
    ('reorder', 2): 'eec5a5d3fd4c19d071847c883e06f3f2',
    ('replayed_session', 0): 'a993a7bc3bdf1a21e07495e069458106',
    ('replayed_session', 1): 'e497d4726f45cce5f68801708ee345e0',
    ('replayed_session', 2): '344f41915c105c344c819bb0a53bed48',
    ('sender_restart', 0): '154cfc2ea9101232de7f3ca6aa7e6c20',
    ('sender_restart', 1): 'b09524d0c05449dc1addb35ab255783b',
    ('sender_restart', 2): '63402dd2491406bcb79fca5f6ce67842',
    ('signed_loss5', 0): 'af49e2975f39a626c3a885315ff9d052',
    ('signed_loss5', 1): '5bbe8c64df39150cba68e0781dde3815',
    ('signed_loss5', 2): '0a54a7d7234e681a27ddd1543e34a55e',
    ('slow_receiver', 0): '9012b251b80f68fff0372be50c5dcb2e',
    ('slow_receiver', 1): 'f3cc5506bfd39bb059b19a0d35c74bd7',
    ('slow_receiver', 2): '9c5e2130afd277b09c74f539f3b51457',
}


def main() -> None:
    print("PINS: dict[tuple[str, int], str] = {")
    for name, scenario in sorted(named_scenarios().items()):
        for seed in PINNED_SEEDS:
            print(f"    ({name!r}, {seed}): {fingerprint(run_classroom(scenario, seed))!r},")
    print("}")


if __name__ == "__main__":
    main()
