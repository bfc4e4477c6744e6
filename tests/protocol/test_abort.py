"""A sender that cannot go on (its image failed to read) tells the laptops why, signed as its
session is; they stop at once, keeping what they stored, and a forged ABORT stops nobody."""

from __future__ import annotations

import hashlib
import random

from protocol.config import ReceiverConfig, SenderConfig
from protocol.receiver import ReceiverSession, ReceiverState
from protocol.sender import ABORT_COPIES, SenderSession, SenderState
from protocol.trust import Signer
from protocol.wire import Abort, Announce, decode_control_untrusted
from tests.protocol.test_receiver import CONTROL

KEY = Signer.from_raw(bytes(range(32)))


def session_pair(signed: bool) -> tuple[SenderSession, ReceiverSession]:
    config = SenderConfig(image_size=1 << 20, image_sha256=hashlib.sha256(b"i").digest(),
                          control_addr=CONTROL)
    sender = SenderSession(config, random.Random(1), 0.0, signer=KEY if signed else None)
    receiver = ReceiverSession(ReceiverConfig(), random.Random(2), 0.0)
    sender.handle_timer(0.0)
    for dg, _addr in sender.datagrams_to_send(0.0):
        if isinstance(decode_control_untrusted(dg), Announce):
            receiver.receive_datagram(dg, CONTROL, 0.0)
    assert receiver.state is ReceiverState.JOINING
    return sender, receiver


def test_an_abort_reaches_the_laptops_who_stop_and_say_why() -> None:
    sender, receiver = session_pair(signed=True)
    sender.abort("reading /srv/win11.mci failed with an I/O error.", 1.0)
    assert sender.state is SenderState.COMPLETE
    out = sender.datagrams_to_send(1.0)
    aborts = [dg for dg, addr in out if addr == sender.config.data_addr
              and isinstance(decode_control_untrusted(dg), Abort)]
    assert len(aborts) == ABORT_COPIES
    receiver.receive_datagram(aborts[0], CONTROL, 1.0)
    assert receiver.result == (False, "the sender stopped: reading /srv/win11.mci failed with "
                                      "an I/O error")
    assert receiver.sender_lost  # so --wait-for-sender waits for the next one
    sender.abort("again", 2.0)  # once over, nothing more
    assert sender.datagrams_to_send(2.0) == []


def test_a_forged_abort_stops_nobody() -> None:
    sender, receiver = session_pair(signed=True)
    forged = Abort(sender.session_id, "stop", b"\0" * 64).encode()
    receiver.receive_datagram(forged, CONTROL, 1.0)
    assert receiver.result is None and receiver.stats.garbled == 1
    other = Abort(sender.session_id ^ 1, "stop").encode()  # another session's
    receiver.receive_datagram(other, CONTROL, 1.0)
    assert receiver.result is None
