"""The status page's control actions on a real SenderSession: each takes effect, wakes the
loop, and says in one sentence what it did or why it cannot."""

from __future__ import annotations

from typing import Any, cast

import pytest

from mcastd.serve import SenderDaemon
from mcastd.status_api import ControlError
from mcastd.status_control import DROPPED_REASON, STOPPED_REASON, DaemonControls
from protocol.events import Outcome
from protocol.sender import SenderSession, SenderState
from tests.protocol.test_sender import R1, R2, join, random_image, sender_for


class FakeDriver:
    def __init__(self) -> None:
        self.pokes = 0
        self.stopped = False

    def poke(self) -> None:
        self.pokes += 1

    def stop(self) -> None:
        self.stopped = True


class FakeDaemon:
    """What DaemonControls uses of a SenderDaemon, with SenderDaemon's own stop()."""

    def __init__(self, session: SenderSession) -> None:
        self.session = session
        self.driver = FakeDriver()
        self.last_snapshot = None
        self.error: str | None = None

    def stop(self, reason: str) -> None:
        SenderDaemon.stop(cast(Any, self), reason)


def controls_for(min_receivers: int, joined: int) -> tuple[DaemonControls, FakeDaemon]:
    session, _ = sender_for(random_image(100_000), min_receivers=min_receivers)
    for rid, addr in list(zip((1, 2), (R1, R2), strict=True))[:joined]:
        join(session, rid, addr, 0.0)
    daemon = FakeDaemon(session)
    return DaemonControls(cast(Any, daemon)), daemon


async def test_start_now_and_expected() -> None:
    controls, daemon = controls_for(3, 2)
    assert controls.expected() == 3
    assert controls.set_expected(4) == "Expecting 4 laptop(s)."
    assert controls.expected() == 4 and daemon.session.state is SenderState.WAITING
    assert controls.start_now() == "Started with 2 laptop(s)."
    assert daemon.session.state is SenderState.SENDING and daemon.driver.pokes == 2
    with pytest.raises(ControlError, match="started already"):
        controls.start_now()


async def test_start_now_with_nobody_yet_says_it_waits_for_the_first() -> None:
    controls, daemon = controls_for(3, 0)
    assert "first" in controls.start_now()
    assert daemon.session.state is SenderState.WAITING


async def test_drop_by_the_address_the_table_shows() -> None:
    controls, daemon = controls_for(2, 2)
    assert controls.drop(f"{R2[0]}:{R2[1]}") == f"Dropped {R2[0]}:{R2[1]}."
    info = daemon.session.receivers[2]
    assert (info.outcome, info.reason) == (Outcome.DROPPED, DROPPED_REASON)
    with pytest.raises(ControlError, match="finished already"):
        controls.drop(f"{R2[0]}:{R2[1]}")
    with pytest.raises(ControlError, match="No laptop"):
        controls.drop("10.9.9.9:1")


async def test_stop_aborts_and_ends_the_daemon_with_a_plain_message() -> None:
    controls, daemon = controls_for(1, 1)
    controls.stop()
    assert daemon.session.state is SenderState.COMPLETE and daemon.driver.stopped
    assert daemon.error == f"the session was {STOPPED_REASON} from the status page."
    with pytest.raises(ControlError, match="over already"):
        controls.stop()
    with pytest.raises(ControlError, match="over already"):
        controls.set_expected(2)
