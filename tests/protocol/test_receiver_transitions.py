"""ReceiverSession's states: one table of transitions, every change through it; what the driver
may call when; and when its journal has served (``journal_spent``)."""

from __future__ import annotations

import hashlib

import pytest

from protocol.errors import LocalProtocolError
from protocol.events import BlockReady, Joined, VerifyImage
from protocol.receiver import _TRANSITIONS, ReceiverState, _Input
from protocol.wire import Accept
from tests.protocol.test_receiver import (
    CONTROL,
    announce_of,
    data_only,
    events_of,
    feed,
    new_receiver,
    random_image,
    setup,
    state,
)


def test_the_table_goes_forward_only_and_every_state_may_finish() -> None:
    happy = [ReceiverState.DISCOVERING]
    for on in (_Input.FOLLOW, _Input.ACCEPTED, _Input.ALL_STORED, _Input.HASHED, _Input.FINISH):
        happy.append(_TRANSITIONS[(happy[-1], on)])
    assert happy == [s for s in ReceiverState if s is not ReceiverState.COMPARING]
    delta = [ReceiverState.JOINING]  # a delta receiver compares its disk before receiving
    for on in (_Input.ACCEPTED_DELTA, _Input.COMPARED):
        delta.append(_TRANSITIONS[(delta[-1], on)])
    assert delta == [ReceiverState.JOINING, ReceiverState.COMPARING, ReceiverState.RECEIVING]
    assert {s for s, on in _TRANSITIONS if on is _Input.FINISH} == set(ReceiverState) - {
        ReceiverState.FINISHED}
    assert not any(s is ReceiverState.FINISHED for s, _on in _TRANSITIONS)  # the end
    order = list(ReceiverState)
    back = {(s, on) for (s, on), new in _TRANSITIONS.items() if order.index(new) < order.index(s)}
    assert back == {(ReceiverState.VERIFYING, _Input.READ_BACK_BAD)}  # the one way back


def test_an_impossible_transition_raises_and_changes_nothing() -> None:
    receiver = new_receiver()
    with pytest.raises(LocalProtocolError, match="impossible while discovering"):
        receiver._transition(_Input.ACCEPTED)
    assert state(receiver) is ReceiverState.DISCOVERING


def test_the_driver_cannot_answer_for_blocks_before_a_session_is_found() -> None:
    receiver = new_receiver()
    with pytest.raises(LocalProtocolError, match="before SessionFound"):
        receiver.block_stored(0)
    with pytest.raises(LocalProtocolError, match="before SessionFound"):
        receiver.block_rejected(0)


def test_blocks_stored_before_the_accept_wait_for_it_to_verify() -> None:
    sender, _joined, datagrams = setup(random_image(2))  # a session under way with another
    receiver = new_receiver()
    receiver.receive_datagram(announce_of(sender, 1.0), CONTROL, 0.0)  # (its next one)
    events_of(receiver)
    feed(receiver, data_only(datagrams))
    assert events_of(receiver) == []  # complete, but held: nothing handed out
    for index in range(receiver.nblocks):  # a driver answering for blocks it never got
        receiver.block_stored(index)
    assert state(receiver) is ReceiverState.JOINING
    receiver.receive_datagram(Accept(sender.session_id, receiver.receiver_id).encode(),
                              CONTROL, 0.1)
    assert state(receiver) is ReceiverState.VERIFYING
    joined, *ready, verify = events_of(receiver)
    assert joined == Joined(sender.session_id) and verify == VerifyImage()
    assert [e.index for e in ready if isinstance(e, BlockReady)] == [0, 1]


@pytest.mark.parametrize("good", [True, False])
def test_the_journal_is_spent_once_the_whole_image_was_hashed(good: bool) -> None:
    image = random_image(2)
    _sender, receiver, datagrams = setup(image)
    assert not receiver.journal_spent
    feed(receiver, datagrams)
    for ev in events_of(receiver):
        if isinstance(ev, BlockReady):
            receiver.block_stored(ev.index)
    assert state(receiver) is ReceiverState.VERIFYING and not receiver.journal_spent
    digest = hashlib.sha256(image if good else b"other").digest()
    receiver.image_verified(digest, 1.0)
    assert receiver.journal_spent  # verified, or proven wrong: the next run starts afresh


def test_a_run_that_fails_keeps_its_journal() -> None:
    _sender, receiver, datagrams = setup(random_image(2))
    feed(receiver, datagrams[:5])
    receiver.fail("the disk is full", 1.0)
    assert state(receiver) is ReceiverState.FINISHED and not receiver.journal_spent
