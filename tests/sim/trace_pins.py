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
    ('bursty20', 0): '1d02c55f1067a18faf07967dbe6eecde',
    ('bursty20', 1): 'a6d110c82f5bf81c3e9fb19012399944',
    ('bursty20', 2): '0e8a70a71cac159d1b776f6f1bbd328f',
    ('clean', 0): '9d2c0e445a73f458bbba31a4b9dbbd10',
    ('clean', 1): '42d38778bcd72cc1273c9bd6ab5cbe5e',
    ('clean', 2): '59e224490495d657abe578f8c97cd409',
    ('corrupt', 0): '22db7cb329643d86717451f5a85ba6ef',
    ('corrupt', 1): 'fa7d9d2a5336545691fedf95c1fbe691',
    ('corrupt', 2): 'd4c0e827238eba4f63b340488f860c32',
    ('crash_restart', 0): '771cab680499f23a978ac484ecd2c9d6',
    ('crash_restart', 1): 'e9f240b072a90e100ccb39c38be32cd9',
    ('crash_restart', 2): '62edc1e0eb2d9bfeb4eb295b0e15d0dc',
    ('dead_receiver', 0): '861cb6b0be46153935c0973651948cfe',
    ('dead_receiver', 1): '8fc367d9f895bb4f5b7338f7bbae20d0',
    ('dead_receiver', 2): 'ecd80eba34eaa5800639f4efa1ccdcc0',
    ('duplicate', 0): 'a5d6130b45911ff96053c2774572454a',
    ('duplicate', 1): '22ccfe9abd5fd35c3b9b7057057ba6d9',
    ('duplicate', 2): '4916b79c967fb8582c071860e92174d5',
    ('encrypted_loss5', 0): 'af58f43f72b7d916df2bc9a628570d80',
    ('encrypted_loss5', 1): '1d3df46dd8a475a169bf5d93ca6556e3',
    ('encrypted_loss5', 2): 'c408b31e4bcb3f3fcc1c2c6e535d1aa3',
    ('forged_blocks', 0): '37630ed1cf325ec2b0a06dddd2fb60e1',
    ('forged_blocks', 1): 'f78f0e79507d68c439bcd8513bcac489',
    ('forged_blocks', 2): '3bd8efbb381e328d99227aaf5053ea14',
    ('forged_manifest', 0): '8362853b6dd24c3bbacd92470d19e7a9',
    ('forged_manifest', 1): '8b9421a5146b00dc93a2f80487bbef85',
    ('forged_manifest', 2): '13bf214ddbe8743f607703e444d51bdb',
    ('late_after_pass', 0): '13ed4c6bce1c780aa21a2ac49c8b63e0',
    ('late_after_pass', 1): 'e0a6ab56ad82fcafb47764229a513a2e',
    ('late_after_pass', 2): '92d611b65f3ac907d118be8a7f906185',
    ('late_joiner', 0): 'a2b3938592a2e012b4eb7e786f7643f3',
    ('late_joiner', 1): 'a07a5e7a3db2d894c5c1ade13b47f820',
    ('late_joiner', 2): 'a82e6cc8c108c37cca6293579d4fb422',
    ('late_refused', 0): '7310569d226fdb2bbf07d006f2f49332',
    ('late_refused', 1): '230c4aad999236699c0c21437f083f9d',
    ('late_refused', 2): '0127050fe0f44c3d524840a835bdc749',
    ('loss5', 0): '84da81aa93a7a8b74193eed0c882db0d',
    ('loss5', 1): '5a5cf4c01a4f294f5bb9d8f45f6c0d18',
    ('loss5', 2): '8e5fdba42bcd9e87d1f9d05192147458',
    ('mixed50', 0): '38e836306440958c5be590df4e3ed6b5',
    ('mixed50', 1): '2ca68202820100ce786ecba8f2933009',
    ('mixed50', 2): '54c1e97cca5875ee0d85f420160e8fb7',
    ('nak_flood', 0): '17af575eaff4c2990e0a07ef27b89121',
    ('nak_flood', 1): '9b1d8e7f39fbdfd917554d07a67ffcb7',
    ('nak_flood', 2): '73ae8b56d669801978bcdb50387e29fd',
    ('overdriven', 0): '62bdce5d6c9d5351eed19726fb82b072',
    ('overdriven', 1): 'b35975d9b9032751651f00803cd07485',
    ('overdriven', 2): '7de0009cd994daf5a9d4ea254ba43d22',
    ('reorder', 0): '3b72aa166f3f25b65046199692b439e1',
    ('reorder', 1): 'c7596dcb3c09bf6d99c2a0e2050a4b6e',
    ('reorder', 2): 'db760d08b14bbb0cc2c5f730b0020089',
    ('replayed_session', 0): 'd6a556d4dda0ea0706e0bc104ad556dd',
    ('replayed_session', 1): 'e9da9fa23700c2a30638324bbf77a365',
    ('replayed_session', 2): 'e0b13b3f9c14a1d8743943ea29811656',
    ('sender_restart', 0): '5af4ba7bffec1c641edbed67d14c31db',
    ('sender_restart', 1): '9e2a971c6680e48143469fcdf0f8c3ec',
    ('sender_restart', 2): '98fc30f936d8e4dfd73532dee8fcc764',
    ('signed_loss5', 0): '9cb462a8eb9c6401c2f67a9ff75466aa',
    ('signed_loss5', 1): '6e2944b08539a04c0192f7d691dc6b0b',
    ('signed_loss5', 2): 'b96813ca55991c00e294176b8be46525',
    ('slow_receiver', 0): 'f69bdb118b377e66268ecf1d32ad297a',
    ('slow_receiver', 1): 'db1232c079578144e93da31d312c7beb',
    ('slow_receiver', 2): '9f830d91af6f3e4ec89424ab8f852415',
}


def main() -> None:
    print("PINS: dict[tuple[str, int], str] = {")
    for name, scenario in sorted(named_scenarios().items()):
        for seed in PINNED_SEEDS:
            print(f"    ({name!r}, {seed}): {fingerprint(run_classroom(scenario, seed))!r},")
    print("}")


if __name__ == "__main__":
    main()
