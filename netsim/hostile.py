"""What every hostile host of the simulator shares (netsim/forger.py, replayer.py,
flooder.py): the simulator drives it like a session, but it emits no events; it only queues
datagrams, and wakes at one timer."""

from __future__ import annotations

from protocol.config import Addr


class HostileHost:
    def __init__(self) -> None:
        self._out: list[tuple[bytes, Addr]] = []
        self._due: float | None = None  # when handle_timer has something to do

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        pass

    def handle_timer(self, now: float) -> None:
        pass

    def get_timer(self) -> float | None:
        return self._due

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return None
