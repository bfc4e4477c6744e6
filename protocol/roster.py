"""The sender's roster: every receiver that joined, and the rules the sender applies to them.

A receiver is taken while the session has room (``max_receivers``, MAX_PER_HOST from one
host), heard through its own token bucket, measured (delivery, loss, RTT), served repairs
ahead of the first pass only up to the credit its reported loss earned, and finished with an
``Outcome``: by its DONE, or dropped when it went silent or stopped making progress.
"""

from __future__ import annotations

from .config import Addr, SenderConfig
from .delta import LackAssembly
from .events import Outcome
from .ratecontrol import WINDOW_DATAGRAMS, Delivery
from .sender_stats import SenderStats
from .wire import Status

# STATUS taken from one receiver: this many per second, this many at once (a legitimate one
# sends one per NAK interval, at least 2 ms apart, plus a heartbeat).
STATUS_RATE = 1000.0
STATUS_BURST = 8
MAX_PER_HOST = 16  # receivers one IP address may run (a test host runs several)
# Repair symbols a receiver may have queued ahead of the first pass: it starts with some and
# earns twice what it shows it lost (sequence numbers seen minus datagrams arrived, from its
# own STATUS). Beyond that its NAKs wait until after the first pass, like a lagging one's: a
# host claiming everything is missing while it receives everything cannot stall the room.
REPAIR_CREDIT_START = 64.0
REPAIR_CREDIT_MAX = 16384.0
# A receiver that reported no delivery window although this many datagrams went out since it
# joined is set aside as lagging (8 windows: its link would have to be 8 times slower still).
UNHEARD_DATAGRAMS = 8 * WINDOW_DATAGRAMS


class ReceiverInfo:
    """What the sender knows of one receiver (for NAK merging, GRTT and the summary)."""

    __slots__ = (
        "receiver_id", "addr", "joined_at", "last_heard", "rtt", "seq_seen", "blocks_done",
        "received", "dropped", "loss", "naks", "outcome", "reason", "finished_at",
        "delivery", "progress_at", "reported", "status_tokens", "status_at",
        "repair_credit", "credit_seq", "credit_arrived", "join_seq", "delta", "lacks",
        "lacked", "host", "verified_bytes",
    )

    def __init__(self, receiver_id: int, addr: Addr, now: float,
                 host: dict[str, str] | None = None) -> None:
        self.receiver_id = receiver_id
        self.addr = addr
        self.host = host or {}  # who it says it is (JOIN.host): for the admin's summary only
        self.joined_at = now
        self.last_heard = now
        self.rtt: float | None = None
        self.seq_seen = -1
        self.blocks_done = 0
        self.received = 0
        self.dropped = 0
        self.loss = 0.0  # fraction of data datagrams it reports lost on the way
        self.naks = 0
        self.outcome: Outcome | None = None  # None while active
        self.reason = ""
        self.finished_at: float | None = None
        self.verified_bytes = 0  # what its DONE says it read back and found right
        self.delivery = Delivery()
        self.progress_at = now  # when its blocks_done last grew
        self.reported = False  # a STATUS arrived: its loss is known
        self.status_tokens = float(STATUS_BURST)  # STATUS it may still send at once
        self.status_at = now  # when the tokens were counted
        self.repair_credit = REPAIR_CREDIT_START  # repairs it may still have served first
        self.credit_seq = -1  # seq_seen and arrived of its last NAK (at first: as it joined)
        self.credit_arrived = 0
        self.join_seq = 0  # the data seq sent next when it joined
        # A delta receiver compares its disk with the manifest and reports what it lacks
        # (protocol/delta.py): its report as it arrives, then the runs it lacks.
        self.delta = False
        self.lacks = LackAssembly()
        self.lacked: list[tuple[int, int]] | None = None

    @property
    def lagging(self) -> bool:
        return self.outcome is None and self.delivery.lagging

    @property
    def comparing(self) -> bool:
        """A delta receiver still comparing its disk: what it lacks is not known yet."""
        return self.delta and self.outcome is None and self.lacked is None


class Roster:
    """The receivers by id, in the order they joined, and the GRTT over the active ones."""

    def __init__(self, config: SenderConfig, stats: SenderStats) -> None:
        self.config = config
        self.stats = stats  # counts what it ignores (``limited``)
        self.receivers: dict[int, ReceiverInfo] = {}
        self.grtt = config.grtt_initial

    def __len__(self) -> int:
        return len(self.receivers)

    def get(self, receiver_id: int) -> ReceiverInfo | None:
        return self.receivers.get(receiver_id)

    # --- taking receivers -----------------------------------------------------------------

    def add(self, receiver_id: int, addr: Addr, now: float,
            next_seq: int | None, host: dict[str, str] | None = None) -> ReceiverInfo:
        """A new receiver, joining when ``next_seq`` was the data seq sent next (None: it
        never joined, its DONE came first), naming itself ``host``."""
        info = ReceiverInfo(receiver_id, addr, now, host)
        if next_seq is not None:
            info.delivery.begin(next_seq)
            info.join_seq = next_seq
            info.credit_seq = next_seq - 1  # it can have lost only what is sent from now on
        self.receivers[receiver_id] = info
        return info

    def impostor(self, info: ReceiverInfo | None, addr: Addr) -> bool:
        """Another host using a known receiver's id: ignored and counted."""
        if info is None or addr == info.addr:
            return False
        self.stats.limited += 1
        return True

    def crowded(self, addr: Addr) -> bool:
        """A new receiver would be one too many: for the session, or from one host (a flood
        of made-up receiver ids must not grow the sender's memory and work without bound)."""
        if len(self.receivers) >= self.config.max_receivers:
            return True
        host = addr[0]
        return sum(1 for r in self.receivers.values() if r.addr[0] == host) >= MAX_PER_HOST

    def allow(self, info: ReceiverInfo, now: float) -> bool:
        """A flood from one receiver must not starve the room (each STATUS may ask for
        thousands of blocks, each JOIN costs a signature): a token bucket per receiver."""
        tokens = min(STATUS_BURST, info.status_tokens + (now - info.status_at) * STATUS_RATE)
        info.status_at = now
        if tokens < 1.0:
            info.status_tokens = tokens
            self.stats.limited += 1
            return False
        info.status_tokens = tokens - 1.0
        return True

    # --- hearing them ---------------------------------------------------------------------

    def heard(self, info: ReceiverInfo, echo: float, hold: float, now: float) -> None:
        """Its JOIN arrived, echoing our clock ``echo`` after holding it ``hold`` seconds."""
        info.last_heard = now
        self.sample_rtt(info, echo, hold, now)

    def take_status(self, info: ReceiverInfo, msg: Status, now: float) -> None:
        """What its STATUS says of its progress, delivery and loss."""
        info.last_heard = now
        if msg.blocks_done > info.blocks_done:
            info.progress_at = now
        info.blocks_done = msg.blocks_done
        info.received = msg.received
        info.dropped = msg.dropped
        info.reported = True
        delivery = info.delivery
        delivery.report(msg.seq_seen, msg.arrived, msg.overruns)
        # Until its first window closes, what it reported itself (counted from sequence numbers).
        info.loss = delivery.loss if delivery.sampled else min(1.0, max(0.0, msg.loss_ppm / 1e6))
        if msg.seq_seen > info.seq_seen:
            info.seq_seen = msg.seq_seen
        self.sample_rtt(info, msg.echo_time, msg.hold, now)

    @staticmethod
    def earn_credit(info: ReceiverInfo, msg: Status) -> None:
        """Repair credit for what the receiver lost since its last NAK: the data it saw
        sequence numbers of but did not get (repairs lost again count too)."""
        if msg.seq_seen > info.credit_seq:
            lost = (msg.seq_seen - info.credit_seq) - max(0, msg.arrived - info.credit_arrived)
            info.repair_credit = min(REPAIR_CREDIT_MAX, info.repair_credit + 2 * max(0, lost))
            info.credit_seq, info.credit_arrived = msg.seq_seen, msg.arrived

    def sample_rtt(self, info: ReceiverInfo, echo: float, hold: float, now: float) -> None:
        if echo < 0:
            return
        sample = now - echo - hold
        if not 0 <= sample <= self.config.grtt_max:
            return
        info.rtt = sample if info.rtt is None else 0.875 * info.rtt + 0.125 * sample

    def update_grtt(self) -> None:
        """The GRTT is the slowest active receiver's, within [grtt_min, grtt_max]."""
        rtts = [r.rtt for r in self.receivers.values() if r.outcome is None and r.rtt is not None]
        if rtts:
            cfg = self.config
            self.grtt = min(max(max(rtts), cfg.grtt_min), cfg.grtt_max)

    # --- judging the room -----------------------------------------------------------------

    def active_count(self) -> int:
        return sum(1 for r in self.receivers.values() if r.outcome is None)

    def heard_deliveries(self, next_seq: int) -> list[Delivery]:
        """The active receivers' deliveries, for the rate control to judge, after setting
        aside as lagging those that heard nothing of UNHEARD_DATAGRAMS sent since they joined:
        one that heard nothing of a good deal of data (a dead link, a host faking reports)
        would keep the room unjudged, and the rate fixed, for as long as it stays."""
        room = []
        for r in self.receivers.values():
            if r.outcome is not None:
                continue
            delivery = r.delivery
            if not delivery.sampled and next_seq - r.join_seq >= UNHEARD_DATAGRAMS:
                delivery.lagging = True
            else:
                room.append(delivery)
        return room

    def worst_loss(self) -> float | None:
        """The highest loss reported by an active receiver that is not lagging (lagging ones
        are repaired on later passes instead); None until someone reports."""
        losses = [r.loss for r in self.receivers.values()
                  if r.outcome is None and r.reported and not r.delivery.lagging]
        return max(losses) if losses else None

    def lowest_seq_seen(self) -> int | None:
        """The oldest data seq an active receiver saw. A lagging one (served later anyway)
        does not count: repairs it did not see yet would stay in flight without bound."""
        seen = [r.seq_seen for r in self.receivers.values()
                if r.outcome is None and not r.lagging]
        return min(seen) if seen else None

    # --- finishing them -------------------------------------------------------------------

    def to_drop(self, now: float, served_since: float | None, nblocks: int,
                rate_bps: float) -> list[tuple[ReceiverInfo, str]]:
        """Receivers that went silent, and those the sender served for ``stall_timeout``
        (after the first pass, ``served_since``: before it, a lagging one waits its turn)
        without progress; each with the reason the admin sees."""
        timeout = self.config.receiver_timeout
        stall = self.config.stall_timeout
        drop = []
        for info in self.receivers.values():
            if info.outcome is not None:
                continue
            if now - info.last_heard > timeout:
                drop.append((info, f"silent for {timeout:g} s: dropped"))
            elif (
                served_since is not None and not info.comparing and info.blocks_done < nblocks
                and now - max(info.progress_at, served_since) > stall
            ):
                got = 100.0 * info.delivery.fraction
                drop.append((info, (
                    f"stored nothing for {stall:g} s although served (it gets {got:.0f} % of "
                    f"the datagrams at {rate_bps / 1e6:.3g} Mbit/s): dropped")))
        return drop

    @staticmethod
    def finish(info: ReceiverInfo, outcome: Outcome, reason: str, now: float) -> None:
        info.outcome = outcome
        info.reason = reason
        info.finished_at = now

    def any_comparing(self) -> bool:
        """Some delta receiver is still comparing its disk (the start waits for it)."""
        return any(r.comparing for r in self.receivers.values())

    def all_delta(self) -> bool:
        """Every active receiver compared its disk (or still compares): the first pass may
        leave out what they all hold."""
        return all(r.delta for r in self.receivers.values() if r.outcome is None)

    def lacked_reports(self) -> list[list[tuple[int, int]]]:
        """What each active delta receiver reported it lacks."""
        return [r.lacked for r in self.receivers.values()
                if r.outcome is None and r.lacked is not None]

    def all_finished(self) -> bool:
        """Some receiver joined, and every one has an outcome."""
        receivers = self.receivers.values()
        return bool(receivers) and all(r.outcome is not None for r in receivers)

    def verified_count(self) -> int:
        return sum(1 for r in self.receivers.values() if r.outcome is Outcome.VERIFIED)
