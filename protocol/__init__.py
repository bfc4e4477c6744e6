"""mcastd's protocol core: pure state machines, no I/O, no clock, no global randomness.

Drivers (the trio daemons, the simulator) feed datagrams and ``now`` in and send what
``datagrams_to_send`` returns; see ``SenderSession`` and ``ReceiverSession``.
"""

from .config import Addr, ReceiverConfig, SenderConfig
from .errors import BadPacket, LocalProtocolError
from .receiver import ReceiverSession, ReceiverState
from .sender import SenderSession, SenderState
from .wire import PROTOCOL_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "Addr",
    "BadPacket",
    "LocalProtocolError",
    "ReceiverConfig",
    "ReceiverSession",
    "ReceiverState",
    "SenderConfig",
    "SenderSession",
    "SenderState",
]
