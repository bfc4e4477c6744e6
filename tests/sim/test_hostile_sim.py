"""Hostile hosts in the simulator, each over many seeds: a forged manifest, an earlier session
replayed, a NAK flood from a joined receiver. Trusted laptops write the exact image, and not one
wrong byte ever reaches a disk."""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import replace

import pytest

from netsim.classroom import SIM_KEY, ClassroomResult, run_classroom
from netsim.flooder import MAX_SENT, Flooder
from netsim.forger import Forger
from netsim.replayer import Replayer
from netsim.scenarios import NAK_FLOOD, SCENARIOS
from protocol.config import DATA_ADDR
from protocol.manifest import Manifest, block_digest, verify_chunk
from protocol.roster import MAX_PER_HOST
from protocol.trust import announce_payload, verify
from protocol.wire import (
    Announce,
    ManifestChunk,
    PacketType,
    decode_control_as_untrusted,
    packet_type_untrusted,
)

from .test_classroom import SEEDS, assert_every_survivor_exact
from .trace_pins import PINS, fingerprint

# ---- forged manifest chunks ------------------------------------------------------------------


def test_forged_chunks_prove_themselves_against_the_forgers_root_only() -> None:
    """The attack is well formed: each chunk comes once with a proof from the forger's own tree
    (it verifies against that root) and once with garbage; none against the signed root."""
    block = 64 * 1024
    image = random.Random(2).randbytes(64 * block)
    real = Manifest(b"".join(block_digest(image[i : i + block])
                             for i in range(0, len(image), block)))
    announce = Announce(7, "image", len(image), hashlib.sha256(image).digest(), block, 1440,
                        *DATA_ADDR, "10.0.0.1", 9000, 0.0, manifest=real.root)
    forger = Forger(1, manifest=True)
    forger.receive_datagram(announce.encode(), ("10.0.0.1", 9000), 0.0)
    chunks: list[ManifestChunk] = []
    while (due := forger.get_timer()) is not None:
        forger.handle_timer(due)
        for data, _ in forger.datagrams_to_send(due):
            if packet_type_untrusted(data) == PacketType.MANIFEST:
                chunks.append(decode_control_as_untrusted(data, ManifestChunk))
    assert len(chunks) == 2 * real.nchunks == forger.forged_chunks == 6
    ours = Manifest(b"".join(c.digests for c in chunks[::2]))
    assert ours.digests != real.digests
    for index in range(real.nchunks):
        pair = chunks[2 * index : 2 * index + 2]
        assert [c.index for c in pair] == [index, index]
        assert [verify_chunk(ours.root, ours.nblocks, index, c.digests, c.proof)
                for c in pair] == [True, False]
        assert not any(verify_chunk(real.root, real.nblocks, index, c.digests, c.proof)
                       for c in pair)


@pytest.mark.parametrize("seed", SEEDS)
def test_forged_manifest_chunks_are_refused_and_no_wrong_byte_is_written(seed: int) -> None:
    result = run_classroom(SCENARIOS["forged_manifest"], seed, trace=False)
    assert_every_survivor_exact(result)
    forger = result.hostile
    assert isinstance(forger, Forger)
    assert forger.forged_chunks > 0 and forger.forged_datagrams > 0
    for r in result.receivers:
        assert r.forged_bytes == 0
        # Forged chunks reached every laptop before the sender's and failed their proof (the
        # links neither corrupt nor duplicate: nothing else is garbled).
        assert 0 < r.garbled <= forger.forged_chunks, (r.index, r.garbled)
    # The forged blocks were decoded and refused against the signed digests.
    assert any(r.rejected_blocks > 0 for r in result.receivers)


# ---- an earlier session replayed -------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_an_earlier_session_replayed_is_ignored_and_no_wrong_byte_is_written(seed: int) -> None:
    result = run_classroom(SCENARIOS["replayed_session"], seed, trace=False)
    assert_every_survivor_exact(result)
    replayer = result.hostile
    assert isinstance(replayer, Replayer)
    # What it replayed is genuine: announcements of this image signed by the same key.
    announces = [decode_control_as_untrusted(d, Announce) for d, _ in replayer.recording
                 if packet_type_untrusted(d) == PacketType.ANNOUNCE]
    assert announces and all(
        m.key == SIM_KEY.public_key
        and verify(m.key, announce_payload(replace(m, signature=b"").encode()), m.signature)
        for m in announces)
    assert replayer.replayed == len(replayer.recording) > 1000
    for r in result.receivers:
        assert r.forged_bytes == 0
        # Every replayed datagram that reached it was counted as another session's (2 % loss).
        assert r.foreign >= 0.9 * replayer.replayed, (r.index, r.foreign)


# ---- a NAK flood -----------------------------------------------------------------------------


@functools.cache
def flooded_and_alone(seed: int) -> tuple[ClassroomResult, ClassroomResult]:
    """The classroom with the flooder, and the same without it (shared by the tests below)."""
    pinned = PINS.get((NAK_FLOOD.name, seed))
    flooded = run_classroom(NAK_FLOOD, seed, trace=pinned is not None)
    if pinned is not None:
        assert fingerprint(flooded) == pinned, f"nak_flood seed {seed} behaves differently now"
    return flooded, run_classroom(replace(NAK_FLOOD, hostile=None), seed, trace=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_nak_flood_is_limited_and_no_wrong_byte_is_written(seed: int) -> None:
    result, _alone = flooded_and_alone(seed)
    flooder = result.hostile
    assert isinstance(flooder, Flooder)
    assert flooder.sent == MAX_SENT
    n = NAK_FLOOD.n_receivers
    assert len(result.receivers) == n  # the flooder is none of them
    for r in result.receivers:
        assert r.ok is True and r.image_matches is True, r
        assert r.forged_bytes == 0
    assert result.complete is not None and result.complete.ok == n
    # The flooder's own receiver and its made-up ones, never more than one host may run; they
    # went silent after the flood and were dropped as failed.
    assert 1 <= result.complete.failed <= MAX_PER_HOST
    assert result.limited > 0  # STATUS over the rate, impostors, receivers over the host cap


# A receiver's NAKs are served ahead of the first pass only up to the repair credit it earned
# by what it lost (protocol/roster.py); the flooder loses nothing, so its claims wait for the
# catch-up after the first pass and the honest laptops hardly notice.
@pytest.mark.parametrize("seed", SEEDS)
def test_a_nak_flood_does_not_slow_the_honest_laptops(seed: int) -> None:
    result, alone = flooded_and_alone(seed)
    assert result.finish_time <= 1.5 * alone.finish_time
