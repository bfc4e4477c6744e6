"""SimNetwork: a seeded discrete-event LAN that drives sans-I/O sessions in virtual time.

Theory of operation. One heap of ``(time, seq, kind, a, b, c)`` tuples; ``seq`` is unique, so
tuples never compare past it. Kinds: a batch of deliveries of one datagram (``a`` = ports,
``b`` = bytes, ``c`` = source address), a node timer, a datagram leaving an uplink onto the LAN,
and a scenario callback. After each delivery or timer a node is *stepped*: its events go to
``Node.on_event``, its ``datagrams_to_send`` go onto the links, and its one live timer is re-armed
from ``get_timer``. A multicast datagram is fanned out through every member's own downlink; members
whose link only delays and drops share one heap entry per distinct delay, which keeps a
1000-receiver fan-out to a handful of heap operations. One ``random.Random(seed)`` drives every
link, so the same seed gives the same trace.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from .link import Link, LinkSpec

Addr = tuple[str, int]

_BATCH, _TIMER, _LAN, _CALL = 0, 1, 2, 3
_TRACE = struct.Struct("<dIB")  # time, length, kind (0 delivery, 1 timer)
_MAX_ROUNDS = 1000  # datagrams_to_send/next_event rounds in one step before we call it livelock


class Session(Protocol):
    """The sans-I/O session API (ARCHITECTURE.md §3) that SimNetwork drives."""

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def datagrams_to_send(self, now: float) -> Sequence[tuple[bytes, Addr]]: ...
    def get_timer(self) -> float | None: ...
    def next_event(self) -> object | None: ...


class Node:
    """A host on the simulated LAN: an address, a session, and what to do with its events."""

    def __init__(self, address: Addr, session: Session) -> None:
        self.address = address
        self.session = session

    def on_event(self, event: object, net: SimNetwork) -> None:
        """Handle one event from ``session.next_event()``; ``net.now`` is the time."""


class SimLivelock(RuntimeError):
    """A node keeps asking to run at the same instant without time advancing."""


class NodeStats:
    """What one node sent and received. ``by_dest[addr] = [datagrams, bytes]`` sent there."""

    __slots__ = ("sent_multicast", "sent_multicast_bytes", "sent_unicast", "sent_unicast_bytes",
                 "received", "received_bytes", "unroutable", "timers", "by_dest")

    def __init__(self) -> None:
        self.sent_multicast = 0
        self.sent_multicast_bytes = 0
        self.sent_unicast = 0
        self.sent_unicast_bytes = 0
        self.received = 0
        self.received_bytes = 0
        self.unroutable = 0  # unicast to an address nobody has (or had: crashed)
        self.timers = 0
        self.by_dest: dict[Addr, list[int]] = {}


class _Port:
    """The network's per-node state; deliveries in flight point at it, not at the node."""

    __slots__ = ("node", "session", "address", "tag", "down", "up", "alive", "deadline",
                 "timer_seq", "last_fire", "spins", "stats", "groups")

    def __init__(self, node: Node, down: Link, up: Link | None) -> None:
        self.node = node
        self.session = node.session
        self.address = node.address
        self.tag = f"{node.address[0]}:{node.address[1]}".encode()
        self.down = down
        self.up = up
        self.alive = True
        self.deadline: float | None = None  # the session's deadline we have a heap entry for
        self.timer_seq = -1  # seq of the live timer entry; others are stale
        self.last_fire = -1.0
        self.spins = 0
        self.stats = NodeStats()
        self.groups: set[Addr] = set()


# Per (group, source): [(delay, always-delivered ports, ((port, link, p_bernoulli), ...))],
# plus the members whose links need the full ``Link.transmit``.
_Plan = tuple[tuple[tuple[float, tuple[_Port, ...], tuple[tuple[_Port, Link, float], ...]], ...],
              tuple[_Port, ...]]


def is_multicast(addr: Addr) -> bool:
    head = addr[0].split(".", 1)[0]
    return head.isdigit() and 224 <= int(head) <= 239


class SimNetwork:
    """A LAN of nodes, each behind its own downlink (and optional uplink), in virtual time."""

    def __init__(self, seed: int, *, trace: bool = True, max_spins: int = 100_000) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self.max_spins = max_spins
        self._heap: list[tuple[float, int, int, Any, Any, Any]] = []
        self._seq = itertools.count()
        self._ports: dict[int, _Port] = {}  # id(node) -> port (kept after a crash, for stats)
        self._by_addr: dict[Addr, _Port] = {}
        self._groups: dict[Addr, dict[_Port, None]] = {}  # insertion-ordered member sets
        self._plans: dict[tuple[Addr, _Port], _Plan] = {}
        self._is_group: dict[Addr, bool] = {}
        self._hash = hashlib.blake2b(digest_size=16) if trace else None

    # --- topology ----------------------------------------------------------------------------

    def add_node(self, node: Node, link: LinkSpec | None = None, uplink: LinkSpec | None = None,
                 groups: Iterable[Addr] = ()) -> None:
        """Attach ``node`` now: ``link`` is the LAN→node direction, ``uplink`` node→LAN (None or
        perfect: straight onto the LAN). Joins ``groups``, then steps the node once so it can
        send and arm its timer."""
        if node.address in self._by_addr:
            raise ValueError(f"address {node.address} is in use")
        direct = uplink is None or (uplink.perfect and not uplink.delay)
        port = _Port(node, Link(link or LinkSpec(), self.rng),
                     None if direct or uplink is None else Link(uplink, self.rng))
        self._ports[id(node)] = port
        self._by_addr[node.address] = port
        for group in groups:
            self.join_group(node, group)
        self._step(port, self.now)

    def remove_node(self, node: Node) -> None:
        """Crash: the node vanishes; datagrams in flight to it and its timer are dropped. Restart
        with ``add_node`` of a fresh node (new session) at the same address."""
        port = self._port(node)
        port.alive = False
        port.timer_seq = -1
        for group in list(port.groups):
            self.leave_group(node, group)
        if self._by_addr.get(port.address) is port:
            del self._by_addr[port.address]

    crash = remove_node

    def join_group(self, node: Node, group: Addr) -> None:
        port = self._port(node)
        self._groups.setdefault(group, {})[port] = None
        port.groups.add(group)
        self._invalidate(group)

    def leave_group(self, node: Node, group: Addr) -> None:
        port = self._port(node)
        self._groups.get(group, {}).pop(port, None)
        port.groups.discard(group)
        self._invalidate(group)

    def wake(self, node: Node) -> None:
        """Step ``node`` now: after a scenario action changed its session from outside."""
        self._step(self._port(node), self.now)

    def members(self, group: Addr) -> list[Node]:
        return [port.node for port in self._groups.get(group, {})]

    def stats(self, node: Node) -> NodeStats:
        return self._port(node).stats

    def downlink(self, node: Node) -> Link:
        return self._port(node).down

    def is_alive(self, node: Node) -> bool:
        port = self._ports.get(id(node))
        return port is not None and port.alive and port.node is node

    # --- time --------------------------------------------------------------------------------

    def at(self, time: float, callback: Callable[[], object]) -> None:
        """Run ``callback()`` at virtual ``time`` (scenario actions: late joins, crashes)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time} < now {self.now}")
        heapq.heappush(self._heap, (time, next(self._seq), _CALL, callback, None, None))

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> float:
        """Process events up to ``until`` (inclusive) or until ``stop()`` is true after an event.
        Returns the virtual time reached: ``until`` if events remain beyond it, the last event's
        time if ``stop`` fired or nothing is left to do."""
        heap = self._heap
        pop = heapq.heappop
        step = self._step
        h = self._hash
        trace = h.update if h is not None else None
        pack = _TRACE.pack
        while heap and heap[0][0] <= until:
            t, seq, kind, a, b, c = pop(heap)
            self.now = t
            if kind == _BATCH:  # a: ports, b: data, c: source address
                n = len(b)
                for port in a:
                    if port.alive:
                        st = port.stats
                        st.received += 1
                        st.received_bytes += n
                        if trace is not None:
                            trace(pack(t, n, 0) + port.tag + b[:32])
                        port.session.receive_datagram(b, c, t)
                        step(port, t)
            elif kind == _TIMER:
                if a.alive and a.timer_seq == seq:
                    self._fire(a, t, trace)
            elif kind == _LAN:  # a: source port, b: data, c: destination
                self._route(a, b, c, t)
            else:
                a()
            if stop is not None and stop():
                return t
        if heap and until > self.now:
            self.now = until
        return self.now

    def trace_digest(self) -> str:
        """Hash of every delivery and timer so far (time, node, length, first 32 bytes)."""
        if self._hash is None:
            raise RuntimeError("SimNetwork(trace=False) keeps no trace")
        return self._hash.hexdigest()

    # --- internals ---------------------------------------------------------------------------

    def _port(self, node: Node) -> _Port:
        port = self._ports.get(id(node))
        if port is None or port.node is not node:
            raise KeyError(f"node {node.address} was never added")
        return port

    def _invalidate(self, group: Addr) -> None:
        for key in [key for key in self._plans if key[0] == group]:
            del self._plans[key]

    def _fire(self, port: _Port, t: float, trace: Callable[[bytes], None] | None) -> None:
        port.deadline = None
        port.timer_seq = -1
        if t == port.last_fire:
            port.spins += 1
            if port.spins > self.max_spins:
                raise SimLivelock(f"{port.address}: {port.spins} timer firings at t={t}")
        else:
            port.last_fire = t
            port.spins = 0
        port.stats.timers += 1
        if trace is not None:
            trace(_TRACE.pack(t, 0, 1) + port.tag)
        port.session.handle_timer(t)
        self._step(port, t)

    def _step(self, port: _Port, now: float) -> None:
        """Drain events, send what is due, re-arm the one timer (the driver loop of §3)."""
        session = port.session
        node = port.node
        event = session.next_event()
        if event is None:
            out = session.datagrams_to_send(now)
            if out:
                self._send(port, out, now)
                event = session.next_event()
            if event is None:  # the common case: a datagram that changed nothing outside
                self._rearm(port, session, now)
                return
        while event is not None:
            node.on_event(event, self)
            event = session.next_event()
        for _ in range(_MAX_ROUNDS):
            out = session.datagrams_to_send(now)
            if out:
                self._send(port, out, now)
            event = session.next_event()
            if event is None:
                break
            while event is not None:  # e.g. BlockWanted raised while sending: feed, send again
                node.on_event(event, self)
                event = session.next_event()
        else:
            raise SimLivelock(f"{port.address}: events never stop at t={now}")
        self._rearm(port, session, now)

    def _rearm(self, port: _Port, session: Session, now: float) -> None:
        if not port.alive:
            return
        deadline = session.get_timer()
        if deadline is None:
            port.deadline = None
            port.timer_seq = -1
        elif deadline != port.deadline:
            port.deadline = deadline
            seq = next(self._seq)
            port.timer_seq = seq
            heapq.heappush(self._heap, (deadline if deadline > now else now, seq, _TIMER,
                                        port, None, None))

    def _send(self, port: _Port, out: Sequence[tuple[bytes, Addr]], now: float) -> None:
        st = port.stats
        by_dest = st.by_dest
        up = port.up
        is_group = self._is_group
        for data, dest in out:
            n = len(data)
            group = is_group.get(dest)
            if group is None:
                group = is_group[dest] = is_multicast(dest)
            if group:
                st.sent_multicast += 1
                st.sent_multicast_bytes += n
            else:
                st.sent_unicast += 1
                st.sent_unicast_bytes += n
            counts = by_dest.get(dest)
            if counts is None:
                counts = by_dest[dest] = [0, 0]
            counts[0] += 1
            counts[1] += n
            if up is None:
                self._route(port, data, dest, now)
            else:
                for t in up.transmit(now, n):
                    heapq.heappush(self._heap, (t, next(self._seq), _LAN, port,
                                                up.maybe_corrupt(data), dest))

    def _route(self, src: _Port, data: bytes, dest: Addr, now: float) -> None:
        """The LAN: fan a group datagram out to its members, or hand a unicast to its host."""
        if self._is_group.get(dest):
            plan = self._plans.get((dest, src))
            if plan is None:
                plan = self._plans[(dest, src)] = self._make_plan(dest, src)
            self._fan_out(plan, data, src.address, now)
            return
        target = self._by_addr.get(dest)
        if target is None:
            src.stats.unroutable += 1
        else:
            self._through(target, data, src.address, now)

    def _make_plan(self, group: Addr, src: _Port) -> _Plan:
        fast: dict[float, tuple[list[_Port], list[tuple[_Port, Link, float]]]] = {}
        slow: list[_Port] = []
        for port in self._groups.get(group, {}):
            if port is src:
                continue  # no multicast loopback to the sender
            link = port.down
            if not link.loss_only:
                slow.append(port)
                continue
            always, lossy = fast.setdefault(link.delay, ([], []))
            if link.lossy:
                lossy.append((port, link, link.bernoulli))
            else:
                always.append(port)
        return (tuple((delay, tuple(a), tuple(lo)) for delay, (a, lo) in fast.items()),
                tuple(slow))

    def _fan_out(self, plan: _Plan, data: bytes, src: Addr, now: float) -> None:
        heap = self._heap
        push = heapq.heappush
        seq = self._seq
        rand = self.rng.random
        fast, slow = plan
        for delay, always, lossy in fast:
            ports: Sequence[_Port] = always
            if lossy:
                got = list(always)
                for port, link, p in lossy:
                    if p < 0.0:
                        if not link.lost(now):
                            got.append(port)
                    elif rand() >= p:
                        got.append(port)
                    else:
                        link.dropped_loss += 1
                if not got:
                    continue
                ports = got
            elif not ports:
                continue
            push(heap, (now + delay, next(seq), _BATCH, ports, data, src))
        if not slow:
            return
        # Full link models: members landing at the same instant (same rate, same backlog) still
        # share one heap entry; a corrupted copy travels alone.
        n = len(data)
        at: dict[float, list[_Port]] = {}
        for port in slow:
            link = port.down
            for t in link.transmit(now, n):
                if link.corrupts:
                    copy = link.maybe_corrupt(data)
                    if copy is not data:
                        push(heap, (t, next(seq), _BATCH, (port,), copy, src))
                        continue
                ports_at = at.get(t)
                if ports_at is None:
                    at[t] = [port]
                else:
                    ports_at.append(port)
        for t, ports_at in at.items():
            push(heap, (t, next(seq), _BATCH, ports_at, data, src))

    def _through(self, port: _Port, data: bytes, src: Addr, now: float) -> None:
        """One datagram through ``port``'s downlink with the full link model."""
        link = port.down
        for t in link.transmit(now, len(data)):
            heapq.heappush(self._heap, (t, next(self._seq), _BATCH, (port,),
                                        link.maybe_corrupt(data) if link.corrupts else data, src))
