"""The admin's controls (the status page): start now, change the expected count, drop one
laptop (told with an ABORT of its own), stop everyone."""

from __future__ import annotations

import pytest

from protocol.events import Outcome, ReceiverFinished, SessionComplete, TransferStarted
from protocol.sender import ABORT_COPIES, SenderState
from protocol.wire import Abort, DoneAck, Refuse, decode_control_untrusted
from tests.protocol.test_abort import session_pair
from tests.protocol.test_sender import (
    R1,
    R2,
    R3,
    done,
    events_of,
    join,
    joined,
    random_image,
    sender_for,
    state,
    status,
)

DROPPED = "dropped by the admin"


def test_start_now_starts_with_fewer_than_expected() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=3)
    join(sender, 1, R1, 0.0)
    join(sender, 2, R2, 0.1)
    assert state(sender) is SenderState.WAITING
    events_of(sender)
    sender.start_now(0.5)
    assert state(sender) is SenderState.SENDING and sender.started_at == 0.5
    assert events_of(sender)[0] == TransferStarted(2)
    sender.start_now(0.6)  # once started, nothing more
    assert sender.started_at == 0.5


def test_start_now_without_receivers_starts_with_the_first() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=3)
    sender.start_now(0.0)
    assert state(sender) is SenderState.WAITING
    join(sender, 1, R1, 1.0)
    assert state(sender) is SenderState.SENDING


def test_set_expected_moves_the_start() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=3)
    assert sender.expected == 3
    join(sender, 1, R1, 0.0)
    sender.set_expected(4, 0.1)
    join(sender, 2, R2, 0.2)
    join(sender, 3, R3, 0.3)
    assert state(sender) is SenderState.WAITING
    sender.set_expected(3, 0.4)  # three joined: that is enough now
    assert state(sender) is SenderState.SENDING and sender.started_at == 0.4
    with pytest.raises(ValueError, match="at least 1"):
        sender.set_expected(0, 0.5)


def test_a_lower_expected_count_than_joined_waits_for_nothing_more() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=5)
    join(sender, 1, R1, 0.0)
    sender.set_expected(1, 0.1)
    assert state(sender) is SenderState.SENDING


def aborts_to(out: list[tuple[bytes, tuple[str, int]]], addr: tuple[str, int]) -> list[Abort]:
    found = []
    for dg, to in out:
        msg = decode_control_untrusted(dg)
        if isinstance(msg, Abort) and to == addr:
            found.append(msg)
    return found


def test_a_dropped_receiver_is_finished_told_and_the_others_go_on() -> None:
    sender, sha = joined(2)
    assert sender.drop_receiver(2, DROPPED, 1.0)
    out = sender.datagrams_to_send(1.0)
    told = aborts_to(out, R2)
    assert len(told) == ABORT_COPIES and told[0].reason == DROPPED
    assert aborts_to(out, sender.config.data_addr) == []  # the others are not stopped
    assert sender.receivers[2].outcome is Outcome.DROPPED
    assert sender.receivers[2].reason == DROPPED
    assert events_of(sender) == [ReceiverFinished(2, R2, Outcome.DROPPED, DROPPED)]
    assert state(sender) is SenderState.SENDING
    assert not sender.drop_receiver(2, DROPPED, 1.1)  # already finished
    assert not sender.drop_receiver(99, DROPPED, 1.1)  # unknown
    done(sender, 1, R1, sha, now=2.0)
    assert events_of(sender)[-1] == SessionComplete(1, 1)
    assert state(sender) is SenderState.COMPLETE


def test_a_dropped_receiver_that_still_speaks_is_told_again_and_never_acked() -> None:
    sender, sha = joined(2)
    sender.drop_receiver(2, DROPPED, 1.0)
    sender.datagrams_to_send(1.0)
    status(sender, 2, 10, addr=R2, now=1.5)
    assert [a.reason for a in aborts_to(sender.datagrams_to_send(1.5), R2)] == [DROPPED]
    done(sender, 2, R2, sha, now=2.0)
    out = sender.datagrams_to_send(2.0)
    assert [a.reason for a in aborts_to(out, R2)] == [DROPPED]
    assert not any(isinstance(decode_control_untrusted(dg), DoneAck) for dg, _ in out)
    # Another host using its id is not answered.
    status(sender, 2, 10, addr=("10.0.0.99", 1), now=3.0)
    assert aborts_to(sender.datagrams_to_send(3.0), ("10.0.0.99", 1)) == []


def test_the_dropped_receiver_stops_with_the_reason_on_a_signed_session() -> None:
    sender, receiver = session_pair(signed=True)
    receiver.handle_timer(0.0)
    for dg, _to in receiver.datagrams_to_send(0.0):
        sender.receive_datagram(dg, R1, 0.0)
    assert receiver.receiver_id in sender.receivers
    sender.drop_receiver(receiver.receiver_id, DROPPED, 1.0)
    for dg, to in sender.datagrams_to_send(1.0):
        if to == R1:
            receiver.receive_datagram(dg, sender.config.control_addr, 1.0)
    assert receiver.result == (False, f"the sender stopped: {DROPPED}")


def test_dropping_the_last_one_in_waiting_then_starting_completes_at_once() -> None:
    sender, _ = sender_for(random_image(100_000), min_receivers=2)
    join(sender, 1, R1, 0.0)
    sender.drop_receiver(1, DROPPED, 0.5)
    assert state(sender) is SenderState.WAITING
    sender.start_now(1.0)
    assert state(sender) is SenderState.COMPLETE
    assert events_of(sender)[-1] == SessionComplete(0, 1)


def test_a_dropped_laptop_joining_again_is_refused_with_the_reason() -> None:
    sender, _ = joined(2)
    sender.drop_receiver(2, DROPPED, 1.0)
    sender.datagrams_to_send(1.0)
    join(sender, 7, R2, 2.0)  # --wait-for-sender: a new session on the same socket
    ((dg, to),) = sender.datagrams_to_send(2.0)
    assert to == R2 and decode_control_untrusted(dg) == Refuse(sender.session_id, 7, DROPPED)
    assert 7 not in sender.receivers
    join(sender, 8, R3, 2.0)  # anyone else still joins late
    assert 8 in sender.receivers
