"""Named simulation scenarios: who is on the LAN, through what links, and what happens when.

Only numbers live here; the runner (netsim/classroom.py) turns them into sessions and nodes. Images
stay small (2-4 MiB, 256 KiB blocks) so each scenario simulates in about a second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .link import GilbertElliott, LinkSpec

MiB = 1 << 20
KiB = 1 << 10
LAN = LinkSpec(delay=0.0002)  # a switched gigabit LAN: 0.2 ms one way

# A hostile host on the LAN (netsim/classroom.py adds it): "forger" sends a forged copy of every
# block first (netsim/forger.py), "manifest_forger" forged manifest chunks too; "replayer" sends
# an earlier session's datagrams (netsim/replayer.py; "recorder" only records one); "flooder"
# joins and floods the sender with NAKs and made-up receivers (netsim/flooder.py).
Hostile = Literal["forger", "manifest_forger", "recorder", "replayer", "flooder"]


@dataclass(frozen=True)
class Scenario:
    name: str
    n_receivers: int
    # Receiver i's downlink: one spec for all, a list indexed by i, or a function of i.
    links: LinkSpec | Sequence[LinkSpec] | Callable[[int], LinkSpec] = LAN
    uplink: LinkSpec | None = None  # every receiver's uplink (control traffic); None = perfect
    sender_link: LinkSpec = LAN  # LAN -> sender (the receivers' JOIN/STATUS/DONE)
    late_joins: Mapping[int, float] = field(default_factory=dict)  # receiver -> join time (s)
    # receiver -> (crash time, restart time or None); a restarted receiver resumes from its
    # journal, as `mcast-receive` started again on the same target does.
    crashes: Mapping[int, tuple[float, float | None]] = field(default_factory=dict)
    # The sender crashes then, and (if not None) a new one for the same image starts then.
    sender_crash: tuple[float, float | None] | None = None
    wait_for_sender: bool = False  # receivers whose sender went silent wait for another
    late_join_window: float | None = None  # SenderConfig's
    signed: bool = False  # the sender signs; receivers follow only its key
    encrypted: bool = False  # every datagram sealed with the classroom's secret (--encrypt)
    hostile: Hostile | None = None
    image_size: int = 4 * MiB
    image_kind: str = "disklike"
    image_seed: int = 3  # disklike seed 3: ~40 % zeros, text and random at 2 and 4 MiB
    block_size: int = 256 * KiB
    rate_bps: float = 100e6  # the sender's pacing rate
    fec_overhead: float = 0.02  # as SenderConfig's default
    min_receivers: int | None = None  # sender waits for this many; None = all but late joiners
    time_limit: float = 60.0  # virtual seconds: a run still going then has failed
    # A prepared image: only these [start, end) block runs are used (None: all). The others
    # hold old data on the source and are never sent; receivers discard them.
    used_runs: tuple[tuple[int, int], ...] | None = None
    # Delta re-imaging: every laptop's disk holds an earlier version of the image in which this
    # share of the used blocks differs, and it runs `mcast-receive --delta` (None: blank disks,
    # received in full). Laptops in ``fresh`` have blank disks and no --delta among them.
    delta: float | None = None
    fresh: frozenset[int] = frozenset()
    # receiver -> the block at which its disk fails (every write there and after is an I/O
    # error, as a dying SSD's are): it must end as a disk error, never a success.
    disk_fails: Mapping[int, int] = field(default_factory=dict)
    # receiver -> {block: times it reads back wrong} (a lying or dying SSD; a prepared image's
    # final check reads every used block back).
    disk_lies: Mapping[int, Mapping[int, int]] = field(default_factory=dict)

    def link(self, index: int) -> LinkSpec:
        links = self.links
        if isinstance(links, LinkSpec):
            return links
        if callable(links):
            return links(index)
        return links[index]

    def wait_for(self) -> int:
        """Receivers the sender should wait for before starting."""
        if self.min_receivers is not None:
            return self.min_receivers
        return max(1, self.n_receivers - len(self.late_joins))

    def wire_seconds(self) -> float:
        """Rough first-pass duration at ``rate_bps`` (FEC and ~2 % headers included, before
        compression): for timing late joins and crashes relative to the transfer."""
        return self.image_size * 8 * (1 + self.fec_overhead) * 1.02 / self.rate_bps


START = 0.1  # receivers hear the first ANNOUNCE at once: the transfer starts about here


def _at_fraction(size: int, rate: float, fraction: float) -> float:
    return START + fraction * Scenario("", 1, image_size=size, rate_bps=rate).wire_seconds()


def _mixed(index: int) -> LinkSpec:
    """A deterministic mix cycling by index: clean, lossy, far, bursty, slow, jittery."""
    kind = index % 6
    loss = 0.01 * (index % 5)
    delay = 0.0002 + 0.001 * (index % 7)
    if kind == 0:
        return LinkSpec(delay=delay)
    if kind == 1:
        return LinkSpec(loss=loss or 0.02, delay=delay)
    if kind == 2:
        return LinkSpec(loss=loss, delay=0.020 + delay)
    if kind == 3:
        return LinkSpec(burst_loss=GilbertElliott(0.01, 0.2), delay=delay)
    if kind == 4:
        return LinkSpec(rate_bps=200e6, queue_bytes=512 * KiB, loss=loss, delay=delay)
    return LinkSpec(jitter=0.002, reorder=0.02, reorder_delay=0.003, loss=loss, delay=delay)


def _slow_first(index: int) -> LinkSpec:
    # 20 Mbit/s behind a 256 KiB queue while the sender paces at 50 Mbit/s: ~60 % tail drops
    # unless the protocol adapts (or lets the slow one catch up in later passes).
    if index == 0:
        return LinkSpec(rate_bps=20e6, queue_bytes=256 * KiB, delay=0.0002)
    return LAN


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("clean", 3),
        Scenario("loss5", 5, LinkSpec(loss=0.05, delay=0.0002)),
        # p_gb / (p_gb + p_bg) = 0.0625 / 0.3125 = 20 % loss, in bursts of 4 on average.
        Scenario("bursty20", 5, LinkSpec(burst_loss=GilbertElliott(0.0625, 0.25), delay=0.0002)),
        Scenario("reorder", 5, LinkSpec(delay=0.001, jitter=0.002, reorder=0.2,
                                        reorder_delay=0.005)),
        Scenario("duplicate", 3, LinkSpec(duplicate=0.10, delay=0.0002)),
        # Real UDP checksums drop nearly all corrupted datagrams; this is what slips past
        # them, far above any real rate. One bad symbol spoils its block's digest, so the
        # block is discarded and fetched again: never written.
        Scenario("corrupt", 3, LinkSpec(corrupt=0.002, delay=0.0002)),
        Scenario("mixed50", 50, _mixed, image_size=2 * MiB, time_limit=120.0),
        # Timed scenarios use random (incompressible) images so wire_seconds() is the truth.
        Scenario("late_joiner", 3, late_joins={2: _at_fraction(4 * MiB, 20e6, 0.5)},
                 rate_bps=20e6, image_kind="random"),
        Scenario("crash_restart", 3, crashes={1: (_at_fraction(4 * MiB, 20e6, 0.3),
                                                  _at_fraction(4 * MiB, 20e6, 0.6))},
                 rate_bps=20e6, image_kind="random"),
        Scenario("slow_receiver", 3, _slow_first, rate_bps=50e6, image_size=8 * MiB,
                 image_kind="random"),
        # The misbehaving classroom (issue 5): a laptop that joins after the first pass (the
        # window keeps the sender there), one that comes after the window closed (refused),
        # one unplugged for good, a sender that crashes and comes back (receivers wait for
        # it), and a sender told to go ten times faster than the links.
        Scenario("late_after_pass", 3, late_joins={2: _at_fraction(4 * MiB, 20e6, 1.3)},
                 rate_bps=20e6, image_kind="random", late_join_window=5.0),
        Scenario("late_refused", 3, late_joins={2: _at_fraction(4 * MiB, 20e6, 0.6)},
                 rate_bps=20e6, image_kind="random", late_join_window=0.5),
        Scenario("dead_receiver", 3, crashes={1: (_at_fraction(4 * MiB, 20e6, 0.5), None)},
                 rate_bps=20e6, image_kind="random"),
        Scenario("sender_restart", 3, rate_bps=20e6, image_kind="random", wait_for_sender=True,
                 sender_crash=(_at_fraction(4 * MiB, 20e6, 0.5),
                               _at_fraction(4 * MiB, 20e6, 0.5) + 3.0)),
        Scenario("signed_loss5", 5, LinkSpec(loss=0.05, delay=0.0002), signed=True),
        Scenario("encrypted_loss5", 5, LinkSpec(loss=0.05, delay=0.0002), signed=True,
                 encrypted=True),
        # Forged blocks, well formed down to their xxh3, sent before the real ones: only the
        # signed manifest tells them apart. Random data, so they share the real layouts.
        Scenario("forged_blocks", 3, LinkSpec(loss=0.02, delay=0.0002), signed=True,
                 hostile="forger", image_kind="random"),
        # ...and a manifest of the forged blocks, its chunks sent before the sender's: some
        # with garbage proofs, some proven against the forger's own root. 64 KiB blocks: three
        # chunks, so the proofs have two levels.
        Scenario("forged_manifest", 3, LinkSpec(loss=0.02, delay=0.0002), signed=True,
                 hostile="manifest_forger", image_kind="random", block_size=64 * KiB),
        # An earlier complete session of the same image by the same signed sender, replayed
        # into the live one: valid signatures and proofs, another session id.
        Scenario("replayed_session", 3, LinkSpec(loss=0.02, delay=0.0002), signed=True,
                 hostile="replayer", image_kind="random"),
        # A prepared image (mcastd capture): 10 of its 32 blocks free, in two runs; at 5 %
        # loss and with a laptop joining mid-way. At 10 Mbit/s the session lasts ~5 s, so the
        # late laptop has four announcements (one a second) to find it: at 20 Mbit/s it had
        # two, and in one of the 20 seeds tested both were lost: it came after the session.
        Scenario("prepared", 4, LinkSpec(loss=0.05, delay=0.0002), signed=True,
                 image_kind="random", image_size=8 * MiB, rate_bps=10e6,
                 used_runs=((0, 5), (9, 20), (26, 32)),
                 late_joins={3: _at_fraction(8 * MiB, 10e6, 0.1)}),
        Scenario("overdriven", 3, LinkSpec(rate_bps=20e6, queue_bytes=256 * KiB, loss=0.01,
                                           delay=0.0002),
                 rate_bps=200e6, image_kind="random"),
    )
}

# A joined receiver flooding the sender with NAKs for everything and with made-up receivers.
# Not in SCENARIOS: the sender rightly reports the flooder's receivers failed, which the
# scenario matrix counts as a failure (tests/sim/test_hostile_sim.py checks it instead).
NAK_FLOOD = Scenario("nak_flood", 4, LinkSpec(loss=0.02, delay=0.0002), signed=True,
                     hostile="flooder", image_kind="random")
