"""Run a whole simulated classroom: one sender, many receivers, a scenario's links and events.

This is the runner behind the scenario tests, `make demo` and `bench/sim_scaling.py`: the real
SenderSession and ReceiverSessions, driven by SimNetwork in virtual time through the in-memory
drivers (netsim/drivers.py).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from protocol.config import DISCOVERY_ADDR, Addr, ReceiverConfig, SenderConfig
from protocol.events import BlockReady, Event, Finished, Outcome, SessionComplete, SessionFound
from protocol.manifest import FREE_BLOCK_DIGEST, Manifest, block_digest
from protocol.receiver import ReceiverSession
from protocol.seal import Sealer, session_symbol_size
from protocol.sender import SenderSession
from protocol.trust import Signer

from .drivers import MemoryJournal, MemorySink, MemorySource
from .flooder import Flooder
from .forger import Forger
from .hostile import HostileHost
from .images import make_image
from .network import Node, SimNetwork
from .replayer import Recorder, Replayer
from .scenarios import LAN, Scenario

SENDER_ADDR: Addr = ("10.0.0.1", 9000)
HOSTILE_ADDR: Addr = ("10.0.9.9", 9000)
# The admin's key in signed scenarios (fixed: runs stay deterministic); receivers trust it.
SIM_KEY = Signer.from_raw(hashlib.sha256(b"netsim sender key").digest())
SIM_SECRET = hashlib.sha256(b"netsim classroom secret").digest()  # --encrypt scenarios


class SenderNode(Node):
    def __init__(self, address: Addr, session: SenderSession, image: bytes) -> None:
        super().__init__(address, session)
        self.sender = session
        self.source = MemorySource(session, image)
        self.complete: SessionComplete | None = None
        self.complete_at: float | None = None

    def on_event(self, event: object, net: SimNetwork) -> None:
        assert isinstance(event, Event)
        self.source.on_event(event, net.now)
        if isinstance(event, SessionComplete):
            self.complete, self.complete_at = event, net.now


class ReceiverNode(Node):
    """A laptop. With ``decode=False`` (large benchmarks only) a complete block is marked stored
    without decoding it: the symbol bookkeeping is still the real protocol's, and a Reed–Solomon
    group with k distinct symbols always decodes, so timing and traffic are unchanged."""

    def __init__(self, address: Addr, session: ReceiverSession, decode: bool = True,
                 disk: bytearray | None = None, journal: MemoryJournal | None = None) -> None:
        super().__init__(address, session)
        self.receiver = session
        self.sink = MemorySink(session, keep_image=decode, disk=disk, journal=journal)
        self.decode = decode
        self.on_sender_lost: Callable[[ReceiverNode], None] | None = None

    def on_event(self, event: object, net: SimNetwork) -> None:
        assert isinstance(event, Event)
        if isinstance(event, SessionFound):
            net.join_group(self, event.data_addr)
        if not self.decode and isinstance(event, BlockReady):
            self.receiver.block_stored(event.index)
            return
        self.sink.on_event(event, net.now)
        if isinstance(event, Finished) and self.receiver.sender_lost and self.on_sender_lost:
            net.at(net.now, partial(self.on_sender_lost, self))


@dataclass
class ReceiverOutcome:
    index: int
    address: Addr
    joined_at: float
    ok: bool | None  # the receiver's own verdict (None: never finished)
    image_matches: bool | None  # bytes equal to the source (None: not kept)
    verified_at: float | None
    rejected_blocks: int
    crashed: bool = False
    resumed_blocks: int = 0  # taken from its journal after a restart
    compared_blocks: int = 0  # a delta receiver found on its disk as they are
    outcome: Outcome | None = None  # how the sender saw it end (None: it did not)
    written_blocks: int = 0  # decoded and written by this run
    finished_at: float | None = None
    reason: str = ""
    forged_bytes: int = 0  # bytes it wrote that differ from the image (must be 0)
    forged_datagrams: int = 0  # the forger's, if the scenario has one (for the receivers)
    garbled: int = 0  # datagrams it found damaged or forged (ReceiverSession.stats)
    foreign: int = 0  # datagrams of other sessions it ignored


@dataclass
class ClassroomResult:
    scenario: Scenario
    seed: int
    image_size: int
    encoded_bytes: int  # the image's encoded payload, each block once
    data_bytes: int  # every DATA datagram the sender sent, headers included
    naks: int
    statuses: int
    started_at: float | None
    end: float  # virtual time the run stopped
    wall: float
    trace: str
    complete: SessionComplete | None
    receivers: list[ReceiverOutcome] = field(default_factory=list)
    senders: int = 1  # sender runs (a crashed sender restarted: 2)
    limited: int = 0  # STATUS and JOIN the sender ignored (too often, impostors, too many)
    # The scenario's hostile host, for its counters; it is none of the ``receivers``.
    hostile: HostileHost | None = None

    @property
    def survivors(self) -> list[ReceiverOutcome]:
        return [r for r in self.receivers if not r.crashed]

    @property
    def all_verified(self) -> bool:
        return all(r.ok and r.image_matches is not False for r in self.survivors)

    @property
    def finish_time(self) -> float:
        """From the start of the transfer to the last surviving receiver's verified image."""
        times = [r.verified_at for r in self.survivors if r.verified_at is not None]
        return max(times, default=self.end) - (self.started_at or 0.0)

    @property
    def overhead(self) -> float:
        return self.data_bytes / max(1, self.encoded_bytes)


def run_classroom(
    scenario: Scenario,
    seed: int,
    *,
    decode_sample: int | None = None,
    trace: bool = True,
    sender_overrides: dict[str, object] | None = None,
    symbol_size: int | None = None,
) -> ClassroomResult:
    """Simulate ``scenario`` with ``seed``. ``decode_sample``: decode only that many receivers'
    blocks (all others count symbols only; for 1000-receiver benchmarks)."""
    image = make_image(scenario.image_size, scenario.image_seed, scenario.image_kind)
    # What a laptop must end with: the image, its free blocks discarded (zeros here).
    expected = free_blocks_zeroed(image, scenario.block_size, scenario.used_runs)
    net = SimNetwork(seed, trace=trace)
    extra: dict[str, object] = dict(sender_overrides or {})
    if symbol_size is not None:
        extra["symbol_size"] = symbol_size
    elif scenario.encrypted:
        extra["symbol_size"] = session_symbol_size(sealed=True)  # as `serve --encrypt`
    config = replace(
        SenderConfig(
            image_size=len(image),
            image_sha256=hashlib.sha256(image).digest(),
            control_addr=SENDER_ADDR,
            block_size=scenario.block_size,
            rate_bps=scenario.rate_bps,
            fec_overhead=scenario.fec_overhead,
            min_receivers=scenario.wait_for(),
            late_join_window=scenario.late_join_window,
        ),
        **extra,  # type: ignore[arg-type]
    )
    senders: list[SenderNode] = []

    def sealer() -> Sealer | None:
        """One per endpoint in an encrypted scenario (its nonces need only be unique)."""
        if not scenario.encrypted:
            return None
        return Sealer(SIM_SECRET, random.Random(net.rng.getrandbits(64)))

    manifest = Manifest(b"".join(
        block_digest(image[i : i + scenario.block_size]) if expected is image
        or any(s * scenario.block_size <= i < e * scenario.block_size
               for s, e in scenario.used_runs or ()) else FREE_BLOCK_DIGEST
        for i in range(0, len(image), scenario.block_size)))
    if scenario.used_runs is not None:
        # A prepared image is known by its manifest's root (mcastd serve does the same).
        config = replace(config, image_sha256=manifest.root, used_runs=scenario.used_runs)

    def start_sender() -> None:
        rng = random.Random(net.rng.getrandbits(64))
        session = SenderSession(config, rng, net.now, manifest=manifest,
                                signer=SIM_KEY if scenario.signed else None,
                                sealer=sealer())
        senders.append(SenderNode(SENDER_ADDR, session, image))
        net.add_node(senders[-1], scenario.sender_link)

    nodes: list[tuple[int, ReceiverNode, float]] = []
    live: dict[int, ReceiverNode] = {}
    crashed: set[int] = set()
    superseded: set[int] = set()  # runs that ended for want of a sender and went on anew
    # Each laptop's disk and journal outlive its crashes, as a real disk does.
    disks: dict[int, bytearray] = {}
    journals: dict[int, MemoryJournal] = {}

    delta = scenario.delta is not None
    if scenario.delta is not None:
        earlier = earlier_version(expected, scenario.block_size, scenario.used_runs,
                                  scenario.delta, scenario.image_seed)
        for i in range(scenario.n_receivers):
            if i not in scenario.fresh:
                disks[i] = bytearray(earlier)

    def add_receiver(i: int, image_sha256: bytes | None = None) -> None:
        session = ReceiverSession(
            ReceiverConfig(image_sha256=image_sha256,
                           trusted=frozenset({SIM_KEY.fingerprint}) if scenario.signed else None,
                           delta=delta and i not in scenario.fresh),
            random.Random(net.rng.getrandbits(64)),
            net.now,
            sealer=sealer(),
        )
        decode = decode_sample is None or i < decode_sample
        node = ReceiverNode((f"10.0.{1 + i // 250}.{1 + i % 250}", 9000), session, decode,
                            disks.setdefault(i, bytearray()),
                            journals.setdefault(i, MemoryJournal()))
        node.sink.truth = expected if decode else None
        node.sink.fails_at = scenario.disk_fails.get(i)
        node.sink.lies = dict(scenario.disk_lies.get(i, {}))
        if scenario.wait_for_sender:
            node.on_sender_lost = partial(wait_for_sender, i)
        nodes.append((i, node, net.now))
        live[i] = node
        net.add_node(node, scenario.link(i), scenario.uplink, groups=[DISCOVERY_ADDR])

    def wait_for_sender(i: int, node: ReceiverNode) -> None:
        """`mcast-receive --wait-for-sender`: a new session for the same image, resumed."""
        if live.get(i) is not node:
            return
        superseded.add(id(node))
        net.remove_node(node)
        announce = node.receiver.announce
        add_receiver(i, announce.image_sha256 if announce is not None else None)

    def crash(i: int) -> None:
        crashed.add(id(live[i]))
        journals[i].crash()
        net.remove_node(live[i])

    for i in range(scenario.n_receivers):
        if i in scenario.late_joins:
            net.at(scenario.late_joins[i], partial(add_receiver, i))
        else:
            add_receiver(i)
    for i, (crash_at, restart_at) in scenario.crashes.items():
        net.at(crash_at, partial(crash, i))
        if restart_at is not None:
            net.at(restart_at, partial(add_receiver, i))
    # Before the sender: it hears the first ANNOUNCE, as the laptops do.
    hostile = _add_hostile(net, scenario, config,
                           [node.receiver.receiver_id for node in live.values()])
    start_sender()
    if scenario.sender_crash is not None:
        sender_crash_at, sender_restart_at = scenario.sender_crash
        net.at(sender_crash_at, lambda: net.remove_node(senders[-1]))
        if sender_restart_at is not None:
            net.at(sender_restart_at, start_sender)

    def finished() -> bool:
        sender = senders[-1]
        return (sender.complete is not None or not net.is_alive(sender)) and all(
            n.receiver.result is not None for _, n, _ in nodes
            if id(n) not in crashed and id(n) not in superseded
        ) and not (scenario.sender_crash and scenario.sender_crash[1] and
                   net.now < scenario.sender_crash[1])

    t0 = time.perf_counter()
    end = net.run(scenario.time_limit, stop=finished)
    wall = time.perf_counter() - t0
    first, sender = senders[0], senders[-1]
    result = ClassroomResult(
        scenario=scenario,
        seed=seed,
        image_size=len(image),
        encoded_bytes=sum(first.source.encoded_bytes.values()),
        data_bytes=sum(s.sender.stats.data_bytes for s in senders),
        naks=sum(s.sender.stats.naks_received for s in senders),
        statuses=sum(s.sender.stats.status_received for s in senders),
        started_at=first.sender.started_at,
        end=end,
        wall=wall,
        trace=net.trace_digest() if trace else "",
        complete=sender.complete,
        senders=len(senders),
        limited=sum(s.sender.stats.limited for s in senders),
        hostile=hostile,
    )
    outcomes = {rid: info.outcome for s in senders for rid, info in s.sender.receivers.items()}
    for i, node, joined_at in nodes:
        if id(node) in superseded:
            continue
        sink = node.sink
        verdict = node.receiver.result
        result.receivers.append(
            ReceiverOutcome(
                index=i,
                address=node.address,
                joined_at=joined_at,
                ok=verdict[0] if verdict is not None else None,
                image_matches=bytes(sink.image) == expected if node.decode else None,
                verified_at=sink.verified_at,
                rejected_blocks=sink.rejected,
                crashed=id(node) in crashed,
                resumed_blocks=sink.resumed,
                compared_blocks=sink.compared,
                outcome=outcomes.get(node.receiver.receiver_id),
                written_blocks=sink.written,
                finished_at=sink.finished_at,
                reason=verdict[1] if verdict is not None else "",
                forged_bytes=sink.forged_bytes,
                forged_datagrams=hostile.forged_datagrams if isinstance(hostile, Forger) else 0,
                garbled=node.receiver.stats.garbled,
                foreign=node.receiver.stats.foreign,
            )
        )
    return result


def free_blocks_zeroed(image: bytes, block_size: int,
                      used_runs: tuple[tuple[int, int], ...] | None) -> bytes:
    """``image`` as a laptop holds it after a prepared image: free blocks zero."""
    if used_runs is None:
        return image
    out = bytearray(len(image))
    for start, end in used_runs:
        out[start * block_size : end * block_size] = image[start * block_size :
                                                           end * block_size]
    return bytes(out)


def earlier_version(image: bytes, block_size: int,
                    used_runs: tuple[tuple[int, int], ...] | None, changed: float,
                    seed: int) -> bytes:
    """``image`` as a laptop imaged with an earlier version holds it: ``changed`` of its used
    blocks (chosen by ``seed``) differ in a few bytes, as an update's rewritten files do."""
    nblocks = -(-len(image) // block_size)
    used = [b for s, e in used_runs for b in range(s, e)] if used_runs else list(range(nblocks))
    old = bytearray(image)
    for block in random.Random(seed).sample(used, round(changed * len(used))):
        at = block * block_size
        old[at : at + 16] = bytes(x ^ 0xFF for x in old[at : at + 16])
    return bytes(old)


def _add_hostile(net: SimNetwork, scenario: Scenario, config: SenderConfig,
                 victims: list[int]) -> HostileHost | None:
    """Put the scenario's hostile host on the LAN, on the groups it listens to."""
    kind = scenario.hostile
    if kind is None:
        return None
    seed = net.rng.getrandbits(64)
    data_addr = config.data_addr
    groups = [DISCOVERY_ADDR]
    hostile: HostileHost
    if kind in ("forger", "manifest_forger"):
        hostile = Forger(seed, manifest=kind == "manifest_forger")
    elif kind == "recorder":
        hostile = Recorder(data_addr)
        groups.append(data_addr)
    elif kind == "replayer":
        # The same image by the same sender an hour earlier: one laptop, another seed, so
        # another session id.
        earlier = replace(scenario, name=f"{scenario.name}, earlier", n_receivers=1,
                          hostile="recorder", late_joins={}, crashes={}, min_receivers=None,
                          sender_crash=None)
        recorder = run_classroom(earlier, seed, trace=False,
                                 sender_overrides={"created": config.created - 3600.0}).hostile
        assert isinstance(recorder, Recorder)
        hostile = Replayer(recorder.datagrams)
        groups = [data_addr]
    else:
        hostile = Flooder(seed, victims)
        groups.append(data_addr)
    net.add_node(Node(HOSTILE_ADDR, hostile), LAN, groups=groups)
    return hostile
