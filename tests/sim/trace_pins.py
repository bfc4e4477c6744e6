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
    ('bursty20', 0): '25be41a1a8942ed88edc7a8ed9a25c68',
    ('bursty20', 1): '875f893071cc7a7321ef69f386957cf6',
    ('bursty20', 2): '6b5192b3cf1a76f8b66e088e86bd9cb8',
    ('clean', 0): '9d3ed54a30415f41d5ef08a3b607b94a',
    ('clean', 1): 'b9189dbd1b3b09fa2fb312a6f0101b4c',
    ('clean', 2): 'f331801fe22a5ef991847b449cc8549f',
    ('corrupt', 0): '00bfdad77fbf71c0ed85280fde777ac8',
    ('corrupt', 1): '7af7daeb9df8ff00312199cc9d6bbe20',
    ('corrupt', 2): 'de76f0dc17ecffd1b9f6308d9ce6fb06',
    ('crash_restart', 0): '172f3d12de1dfe0850ac444cf91b64d8',
    ('crash_restart', 1): 'e7f6354f1f4a3dede1151a30eee31a6c',
    ('crash_restart', 2): '93029144f0fe9b39031e007ef90ba8d5',
    ('dead_receiver', 0): '1c6504b755bbee814d127c01cd03d355',
    ('dead_receiver', 1): '47f9189b0d6e54e6930536e86b565596',
    ('dead_receiver', 2): '704dd3877108340bc96433410d98a9d1',
    ('duplicate', 0): 'd6b26de3a2b64ce999843b174c7cf09b',
    ('duplicate', 1): '14f63cf83ddd64c998e8880e475c9c58',
    ('duplicate', 2): 'f5d6b8ac0bf7569ec6327141a09bc13b',
    ('encrypted_loss5', 0): 'f93377160d3657e000a3a31cedb0be3b',
    ('encrypted_loss5', 1): '4e416239120ec421b595466fb7b6c0e3',
    ('encrypted_loss5', 2): '77c10a4131a3005968787fe71544062d',
    ('forged_blocks', 0): '8afac75749ba6f190be046494c790271',
    ('forged_blocks', 1): '3ee4d26157ecffd8d2dee468d51895c9',
    ('forged_blocks', 2): '211bebefd1796d48d6f3237b8c8d9483',
    ('forged_manifest', 0): '02c6f71043df032f58a7f25d23ace7ba',
    ('forged_manifest', 1): '52b967b44ddae726163459de1becdfc9',
    ('forged_manifest', 2): '0533a46a867b9816c43ee36e2f9e859e',
    ('late_after_pass', 0): '3d8571a2b26d934c470275605f8385ec',
    ('late_after_pass', 1): 'fe09c7c1c00b3bf8f073df9152795735',
    ('late_after_pass', 2): 'b174aeef3aa6a457520095d455b12d0f',
    ('late_joiner', 0): '9f5f099c58b197533e347f56f748180c',
    ('late_joiner', 1): 'a3e9d0418169e90f42b046b85437b7b3',
    ('late_joiner', 2): 'd96fb18104bf50ac0855d8a013bd3a7e',
    ('late_refused', 0): '0989fe0c1177a4e353584b697669a41e',
    ('late_refused', 1): 'ecfc86915a2e5c7d15f4aeef5d8b88c7',
    ('late_refused', 2): 'f5a714ef519dbddb13e469c999cb00dc',
    ('loss5', 0): '025fb6db9e57d298887c44229a8829e3',
    ('loss5', 1): 'fdb3f6369b9b9d4d18d70209249bb147',
    ('loss5', 2): 'b0dde09c96d23b8ec763bf38a7fd978d',
    ('mixed50', 0): '0d18e07cca720c8974d357fd8684d66d',
    ('mixed50', 1): 'f9508899ccf1db8892bf6eafc7a32e10',
    ('mixed50', 2): '8d179e9e2e3bc47ab58d1431c91858e3',
    ('nak_flood', 0): '2e288ddc2987de7ec92761442c090bfd',
    ('nak_flood', 1): 'f678ab9a78b1bdda4f26c5200f72f46a',
    ('nak_flood', 2): '4b9fe7271ae27850776d0d3a5a6bd45f',
    ('overdriven', 0): '247dd069df10a4808d21b9422cac54c7',
    ('overdriven', 1): '2bdf966f0507fc4ca37b75b32ca9c4f1',
    ('overdriven', 2): '5c46b0ab2997a8f5ee6ee467c3d4599f',
    ('prepared', 0): '725e57d6510e2e985f205bb94aefae81',
    ('prepared', 1): '034b8e84032d4967a2b9465834221c7f',
    ('prepared', 2): 'a528f2002638317b6e5ca2c2bbc4718a',
    ('reorder', 0): 'e05b9dd1823bd68e5bdaded05e2eab9c',
    ('reorder', 1): 'ddd71c4c37fdc3fa2a6618821acfc9d3',
    ('reorder', 2): '972650a50e7cdb8c1416828080394b16',
    ('replayed_session', 0): 'aa5f8613dce1d8366f1ade8d1dbda62c',
    ('replayed_session', 1): 'f58feb09204262f77c0b9b5c35b5ab50',
    ('replayed_session', 2): '95c44e077ac3d2fdf244c56629ab0953',
    ('sender_restart', 0): '4edce8077a3743faa2aba73d5fa4820c',
    ('sender_restart', 1): '540ea094cbf3724a5ea305815f8ee513',
    ('sender_restart', 2): 'd5c30648b2dba1346f53cf355426d3d2',
    ('signed_loss5', 0): '457e8ab484da79fc7d0d98364fe499a2',
    ('signed_loss5', 1): '8dfd09a795253d51a7416755c3b11dc6',
    ('signed_loss5', 2): '555548a9765cf5823bc6ed06db74ed07',
    ('slow_receiver', 0): '94cc71d4d30cce00593cfdd9dc62fe66',
    ('slow_receiver', 1): '51f92a7315e744dadfa181d195fd339a',
    ('slow_receiver', 2): '60a8ebb39fbd405c166cf1e6fc4c240c',
}


def main() -> None:
    print("PINS: dict[tuple[str, int], str] = {")
    for name, scenario in sorted(named_scenarios().items()):
        for seed in PINNED_SEEDS:
            print(f"    ({name!r}, {seed}): {fingerprint(run_classroom(scenario, seed))!r},")
    print("}")


if __name__ == "__main__":
    main()
