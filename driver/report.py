"""What the daemons tell the user: progress snapshots and final reports, shared by both sides.

The daemons fill these plain records a few times a second; the renderers in
``driver/console.py`` turn them into a rich live view, plain lines or JSON lines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class ReceiverRow:
    """One laptop, as the sender sees it."""

    addr: str  # "10.77.0.2:41234"
    state: str  # joining, receiving, lagging, verifying, done, failed, dropped
    percent: float  # 0..100, blocks the receiver reported stored
    rate_bps: float  # image bytes/s it stored lately, in bits per second
    loss: float  # 0..1, datagrams it lost as far as it reported
    reason: str = ""  # why it failed or was dropped
    seconds: float | None = None  # from transfer start to its verified image
    verified_bytes: int = 0  # what a verified one read back and found right (0: not verified)
    # Who it says it is (receiver/identity.py): mac, hostname, dmi_serial, disk_model,
    # disk_serial.
    host: dict[str, str] = field(default_factory=dict)
    # By the sender's wall clock, seconds since the epoch: when it joined (or the transfer
    # started, if later) and when it finished (None: not yet).
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(slots=True)
class SenderSnapshot:
    name: str
    image_size: int
    elapsed: float  # seconds since the sender started
    state: str  # waiting, sending, complete
    percent: float  # 0..100, overall: blocks stored by the slowest active receiver
    rate_bps: float  # data sent lately, bits per second (headers included)
    eta: float | None  # seconds, None when unknown
    sent_bytes: int  # every DATA byte sent so far
    repair_bytes: int  # of which NAK-driven repair
    receivers: list[ReceiverRow] = field(default_factory=list)


@dataclass(slots=True)
class ReceiverSnapshot:
    session: str
    image_size: int
    elapsed: float  # seconds since the receiver started
    state: str  # discovering, joining, receiving, verifying, reporting, finished
    percent: float  # 0..100, blocks stored
    written_bytes: int  # image bytes stored so far (zero blocks count)
    rate_bps: float  # image bits stored per second lately
    eta: float | None
    loss: float  # 0..1, datagrams lost so far


@dataclass(slots=True)
class TaskSnapshot:
    """A job on this machine alone: a capture, an image check, an export."""

    title: str  # "capture /dev/nvme0n1 → golden.mci"
    state: str  # mapping, capturing, verifying, writing, done
    elapsed: float
    percent: float  # 0..100
    done_bytes: int
    total_bytes: int
    rate_bps: float  # bytes of the job per second, in bits per second
    eta: float | None
    note: str = ""  # e.g. "image 1.2 GiB (3.4x smaller)"


@dataclass(slots=True)
class FinalReport:
    """The last thing either daemon prints; ``--json`` emits it as one JSON line."""

    role: str  # "sender", "receiver" or the job's name ("capture", "verify", "export")
    ok: bool
    message: str  # one plain sentence
    seconds: float  # transfer time (sender: start → complete; receiver: join → verified)
    image_size: int
    details: dict[str, Any] = field(default_factory=dict)
    receivers: list[ReceiverRow] = field(default_factory=list)  # sender only

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["event"] = "final"
        return data


class RateMeter:
    """Bits per second of a growing byte count, sampled at most every ``interval`` seconds;
    ``weight`` is the share of the newest sample (1.0: no smoothing)."""

    def __init__(self, now: float, total: int, *, interval: float = 0.25,
                 weight: float = 0.5) -> None:
        self.interval = interval
        self.weight = weight
        self.rate = 0.0
        self._when = now
        self._total = total

    def update(self, now: float, total: int) -> float:
        elapsed = now - self._when
        if elapsed >= self.interval:
            sample = (total - self._total) * 8 / elapsed
            self.rate += self.weight * (sample - self.rate)
            self._when, self._total = now, total
        return self.rate
