"""The other sessions a sender hears on the discovery group, where every session announces
itself, and what they mean for ours. Pure: the daemon feeds it what the group carries.

* **Another session on our data group**: its laptops and ours would each receive both streams
  (and drop the other's datagrams by their session tag), at the cost of both rooms' links.
  Each session draws its own group (1 in 32,768 to meet by chance); two admins who both pass
  the same ``--group`` meet for sure. Said once per other session.
* **Other sessions sending from this machine** (their announcements give our own address):
  they leave by the same interface, so the ceiling, which is that link's (``--rate``, else its
  speed), is shared: each takes ``ceiling / sessions``. Each socket then blocks at the
  interface's queue instead of all of them overflowing it, and the shares are equal from the
  first datagram. Sessions still waiting for laptops do not count; one that ended or hangs is
  forgotten NEIGHBOUR_SILENCE after its last announcement.
"""

from __future__ import annotations

from driver.units import format_addr
from protocol.config import Addr
from protocol.errors import BadPacket
from protocol.wire import Announce, decode_control_untrusted

NEIGHBOUR_SILENCE = 3.0  # sessions announce every second while sending
_MAX_NOTED = 16  # sessions remembered of each kind: forged announcements stay bounded


class Neighbours:
    def __init__(self, session_id: int, data_addr: Addr, control_host: str) -> None:
        self.session_id = session_id
        self.data_addr = data_addr
        self.control_host = control_host
        self._sharers: set[int] = set()
        self._sending_here: dict[int, float] = {}  # session id → when last heard

    def heard(self, data: bytes, source: Addr, now: float) -> str | None:
        """Take one datagram of the discovery group; the warning to show, if it is another
        session's announcement of our data group heard for the first time."""
        try:
            msg = decode_control_untrusted(data)
        except BadPacket:
            return None  # sealed (an encrypted session), foreign or garbled
        if not isinstance(msg, Announce) or msg.session_id == self.session_id:
            return None
        here = msg.control_host == self.control_host and msg.started
        if here and (msg.session_id in self._sending_here
                     or len(self._sending_here) < _MAX_NOTED):
            self._sending_here[msg.session_id] = now
        if ((msg.data_host, msg.data_port) != self.data_addr or msg.session_id in self._sharers
                or len(self._sharers) >= _MAX_NOTED):
            return None
        self._sharers.add(msg.session_id)
        return (f"session {msg.name!r} from {msg.control_host or source[0]} sends to this "
                f"session's group {format_addr(self.data_addr)} too: both rooms' laptops "
                "receive both streams; restart one of them without --group, so that it draws "
                "its own")

    def sending_here(self, now: float) -> int:
        """Other sessions sending from this machine, heard within NEIGHBOUR_SILENCE."""
        for session_id, when in list(self._sending_here.items()):
            if now - when > NEIGHBOUR_SILENCE:
                del self._sending_here[session_id]
        return len(self._sending_here)
