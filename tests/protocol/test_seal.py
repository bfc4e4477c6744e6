"""Encrypted sessions: every datagram sealed with the shared secret; a sniffer learns nothing
of the image, and nobody without the secret can join, inject or be followed."""

from __future__ import annotations

import hashlib
import random

import pytest

from protocol.blockcodec import BlockEncoder
from protocol.config import ReceiverConfig, SenderConfig
from protocol.errors import BadPacket
from protocol.events import BlockReady, BlockWanted
from protocol.manifest import Manifest, block_digest
from protocol.receiver import ReceiverSession, ReceiverState
from protocol.seal import SEAL_OVERHEAD, Sealer, is_sealed, session_symbol_size
from protocol.sender import SenderSession
from protocol.wire import Join, decode_control_untrusted

SECRET = bytes(range(32))
OTHER = bytes(range(1, 33))
CONTROL = ("10.0.0.1", 9000)
LAPTOP = ("10.0.0.9", 5000)
IMAGE = random.Random(7).randbytes(300_000)  # random: stored RAW, so plaintext would show


def sealer(secret: bytes = SECRET, seed: int = 1) -> Sealer:
    return Sealer(secret, random.Random(seed))


def test_a_sealed_datagram_opens_with_the_key_only() -> None:
    a, b = sealer(seed=1), sealer(seed=2)
    sealed = a.seal(b"MC\x02\x02hello")
    assert is_sealed(sealed) and len(sealed) == 9 + SEAL_OVERHEAD
    assert b.open_untrusted(sealed) == b"MC\x02\x02hello"  # another endpoint, same secret
    with pytest.raises(BadPacket):
        sealer(OTHER).open_untrusted(sealed)


def test_any_damaged_or_truncated_byte_is_refused() -> None:
    a = sealer()
    sealed = a.seal(bytes(100))
    for i in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[i] ^= 0x01
        with pytest.raises(BadPacket):
            a.open_untrusted(bytes(damaged))
    for cut in (0, 4, 16, len(sealed) - 1):
        with pytest.raises(BadPacket):
            a.open_untrusted(sealed[:cut])
    with pytest.raises(BadPacket):
        a.open_untrusted(b"MC\x02\x02" + bytes(100))  # in the clear


def test_nonces_never_repeat_even_when_the_counter_wraps() -> None:
    a = sealer()
    nonces = {a.seal(b"x")[4:16] for _ in range(10_000)}
    assert len(nonces) == 10_000
    a._counter = 1 << 32  # as after 4 G datagrams
    wrapped = a.seal(b"x")[4:16]
    assert wrapped not in nonces and wrapped[8:] == bytes(4)  # a fresh random part, count 0
    assert a.open_untrusted(a.seal(b"y")) == b"y"


def test_the_secret_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        Sealer(b"short", random.Random(1))


def make_sender(secret: bytes | None = SECRET) -> SenderSession:
    config = SenderConfig(len(IMAGE), hashlib.sha256(IMAGE).digest(), CONTROL, name="secret",
                          block_size=1 << 17, symbol_size=session_symbol_size(sealed=True))
    blocks = [IMAGE[i : i + (1 << 17)] for i in range(0, len(IMAGE), 1 << 17)]
    return SenderSession(config, random.Random(3), 0.0,
                         manifest=Manifest(b"".join(block_digest(b) for b in blocks)),
                         sealer=sealer(seed=3) if secret else None)


def make_receiver(secret: bytes | None = SECRET) -> ReceiverSession:
    return ReceiverSession(ReceiverConfig(), random.Random(4), 0.0,
                           sealer=sealer(secret, seed=4) if secret else None)


def run(s: SenderSession, r: ReceiverSession, wire: list[bytes], until: float = 2.0) -> None:
    """Both sessions over a perfect link in 1 ms steps, every sender datagram kept in ``wire``
    (what a sniffer on the LAN would capture)."""
    encoder = BlockEncoder()
    now = 0.0
    while now < until and r.state is not ReceiverState.FINISHED:
        s.handle_timer(now)
        while (event := s.next_event()) is not None:
            if isinstance(event, BlockWanted):
                start = event.index << 17
                kind, payload = encoder.encode(IMAGE[start : start + (1 << 17)])
                s.feed_block(event.index, kind, payload)
        for dg, _ in s.datagrams_to_send(now):
            wire.append(dg)
            r.receive_datagram(dg, CONTROL, now)
        if (t := r.get_timer()) is not None and t <= now:
            r.handle_timer(now)
        for dg, _ in r.datagrams_to_send(now):
            s.receive_datagram(dg, LAPTOP, now)
        while (event := r.next_event()) is not None:
            if isinstance(event, BlockReady):
                r.block_stored(event.index)
        now += 0.001


def test_an_encrypted_session_delivers_every_block_and_a_sniffer_learns_nothing() -> None:
    s, r = make_sender(), make_receiver()
    wire: list[bytes] = []
    run(s, r, wire)
    assert r.blocks_done == r.nblocks == 3  # every block decoded from opened datagrams
    assert wire and all(is_sealed(dg) for dg in wire)
    for dg in wire:
        with pytest.raises(BadPacket):
            decode_control_untrusted(dg)  # not even the announcement reads
    captured = b"".join(wire)
    for start in range(0, len(IMAGE) - 16, 4096):  # no 16 bytes of the image in the clear
        assert IMAGE[start : start + 16] not in captured
    assert b"secret" not in captured and hashlib.sha256(IMAGE).digest() not in captured


def test_a_laptop_without_the_secret_finds_nothing_and_counts_what_it_cannot_open() -> None:
    s, r = make_sender(), make_receiver(secret=None)
    run(s, r, [], until=0.3)
    assert r.state is ReceiverState.DISCOVERING and r.announce is None
    assert r.stats.unopened > 0


def test_a_laptop_with_another_secret_opens_nothing() -> None:
    s, r = make_sender(), make_receiver(secret=OTHER)
    run(s, r, [], until=0.3)
    assert r.state is ReceiverState.DISCOVERING and r.stats.unopened > 0


def test_a_laptop_with_a_secret_ignores_a_session_in_the_clear() -> None:
    s, r = make_sender(secret=None), make_receiver()
    run(s, r, [], until=0.3)
    assert r.state is ReceiverState.DISCOVERING
    ((name, _host, why),) = r.refused_sessions.values()
    assert name == "secret" and "not encrypted" in why


def test_the_sender_ignores_whoever_lacks_the_secret() -> None:
    s = make_sender()
    s.handle_timer(0.0)
    s.datagrams_to_send(0.0)
    rogue = Join(s.session_id, 42, nonce=bytes(16)).encode()  # right session id, in the clear
    s.receive_datagram(rogue, LAPTOP, 0.0)
    s.receive_datagram(sealer(OTHER).seal(rogue), LAPTOP, 0.0)
    assert s.receivers == {} and s.stats.garbled == 2
    s.receive_datagram(sealer(seed=9).seal(rogue), LAPTOP, 0.0)
    assert list(s.receivers) == [42]
