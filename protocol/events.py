"""Events the sessions hand to their drivers (``next_event()``), frozen and slotted."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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


class Outcome(Enum):
    """How a receiver ended, as the sender saw it."""

    VERIFIED = "verified"  # DONE with the image's SHA-256
    FAILED = "failed"  # DONE without it: it gave up, or its image does not match
    DISK_ERROR = "disk error"  # DONE without it because the laptop's own disk failed
    DROPPED = "dropped"  # silent for receiver_timeout, or stalled although served


@dataclass(frozen=True, slots=True)
class ReceiverFinished(Event):
    receiver_id: int
    addr: Addr
    outcome: Outcome
    reason: str  # why it failed or was dropped, in words for the admin

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.VERIFIED


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
    """Every group of block ``index`` has enough symbols. The driver decodes and checks it
    (``blockcheck.verified_block``, off the event loop), writes its ``length`` raw bytes at
    ``offset`` on the target, then calls ``ReceiverSession.block_stored(index)`` or, if it
    failed its check, ``block_rejected``."""

    index: int
    offset: int  # where the raw block goes on the target
    length: int  # its raw size: block_size, or less for the image's last block
    assembly: BlockAssembly
    digest: bytes = b""  # the signed manifest's SHA-256 of the raw block (b"": unchecked)


@dataclass(frozen=True, slots=True)
class VerifyImage(Event):
    """All blocks are stored: hash the whole target and call ``image_verified(sha256)``.
    ``per_block`` (a session with a used-block map): instead, read back every used block
    ``ReceiverSession.used_blocks()`` lists and check its SHA-256; call
    ``image_verified(announce.image_sha256, now, verified_bytes)`` if all match, else
    ``fail`` with the first that does not."""

    per_block: bool = False


@dataclass(frozen=True, slots=True)
class CompareDisk(Event):
    """A delta receiver holds the map and the manifest: read each block
    ``ReceiverSession.blocks_to_compare()`` lists from the disk, and pass the indices of those
    whose SHA-256 matches to ``compared`` (protocol/delta.py)."""


@dataclass(frozen=True, slots=True)
class FreeBlocks(Event):
    """The used-block map arrived: these (offset, length) byte ranges of the target hold
    nothing of the image. The driver discards them (TRIM on a disk, holes in a file)."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Finished(Event):
    """The receiver is done; ``ok`` only if the whole image verified."""

    ok: bool
    reason: str
