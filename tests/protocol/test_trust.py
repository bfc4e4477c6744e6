"""Signed sessions: a receiver follows only a live sender holding a trusted key; forged,
tampered, truncated, unsigned or replayed sessions are refused with a reason, nothing written."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from typing import Any

from protocol.config import ReceiverConfig, SenderConfig
from protocol.events import BlockReady, Event, Finished, Joined, SessionFound
from protocol.manifest import Manifest, block_digest
from protocol.receiver import ReceiverSession, ReceiverState
from protocol.sender import SenderSession
from protocol.trust import (
    Signer,
    accept_payload,
    announce_payload,
    fingerprint,
    verify,
)
from protocol.wire import (
    Accept,
    Announce,
    Join,
    ManifestChunk,
    data_header,
    decode_control_untrusted,
)

CONTROL = ("10.0.0.1", 9000)
KEY = Signer.from_raw(bytes(range(32)))
OTHER = Signer.from_raw(bytes(range(1, 33)))


def sender(signer: Signer | None = KEY, now: float = 0.0, manifest: bool = True,
           created: float = 1000.0, seed: int = 1) -> SenderSession:
    image = bytes(100_000)  # one block
    config = SenderConfig(len(image), hashlib.sha256(image).digest(), CONTROL, name="lab",
                          created=created)
    return SenderSession(config, random.Random(seed), now, signer=signer,
                         manifest=Manifest(block_digest(image)) if manifest else None)


def receiver(**kw: Any) -> ReceiverSession:
    return ReceiverSession(ReceiverConfig(**kw), random.Random(2), 0.0)


def announce(s: SenderSession, now: float = 0.0) -> Announce:
    s.handle_timer(now)
    for dg, _ in s.datagrams_to_send(now):
        msg = decode_control_untrusted(dg)
        if isinstance(msg, Announce):
            return msg
    raise AssertionError("no ANNOUNCE")


def events(r: ReceiverSession) -> list[Event]:
    out = []
    while (e := r.next_event()) is not None:
        out.append(e)
    return out


def handshake(s: SenderSession, r: ReceiverSession, msg: Announce, now: float = 0.0) -> None:
    """Deliver ``msg`` to the receiver, its JOIN to the sender, the sender's ACCEPT back."""
    r.receive_datagram(msg.encode(), CONTROL, now)
    for dg, _ in r.datagrams_to_send(now):
        s.receive_datagram(dg, ("10.0.0.9", 5000), now)
    for dg, _ in s.datagrams_to_send(now):
        if isinstance(decode_control_untrusted(dg), Accept):
            r.receive_datagram(dg, CONTROL, now)


def test_fingerprints_and_signatures() -> None:
    assert fingerprint(KEY.public_key).startswith("SHA256:") and len(KEY.fingerprint) == 50
    assert KEY.fingerprint != OTHER.fingerprint
    sig = KEY.sign(b"data")
    assert verify(KEY.public_key, b"data", sig)
    assert not verify(KEY.public_key, b"date", sig)
    assert not verify(OTHER.public_key, b"data", sig)
    assert not verify(KEY.public_key, b"data", sig[:-1])  # truncated
    assert not verify(b"short", b"data", sig)


def test_a_signed_announce_carries_the_key_and_verifies() -> None:
    msg = announce(sender())
    assert msg.key == KEY.public_key
    assert verify(msg.key, announce_payload(replace(msg, signature=b"").encode()), msg.signature)


def test_a_trusted_live_sender_is_followed() -> None:
    s = sender()
    r = receiver(trusted=frozenset({KEY.fingerprint}))
    handshake(s, r, announce(s))
    assert r.state is ReceiverState.RECEIVING and r.sender_key == KEY.public_key
    assert [type(e) for e in events(r)] == [SessionFound, Joined]


def refused(r: ReceiverSession, msg: Announce) -> str:
    r.receive_datagram(msg.encode(), CONTROL, 0.0)
    assert r.state is ReceiverState.DISCOVERING and events(r) == []
    assert r.datagrams_to_send(0.0) == []  # not even a JOIN
    return r.refused_sessions[msg.session_id][2]


def test_a_session_signed_by_another_key_is_refused() -> None:
    why = refused(receiver(trusted=frozenset({KEY.fingerprint})), announce(sender(OTHER)))
    assert why == f"it is signed by {OTHER.fingerprint}, which is not a trusted key"


def test_a_signed_session_without_a_manifest_is_refused_under_trust() -> None:
    why = refused(receiver(trusted=frozenset({KEY.fingerprint})), announce(sender(manifest=False)))
    assert why == "it has no signed manifest to check the blocks against"


def test_an_unsigned_session_is_refused_under_trust() -> None:
    why = refused(receiver(trusted=frozenset({KEY.fingerprint})), announce(sender(None)))
    assert why == "it is not signed, and only trusted senders are followed"


def test_a_tampered_announce_is_refused_even_without_trust() -> None:
    msg = announce(sender())
    forged = replace(msg, image_sha256=hashlib.sha256(b"evil").digest())
    assert "does not verify" in refused(receiver(), forged)
    assert "does not verify" in refused(receiver(), replace(msg, signature=msg.signature[:40]))
    swapped = replace(msg, key=OTHER.public_key)  # someone else's key on our signature
    assert "does not verify" in refused(receiver(), swapped)


def test_without_trust_an_unsigned_session_is_followed_unauthenticated() -> None:
    s = sender(None)
    r = receiver()
    handshake(s, r, announce(s))
    assert r.state is ReceiverState.RECEIVING and r.sender_key == b""


def test_a_replayed_announce_gets_no_accept_and_nothing_is_written() -> None:
    old = announce(sender())  # recorded from a session that is over
    r = receiver(trusted=frozenset({KEY.fingerprint}), sender_timeout=3.0)
    r.receive_datagram(old.encode(), CONTROL, 0.0)
    assert [type(e) for e in events(r)] == [SessionFound]  # the driver joins the group
    ((join, _),) = [(decode_control_untrusted(d), a) for d, a in r.datagrams_to_send(0.0)]
    assert isinstance(join, Join)
    # The attacker replays an ACCEPT of that old session, for an old nonce: refused; so is an
    # unsigned one.
    stale = Accept(old.session_id, r.receiver_id,
                   KEY.sign(accept_payload(old.session_id, r.receiver_id, b"\0" * 16)))
    r.receive_datagram(stale.encode(), CONTROL, 0.5)
    r.receive_datagram(Accept(old.session_id, r.receiver_id).encode(), CONTROL, 0.6)
    assert r.state is ReceiverState.JOINING
    now = 0.0
    while r.state is ReceiverState.JOINING:
        now = r.get_timer() or now
        r.receive_datagram(old.encode(), CONTROL, now)  # replayed over and over
        r.handle_timer(now)
        r.datagrams_to_send(now)
    assert now <= 3.0 + 1e-9
    (finished,) = events(r)  # no BlockReady ever: nothing reached the disk
    assert isinstance(finished, Finished) and not finished.ok
    assert "never accepted us" in finished.reason


def test_an_accept_signed_for_our_nonce_by_the_key_is_taken() -> None:
    s = sender()
    r = receiver(trusted=frozenset({KEY.fingerprint}))
    r.receive_datagram(announce(s).encode(), CONTROL, 0.0)
    ((join, _),) = [(decode_control_untrusted(d), a) for d, a in r.datagrams_to_send(0.0)]
    assert isinstance(join, Join) and len(join.nonce) == 16
    forged = Accept(s.session_id, r.receiver_id,
                    OTHER.sign(accept_payload(s.session_id, r.receiver_id, join.nonce)))
    r.receive_datagram(forged.encode(), CONTROL, 0.1)
    assert r.state is ReceiverState.JOINING
    good = Accept(s.session_id, r.receiver_id,
                  KEY.sign(accept_payload(s.session_id, r.receiver_id, join.nonce)))
    r.receive_datagram(good.encode(), CONTROL, 0.2)
    assert r.state is ReceiverState.RECEIVING


def test_blocks_complete_before_the_accept_wait_for_it() -> None:
    s = sender()  # its image is all zeros: a ZERO block is one empty symbol
    r = receiver(trusted=frozenset({KEY.fingerprint}))
    r.receive_datagram(announce(s).encode(), CONTROL, 0.0)
    events(r)
    zero_block = data_header(0, 0, s.session_id, 0, 0, 0, 0, 0)  # ZERO kind, empty payload
    r.receive_datagram(zero_block, CONTROL, 0.1)
    assert r.stats.received == 1 and events(r) == []  # complete, but without its digest
    m = Manifest(block_digest(bytes(100_000)))
    forged = ManifestChunk(s.session_id, 0, block_digest(b"evil"), m.proof(0))
    r.receive_datagram(forged.encode(), CONTROL, 0.1)
    assert r.stats.garbled == 1 and events(r) == []  # a chunk that does not prove itself
    r.receive_datagram(ManifestChunk(s.session_id, 0, m.chunk(0), m.proof(0)).encode(),
                       CONTROL, 0.1)
    assert events(r) == []  # now complete and checkable, but held until the ACCEPT
    ((join, _),) = [(decode_control_untrusted(d), a) for d, a in r.datagrams_to_send(0.1)]
    assert isinstance(join, Join)
    good = Accept(s.session_id, r.receiver_id,
                  KEY.sign(accept_payload(s.session_id, r.receiver_id, join.nonce)))
    r.receive_datagram(good.encode(), CONTROL, 0.2)
    joined, ready = events(r)
    assert isinstance(joined, Joined) and isinstance(ready, BlockReady)
    assert ready.digest == block_digest(bytes(100_000))


def test_a_replayed_old_session_gives_way_to_the_live_one_of_the_same_key() -> None:
    old = announce(sender(created=1000.0))  # recorded last week
    live = sender(created=2000.0, seed=2)
    r = receiver(trusted=frozenset({KEY.fingerprint}))
    r.receive_datagram(old.encode(), CONTROL, 0.0)  # the replay is heard first
    zero_block = data_header(0, 0, old.session_id, 0, 0, 0, 0, 0)
    r.receive_datagram(zero_block, CONTROL, 0.01)  # and some of its data
    assert [type(e) for e in events(r)] == [SessionFound] and r.session_id == old.session_id
    r.datagrams_to_send(0.0)
    handshake(live, r, announce(live, 0.1), 0.1)
    found, joined = events(r)  # the live session is followed and accepts us
    assert isinstance(found, SessionFound) and found.session_id == live.session_id
    assert isinstance(joined, Joined) and r.state is ReceiverState.RECEIVING
    assert r.blocks_done == 0  # nothing of the replayed session counts
    r.receive_datagram(old.encode(), CONTROL, 0.2)  # replayed again: older, ignored
    assert r.session_id == live.session_id and r.stats.foreign >= 1


def test_a_forged_later_announce_does_not_pull_a_laptop_away() -> None:
    s = sender(created=1000.0)
    r = receiver(trusted=frozenset({KEY.fingerprint}))
    r.receive_datagram(announce(s).encode(), CONTROL, 0.0)
    events(r)
    forged = replace(announce(sender(created=1000.0, seed=3)), created=9e9)  # signature broken
    r.receive_datagram(forged.encode(), CONTROL, 0.01)
    other = announce(sender(OTHER, created=3000.0, seed=4))  # later, but another key
    r.receive_datagram(other.encode(), CONTROL, 0.02)
    assert r.session_id == s.session_id and events(r) == []


def test_an_accepted_laptop_stays_with_its_session() -> None:
    s = sender(created=1000.0)
    r = receiver(trusted=frozenset({KEY.fingerprint}))
    handshake(s, r, announce(s))
    assert r.state is ReceiverState.RECEIVING
    events(r)
    r.receive_datagram(announce(sender(created=2000.0, seed=5)).encode(), CONTROL, 0.1)
    assert r.session_id == s.session_id and events(r) == []


def test_a_replayed_older_session_does_not_pass_for_a_restarted_sender() -> None:
    s = sender(created=2000.0)
    r = receiver(trusted=frozenset({KEY.fingerprint}))
    handshake(s, r, announce(s))
    events(r)
    old = announce(sender(created=1000.0, seed=6))  # same image, last week
    r.receive_datagram(old.encode(), CONTROL, 5.0)  # while ours has been silent for 5 s
    assert r.state is ReceiverState.RECEIVING and events(r) == []
    newer = announce(sender(created=3000.0, seed=7))  # a real restart
    r.receive_datagram(newer.encode(), CONTROL, 5.1)
    (finished,) = events(r)
    assert isinstance(finished, Finished) and "restarted" in finished.reason
