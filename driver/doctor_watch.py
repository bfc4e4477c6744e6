"""The doctor's ears on the discovery group and a data group: which sessions are announced,
who sends to the data group, and which doctor responders announce themselves. Senders are
named without an IPv6 zone, as sessions announce themselves ("fe80::1", not "fe80::1%eth0"):
the two must compare equal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import trio

from protocol.config import Addr
from protocol.diagnosis import GroupWatch, SessionSeen
from protocol.doctor import Here, decode_doctor_untrusted
from protocol.errors import BadPacket
from protocol.wire import Announce, PacketType, decode_control_as_untrusted, packet_type_untrusted

from .batchio import RecvRing
from .udp import UdpEndpoint, open_group_listener

_Handler = Callable[[bytes, Addr], None]
_BUFFER = 1 << 20  # the data group may carry a session at full rate: only sources matter


def unzoned(host: str) -> str:
    return host.split("%", 1)[0]


@dataclass(frozen=True, slots=True)
class ResponderSeen:
    here: Here
    source: str  # the address its announcement came from (with its zone, if link-local)


class GroupListener:
    """Records what arrives until cancelled (:meth:`run`); read :attr:`watch` at any time."""

    def __init__(self, ifname: str, discovery: Addr, data_group: Addr | None) -> None:
        """``data_group``: also count who sends to it (None: sessions draw their own groups,
        only the announcements tell which)."""
        self.discovery = open_group_listener(discovery, ifname, gro=False, buffer=_BUFFER)
        self.data: UdpEndpoint | None = None
        if data_group is not None:
            try:
                self.data = open_group_listener(data_group, ifname, gro=False, buffer=_BUFFER)
            except BaseException:
                self.discovery.close()
                raise
        self.watch = GroupWatch(seconds=0.0)
        self.started = trio.current_time()
        self.responders: list[ResponderSeen] = []
        self.responder_found = trio.Event()

    def close(self) -> None:
        self.discovery.close()
        if self.data is not None:
            self.data.close()

    def snapshot(self) -> GroupWatch:
        """What was heard so far, and for how long."""
        watch = self.watch
        return GroupWatch(round(trio.current_time() - self.started, 1), dict(watch.sessions),
                          dict(watch.data_sources), watch.dropped, set(watch.sealed_senders))

    async def run(self) -> None:
        self.started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._drain, self.discovery, self._on_discovery)
            if self.data is not None:
                nursery.start_soon(self._drain, self.data, self._on_data)

    async def _drain(self, endpoint: UdpEndpoint, handle: _Handler) -> None:
        ring = RecvRing(16)
        while True:
            await endpoint.wait_readable()
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while endpoint.receive_into(ring):
                    for i in range(ring.count):
                        handle(ring.datagram(i), ring.address_of(i))

    def _on_discovery(self, data: bytes, source: Addr) -> None:
        try:
            ptype = packet_type_untrusted(data)
            if ptype == PacketType.ANNOUNCE:
                msg = decode_control_as_untrusted(data, Announce)
                sender = unzoned(msg.control_host or source[0])
                self.watch.sessions[msg.session_id] = SessionSeen(
                    msg.session_id, msg.name, sender, (msg.data_host, msg.data_port))
            elif ptype == PacketType.DOCTOR_HERE:
                here = decode_doctor_untrusted(data)
                if isinstance(here, Here) and all(
                        r.here.responder_id != here.responder_id for r in self.responders):
                    self.responders.append(ResponderSeen(here, source[0]))
                    self.responder_found.set()
            elif ptype == PacketType.SEALED:
                # An encrypted session's announcement.
                self.watch.sealed_senders.add(unzoned(source[0]))
            else:
                self.watch.dropped += 1  # not for the doctor
        except BadPacket:
            self.watch.dropped += 1

    def _on_data(self, data: bytes, source: Addr) -> None:
        del data  # whatever it is, someone sends to the group
        sender = unzoned(source[0])
        self.watch.data_sources[sender] = self.watch.data_sources.get(sender, 0) + 1

