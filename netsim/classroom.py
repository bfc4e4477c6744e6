"""Run a whole simulated classroom: one sender, many receivers, a scenario's links and events.

This is the runner behind the scenario tests, `make demo` and `bench/sim_scaling.py`: the real
SenderSession and ReceiverSessions, driven by SimNetwork in virtual time through the in-memory
drivers (netsim/drivers.py).
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field, replace
from functools import partial

from protocol.config import DISCOVERY_ADDR, Addr, ReceiverConfig, SenderConfig
from protocol.events import BlockReady, Event, SessionComplete, SessionFound
from protocol.receiver import ReceiverSession
from protocol.sender import SenderSession

from .drivers import MemorySink, MemorySource
from .images import make_image
from .network import Node, SimNetwork
from .scenarios import Scenario

SENDER_ADDR: Addr = ("10.0.0.1", 9000)


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

    def __init__(self, address: Addr, session: ReceiverSession, decode: bool = True) -> None:
        super().__init__(address, session)
        self.receiver = session
        self.sink = MemorySink(session, keep_image=decode)
        self.decode = decode

    def on_event(self, event: object, net: SimNetwork) -> None:
        assert isinstance(event, Event)
        if isinstance(event, SessionFound):
            net.join_group(self, event.data_addr)
        if not self.decode and isinstance(event, BlockReady):
            self.receiver.block_stored(event.index)
            return
        self.sink.on_event(event, net.now)


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
    net = SimNetwork(seed, trace=trace)
    extra: dict[str, object] = dict(sender_overrides or {})
    if symbol_size is not None:
        extra["symbol_size"] = symbol_size
    config = replace(
        SenderConfig(
            image_size=len(image),
            image_sha256=hashlib.sha256(image).digest(),
            control_addr=SENDER_ADDR,
            block_size=scenario.block_size,
            rate_bps=scenario.rate_bps,
            fec_overhead=scenario.fec_overhead,
            min_receivers=scenario.wait_for(),
        ),
        **extra,  # type: ignore[arg-type]
    )
    sender = SenderNode(
        SENDER_ADDR, SenderSession(config, random.Random(net.rng.getrandbits(64)), 0.0), image
    )
    nodes: list[tuple[int, ReceiverNode, float]] = []
    live: dict[int, ReceiverNode] = {}
    crashed: set[int] = set()

    def add_receiver(i: int) -> None:
        session = ReceiverSession(
            ReceiverConfig(), random.Random(net.rng.getrandbits(64)), net.now
        )
        decode = decode_sample is None or i < decode_sample
        node = ReceiverNode((f"10.0.{1 + i // 250}.{1 + i % 250}", 9000), session, decode)
        nodes.append((i, node, net.now))
        live[i] = node
        net.add_node(node, scenario.link(i), scenario.uplink, groups=[DISCOVERY_ADDR])

    def crash(i: int) -> None:
        crashed.add(id(live[i]))
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
    net.add_node(sender, scenario.sender_link)

    def finished() -> bool:
        return sender.complete is not None and all(
            n.receiver.result is not None for _, n, _ in nodes if id(n) not in crashed
        )

    t0 = time.perf_counter()
    end = net.run(scenario.time_limit, stop=finished)
    wall = time.perf_counter() - t0
    stats = sender.sender.stats
    result = ClassroomResult(
        scenario=scenario,
        seed=seed,
        image_size=len(image),
        encoded_bytes=sum(sender.source.encoded_bytes.values()),
        data_bytes=stats.data_bytes,
        naks=stats.naks_received,
        statuses=stats.status_received,
        started_at=sender.sender.started_at,
        end=end,
        wall=wall,
        trace=net.trace_digest() if trace else "",
        complete=sender.complete,
    )
    for i, node, joined_at in nodes:
        sink = node.sink
        verdict = node.receiver.result
        result.receivers.append(
            ReceiverOutcome(
                index=i,
                address=node.address,
                joined_at=joined_at,
                ok=verdict[0] if verdict is not None else None,
                image_matches=bytes(sink.image) == image if node.decode else None,
                verified_at=sink.verified_at,
                rejected_blocks=sink.rejected,
                crashed=id(node) in crashed,
            )
        )
    return result
