"""Another session announcing our data group: its laptops and ours would each receive both
streams (and drop the other's datagrams by their session tag), at the cost of both rooms'
links. Each session draws its own group (1 in 32,768 to meet by chance); two admins who both
pass the same ``--group`` meet for sure. The sender hears the discovery group, where every
session announces itself, and says so once per other session.

Pure: the daemon feeds it what the discovery group carries.
"""

from __future__ import annotations

from protocol.config import Addr
from protocol.errors import BadPacket
from protocol.wire import Announce, decode_control_untrusted

_MAX_NOTED = 16  # other sessions remembered: a flood of forged announcements stays bounded


class GroupSharers:
    def __init__(self, session_id: int, data_addr: Addr) -> None:
        self.session_id = session_id
        self.data_addr = data_addr
        self._noted: set[int] = set()

    def heard(self, data: bytes, source: Addr) -> str | None:
        """The warning for this datagram, if it is another session's announcement of our
        group heard for the first time; else None (sealed or foreign datagrams too)."""
        try:
            msg = decode_control_untrusted(data)
        except BadPacket:
            return None
        if (not isinstance(msg, Announce) or msg.session_id == self.session_id
                or (msg.data_host, msg.data_port) != self.data_addr
                or msg.session_id in self._noted or len(self._noted) >= _MAX_NOTED):
            return None
        self._noted.add(msg.session_id)
        host, port = self.data_addr
        group = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return (f"session {msg.name!r} from {msg.control_host or source[0]} sends to this "
                f"session's group {group} too: both rooms' laptops receive both streams; "
                "restart one of them without --group, so that it draws its own")
