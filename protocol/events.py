"""Events the sessions hand to their drivers (``next_event()``), frozen and slotted."""

from __future__ import annotations

from dataclasses import dataclass

from .assembly import BlockAssembly
from .config import Addr


class Event:
    __slots__ = ()


# --- sender -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockWanted(Event):
    """Read and encode image block ``index``, then call ``SenderSession.feed_block``."""

    index: int


@dataclass(frozen=True, slots=True)
class ReceiverJoined(Event):
    receiver_id: int
    addr: Addr


@dataclass(frozen=True, slots=True)
class TransferStarted(Event):
    receivers: int


@dataclass(frozen=True, slots=True)
class ReceiverFinished(Event):
    receiver_id: int
    addr: Addr
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class SessionComplete(Event):
    """Every joined receiver reported; ``failed`` counts those that did not verify."""

    ok: int
    failed: int


# --- receiver ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionFound(Event):
    """A session was chosen: the driver joins ``data_addr`` now."""

    session_id: int
    name: str
    image_size: int
    data_addr: Addr
    sender_addr: Addr


@dataclass(frozen=True, slots=True)
class Joined(Event):
    session_id: int


@dataclass(frozen=True, slots=True)
class BlockReady(Event):
    """Every group of block ``index`` has enough symbols. The driver decodes it
    (``assembly.decode_block``, off the event loop), writes it, then calls
    ``ReceiverSession.block_stored(index)`` or, if it failed its check, ``block_rejected``."""

    index: int
    assembly: BlockAssembly
    digest: bytes = b""  # the signed manifest's SHA-256 of the raw block (b"": unchecked)


@dataclass(frozen=True, slots=True)
class VerifyImage(Event):
    """All blocks are stored: hash the whole target and call ``image_verified(sha256)``."""


@dataclass(frozen=True, slots=True)
class Finished(Event):
    """The receiver is done; ``ok`` only if the whole image verified."""

    ok: bool
    reason: str
