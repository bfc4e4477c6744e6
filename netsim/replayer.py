"""A hostile host for the simulator that replays an earlier session into the live one.

The ``Recorder`` sits on the discovery and data groups of an earlier, complete session of the
same image by the same signed sender and keeps every datagram it hears: ANNOUNCEs with valid
signatures, the manifest chunks with valid proofs, every data symbol, only another session id.
The ``Replayer`` sends them again, in order and at a bounded pace, into the live session once
it is under way (the laptops followed the live sender already).
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.config import DISCOVERY_ADDR, Addr
from protocol.errors import BadPacket
from protocol.wire import PacketType, packet_type_untrusted

from .hostile import HostileHost

REPLAY_DELAY = 0.05  # seconds after the live session's first datagram on its data group
RATE = 20_000.0  # replayed datagrams per second
TICK = 0.001  # seconds between two bursts
MAX_REPLAYED = 30_000


class Recorder(HostileHost):
    """Keeps every datagram heard, with the group it went to (ANNOUNCE: the discovery group;
    everything else heard here: the data group)."""

    def __init__(self, data_addr: Addr, discovery_addr: Addr = DISCOVERY_ADDR) -> None:
        super().__init__()
        self._groups = discovery_addr, data_addr
        self.datagrams: list[tuple[bytes, Addr]] = []

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        try:
            announce = packet_type_untrusted(data) == PacketType.ANNOUNCE
        except BadPacket:
            return
        if len(self.datagrams) < MAX_REPLAYED:
            self.datagrams.append((data, self._groups[0] if announce else self._groups[1]))


class Replayer(HostileHost):
    """Listens on the data group; ``REPLAY_DELAY`` after the live session's first datagram
    there, sends ``recording`` at ``RATE`` (the live ones it hears are not recorded)."""

    def __init__(self, recording: Sequence[tuple[bytes, Addr]]) -> None:
        super().__init__()
        self.recording = recording[:MAX_REPLAYED]
        self._next = 0
        self.started_at: float | None = None
        self.replayed = 0

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        if self.started_at is None:
            self.started_at = self._due = now + REPLAY_DELAY

    def handle_timer(self, now: float) -> None:
        if self._due is None or now < self._due:
            return
        burst = self.recording[self._next : self._next + round(RATE * TICK)]
        self._next += len(burst)
        self._out.extend(burst)
        self.replayed += len(burst)
        self._due = now + TICK if self._next < len(self.recording) else None
