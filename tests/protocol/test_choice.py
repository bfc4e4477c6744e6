"""SessionChoice: which announcement a receiver follows (asked for, plausible, trusted), when a
later one supersedes ours or tells our sender restarted, and what it remembers of the others."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from typing import Any

import pytest

from protocol.choice import RESTART_SILENCE, SessionChoice
from protocol.config import ReceiverConfig
from protocol.receiver_stats import ReceiverStats
from protocol.seal import Sealer
from protocol.trust import Signer, announce_payload
from protocol.wire import Announce

HOST = ("10.0.0.1", 9000)
KEY = Signer.from_raw(bytes(range(32)))
OTHER = Signer.from_raw(bytes(range(1, 33)))
IMAGE = hashlib.sha256(b"image").digest()
ROOT = hashlib.sha256(b"manifest root").digest()


def announce(sid: int = 1, signer: Signer | None = KEY, created: float = 1000.0,
             **kw: Any) -> Announce:
    msg = Announce(sid, kw.pop("name", "lab"), kw.pop("image_size", 1 << 20),
                   kw.pop("image_sha256", IMAGE), kw.pop("block_size", 1 << 20),
                   kw.pop("symbol_size", 1400),
                   "239.1.1.1", 9771, "", 9000, 0.0, manifest=kw.pop("manifest", ROOT),
                   created=created, key=signer.public_key if signer else b"", **kw)
    if signer is None:
        return msg
    return replace(msg, signature=signer.sign(announce_payload(msg.encode())))


def choice(**kw: Any) -> tuple[SessionChoice, ReceiverStats]:
    stats = ReceiverStats()
    return SessionChoice(ReceiverConfig(**kw), stats), stats


def test_a_plausible_trusted_session_may_be_followed() -> None:
    c, stats = choice(trusted=frozenset({KEY.fingerprint}))
    assert c.may_follow(announce(), HOST)
    assert (stats.garbled, stats.foreign, c.refused_sessions) == (0, 0, {})


def test_only_the_session_and_image_asked_for_are_followed_and_others_not_counted() -> None:
    c, stats = choice(session_name="win11", image_sha256=IMAGE)
    assert not c.may_follow(announce(name="lab"), HOST)
    assert not c.may_follow(announce(name="win11", image_sha256=bytes(32)), HOST)
    assert c.may_follow(announce(name="win11"), HOST)
    assert (stats.garbled, stats.foreign, c.refused_sessions) == (0, 0, {})


@pytest.mark.parametrize("change", [
    {"block_size": 0}, {"block_size": (64 << 20) + 1}, {"image_sha256": b"short"},
    {"image_size": (1 << 20) * (1 << 24) + 1},
])
def test_implausible_announcements_are_garbled(change: dict[str, Any]) -> None:
    c, stats = choice()
    assert not c.may_follow(announce(**change), HOST)
    assert stats.garbled == 1 and c.refused_sessions == {}


def test_an_untrusted_session_is_refused_with_its_reason_remembered_once() -> None:
    c, stats = choice(trusted=frozenset({KEY.fingerprint}))
    other = announce(7, OTHER)
    assert not c.may_follow(other, HOST)
    assert not c.may_follow(other, HOST)
    assert stats.foreign == 2
    assert c.refused_sessions == {
        7: ("lab", "10.0.0.1", f"it is signed by {OTHER.fingerprint}, which is not a trusted key")
    }


@pytest.mark.parametrize(("msg", "why"), [
    (announce(signer=None), "it is not signed, and only trusted senders are followed"),
    (announce(manifest=b""), "it has no signed manifest to check the blocks against"),
    (replace(announce(), created=5.0), "its signature does not verify (forged or damaged)"),
])
def test_distrust_says_why(msg: Announce, why: str) -> None:
    c, _stats = choice(trusted=frozenset({KEY.fingerprint}))
    assert c.distrust(msg) == why


def test_without_trusted_keys_only_a_broken_signature_is_distrusted() -> None:
    c, _stats = choice()
    assert c.distrust(announce(signer=None)) == ""
    assert c.distrust(announce(signer=OTHER)) == ""
    assert "does not verify" in c.distrust(replace(announce(), created=5.0))


def test_a_later_session_of_the_same_key_supersedes_ours_only_while_joining() -> None:
    c, _stats = choice()
    ours = announce(1, created=1000.0)
    later = announce(2, created=2000.0)
    assert c.supersedes(later, ours, KEY.public_key, joining=True)
    assert not c.supersedes(later, ours, KEY.public_key, joining=False)
    assert not c.supersedes(announce(3, created=1000.0), ours, KEY.public_key, joining=True)
    assert not c.supersedes(announce(4, OTHER, created=3000.0), ours, KEY.public_key,
                            joining=True)
    assert not c.supersedes(later, ours, b"", joining=True)  # ours unsigned: nothing to match
    assert not c.supersedes(later, None, KEY.public_key, joining=True)


def test_a_new_trusted_session_of_our_image_while_ours_is_silent_is_a_restart() -> None:
    c, _stats = choice(sender_timeout=10.0)
    ours = announce(1, created=1000.0)
    again = announce(2, created=1000.0)
    assert c.sender_restarted(again, ours, following=True, silent_for=RESTART_SILENCE)
    assert not c.sender_restarted(again, ours, following=True, silent_for=RESTART_SILENCE / 2)
    assert not c.sender_restarted(again, ours, following=False, silent_for=60.0)
    assert not c.sender_restarted(announce(3, created=999.0), ours, following=True,
                                  silent_for=60.0)  # an older session replayed
    assert not c.sender_restarted(announce(4, image_sha256=bytes(32)), ours, following=True,
                                  silent_for=60.0)  # another image
    assert not c.sender_restarted(replace(again, created=2000.0), ours, following=True,
                                  silent_for=60.0)  # its signature is broken
    assert not c.sender_restarted(again, None, following=True, silent_for=60.0)
    short, _ = choice(sender_timeout=1.0)  # a short sender_timeout bounds the silence
    assert short.sender_restarted(again, ours, following=True, silent_for=1.0)


def test_other_sessions_are_remembered_a_few_at_most() -> None:
    c, _stats = choice()
    for sid in range(40):
        c.note_other(announce(sid, name=f"s{sid}"), (f"10.0.0.{sid}", 9000))
    c.note_other(announce(0, name="renamed"), HOST)
    assert len(c.other_sessions) == 16
    assert c.other_sessions[0] == ("s0", "10.0.0.0")


def test_a_clear_announcement_a_sealing_receiver_cannot_open_is_remembered() -> None:
    c, _stats = choice()
    c.note_unopened(announce(5).encode(), HOST)
    ((name, host, why),) = c.refused_sessions.values()
    assert (name, host) == ("lab", "10.0.0.1") and "not encrypted" in why
    c.note_unopened(b"garbage", HOST)
    sealed = Sealer(bytes(32), random.Random(1)).seal(announce(6).encode())  # another key's
    c.note_unopened(sealed, HOST)
    assert list(c.refused_sessions) == [5]


def test_a_session_whose_packets_the_link_cannot_carry_is_passed_over_with_the_reason() -> None:
    # A jumbo-frame sender (8948-byte symbols: 9000-byte packets) and a laptop at MTU 1500.
    jumbo = announce(symbol_size=8948)
    c, stats = choice(max_datagram=1500 - 28)
    assert not c.may_follow(jumbo, HOST)
    name, host, why = c.refused_sessions[jumbo.session_id]
    assert why == ("its data packets are 9000 bytes and this laptop's link takes 1500 (serve "
                   "with --mtu 1500, or give every link of the room the same MTU)")
    assert stats.foreign == 1
    assert c.may_follow(announce(symbol_size=1448), HOST)  # exactly 1500: fits
    assert choice(max_datagram=0)[0].may_follow(jumbo, HOST)  # unknown: not judged


def test_an_encrypted_session_counts_its_seal_in_the_packet_size() -> None:
    stats = ReceiverStats()
    sealed = SessionChoice(ReceiverConfig(max_datagram=1500 - 28), stats, sealed=True)
    assert sealed.may_follow(announce(symbol_size=1448 - 32), HOST)
    assert not sealed.may_follow(announce(sid=2, symbol_size=1448), HOST)
