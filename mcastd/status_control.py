"""The status page's hands on a running SenderDaemon: each control action calls one pure
SenderSession method and wakes the loop so what it queued goes out at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from driver.report import SenderSnapshot
from protocol.sender import SenderState

from .status_api import ControlError

if TYPE_CHECKING:
    from .serve import SenderDaemon

DROPPED_REASON = "dropped by the admin"
STOPPED_REASON = "stopped by the admin"


class DaemonControls:
    def __init__(self, daemon: SenderDaemon) -> None:
        self.daemon = daemon

    def snapshot(self) -> SenderSnapshot | None:
        return self.daemon.last_snapshot

    def expected(self) -> int:
        return self.daemon.session.expected

    def _check_running(self) -> None:
        if self.daemon.session.state is SenderState.COMPLETE:
            raise ControlError("The session is over already.")

    def start_now(self) -> str:
        session = self.daemon.session
        self._check_running()
        if session.state is not SenderState.WAITING:
            raise ControlError("The transfer has started already.")
        session.start_now(trio.current_time())
        self.daemon.driver.poke()
        if session.state is SenderState.WAITING:
            return "No laptop joined yet: the transfer starts with the first that does."
        return f"Started with {len(session.receivers)} laptop(s)."

    def set_expected(self, count: int) -> str:
        session = self.daemon.session
        self._check_running()
        session.set_expected(count, trio.current_time())
        self.daemon.driver.poke()
        return f"Expecting {count} laptop(s)."

    def drop(self, receiver: str) -> str:
        session = self.daemon.session
        self._check_running()
        for info in session.receivers.values():
            if f"{info.addr[0]}:{info.addr[1]}" == receiver:
                if not session.drop_receiver(info.receiver_id, DROPPED_REASON,
                                             trio.current_time()):
                    raise ControlError(f"{receiver} has finished already.")
                self.daemon.driver.poke()
                return f"Dropped {receiver}."
        raise ControlError(f"No laptop {receiver[:64]} in this session.")

    def stop(self) -> str:
        self._check_running()
        self.daemon.stop(STOPPED_REASON)
        return "Stopped: the laptops are told and keep what they stored."
