"""Fuzzing every path that takes bytes from the network: the decoders raise nothing but
BadPacket, the sessions swallow anything (counting it), nothing hangs, and a mutated signed
announcement is never followed by a receiver that trusts the key.

``make test`` runs FUZZ_EXAMPLES=300 per property (2,100 inputs, some of them lists of up to 20
datagrams); ``make fuzz`` runs 20,000 per property: 140,000 in all. Inputs are raw bytes and
mutations of valid datagrams of every kind, signed and sealed ones included.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.config import ReceiverConfig, SenderConfig
from protocol.errors import BadPacket
from protocol.receiver import ReceiverSession, ReceiverState
from protocol.roster import MAX_PER_HOST
from protocol.seal import Sealer
from protocol.sender import SenderSession
from protocol.trust import Signer, accept_payload
from protocol.wire import (
    Accept,
    Done,
    DoneAck,
    Join,
    Refuse,
    Status,
    Sync,
    data_header,
    decode_control_untrusted,
    decode_data_untrusted,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=1000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEY = Signer.from_raw(bytes(range(32)))
CONTROL = ("10.0.0.1", 9000)
IMAGE = bytes(300_000)
HOST = {"mac": "52:54:00:12:34:56", "dmi_serial": "PF2ABCDE", "disk_model": "QEMU NVMe Ctrl",
        "disk_serial": "NVME0001"}


def sender() -> SenderSession:
    config = SenderConfig(len(IMAGE), hashlib.sha256(IMAGE).digest(), CONTROL, name="lab",
                          block_size=65536)
    return SenderSession(config, random.Random(1), 0.0, signer=KEY)


def valid_datagrams() -> list[bytes]:
    """One of every kind a session may receive, signed where it would be."""
    s = sender()
    s.handle_timer(0.0)
    (announce,) = [d for d, _ in s.datagrams_to_send(0.0)]
    sid = s.session_id
    nonce = bytes(16)
    return [
        announce,
        Join(sid, 7, 0.0, 0.0, nonce, host=HOST).encode(),
        Accept(sid, 7, KEY.sign(accept_payload(sid, 7, nonce))).encode(),
        Status(sid, 7, 0.0, 0.0, 100, 1, [(0, [3, 2])], [(1, 3)], 5, 0, 1000, 90, 2).encode(),
        Sync(sid, 0.1, 0.01, 2, 100, 0.01, 3).encode(),
        Done(sid, 7, True, bytes(32), "", host=HOST).encode(),
        DoneAck(sid, 7).encode(),
        Refuse(sid, 7, "full").encode(),
        data_header(0, 2, sid, 1, 0, 0, 2000, 5) + bytes(1200),
    ]


SEALER = Sealer(bytes(range(32)), random.Random(5))
PLAIN = valid_datagrams()
SEALED = [SEALER.seal(d) for d in PLAIN]  # the same, as an encrypted session sends them
VALID = PLAIN + SEALED


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid datagram with bytes flipped, cut, inserted or replaced."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == 0 and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            del data[at:]
        elif op == 2:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


inputs = st.binary(max_size=1600) | mutated()


@FUZZ
@given(inputs)
def test_the_control_decoder_raises_only_bad_packet(data: bytes) -> None:
    with contextlib.suppress(BadPacket):
        decode_control_untrusted(data)


@FUZZ
@given(inputs)
def test_the_data_decoder_raises_only_bad_packet(data: bytes) -> None:
    with contextlib.suppress(BadPacket):
        decode_data_untrusted(data)


@FUZZ
@given(st.lists(inputs, min_size=1, max_size=20))
def test_the_sender_swallows_anything(datagrams: list[bytes]) -> None:
    s = sender()
    for i, data in enumerate(datagrams):
        s.receive_datagram(data, ("10.0.0.66", 5000 + i % 3), i * 0.001)
        s.handle_timer(i * 0.001)
        s.datagrams_to_send(i * 0.001)
    assert len(s.receivers) <= MAX_PER_HOST  # one host cannot grow it without bound


def feed(r: ReceiverSession, datagrams: list[bytes]) -> Iterator[None]:
    """Deliver each datagram and run the receiver's timer; yields after each one."""
    for i, data in enumerate(datagrams):
        r.receive_datagram(data, CONTROL, i * 0.001)
        r.handle_timer(i * 0.001)
        r.datagrams_to_send(i * 0.001)
        while r.next_event() is not None:
            pass
        yield


@FUZZ
@given(st.lists(inputs, min_size=1, max_size=20))
def test_a_trusting_receiver_swallows_anything_and_follows_no_forgery(
    datagrams: list[bytes],
) -> None:
    r = ReceiverSession(ReceiverConfig(trusted=frozenset({KEY.fingerprint})),
                        random.Random(2), 0.0)
    for _ in feed(r, datagrams):
        # A session is followed only if its announcement is the genuine one.
        if r.announce is not None:
            assert r.announce.encode() == PLAIN[0]
        # And never accepted: no ACCEPT here answers this receiver's own nonce.
        assert r.state is not ReceiverState.RECEIVING


@FUZZ
@given(st.lists(inputs, min_size=1, max_size=20))
def test_an_open_receiver_swallows_anything(datagrams: list[bytes]) -> None:
    r = ReceiverSession(ReceiverConfig(), random.Random(3), 0.0)
    for _ in feed(r, datagrams):
        pass


@FUZZ
@given(inputs)
def test_opening_raises_only_bad_packet_and_opens_no_altered_datagram(data: bytes) -> None:
    opener = Sealer(bytes(range(32)), random.Random(6))
    try:
        inner = opener.open_untrusted(data)
    except BadPacket:
        return
    assert data in SEALED and inner == PLAIN[SEALED.index(data)]  # only genuine ones open


@FUZZ
@given(st.lists(inputs, min_size=1, max_size=20))
def test_an_encrypted_receiver_swallows_anything_and_follows_only_the_sealed_session(
    datagrams: list[bytes],
) -> None:
    r = ReceiverSession(ReceiverConfig(), random.Random(4), 0.0,
                        sealer=Sealer(bytes(range(32)), random.Random(7)))
    for _ in feed(r, datagrams):
        if r.announce is not None:
            assert r.announce.encode() == PLAIN[0]
