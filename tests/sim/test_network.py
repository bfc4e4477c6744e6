"""SimNetwork with toy sessions: routing, timing, crashes, determinism, livelock guard."""

from __future__ import annotations

from collections import deque

import pytest

from netsim.link import GilbertElliott, LinkSpec
from netsim.network import Addr, Node, SimLivelock, SimNetwork

GROUP: Addr = ("239.1.1.1", 5000)
SENDER: Addr = ("10.0.0.1", 4000)


class Toy:
    """Sends ``count`` datagrams to ``dest`` every ``period`` s; answers b"ping" with b"pong";
    records every arrival and raises an event per arrival."""

    def __init__(self, dest: Addr | None = None, count: int = 0, period: float = 0.01,
                 size: int = 100) -> None:
        self.dest, self.left, self.period, self.size = dest, count, period, size
        self.sent = 0
        self.got: list[tuple[bytes, Addr, float]] = []
        self.out: list[tuple[bytes, Addr]] = []
        self.events: deque[object] = deque()
        self.deadline: float | None = 0.0 if count else None

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        self.got.append((data, addr, now))
        self.events.append(("got", data))
        if data == b"ping":
            self.out.append((b"pong", addr))

    def handle_timer(self, now: float) -> None:
        assert self.dest is not None and self.deadline is not None and now >= self.deadline
        self.out.append((self.sent.to_bytes(4, "big") * (self.size // 4), self.dest))
        self.sent += 1
        self.left -= 1
        self.deadline = now + self.period if self.left else None

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return self.deadline

    def next_event(self) -> object | None:
        return self.events.popleft() if self.events else None


class ToyNode(Node):
    def __init__(self, address: Addr, session: Toy) -> None:
        super().__init__(address, session)
        self.toy = session
        self.seen: list[tuple[object, float]] = []

    def on_event(self, event: object, net: SimNetwork) -> None:
        self.seen.append((event, net.now))


def host(i: int) -> Addr:
    return (f"10.0.1.{i}", 5000)


def lan(net: SimNetwork, n: int, link: LinkSpec | None = None, count: int = 50
        ) -> tuple[ToyNode, list[ToyNode]]:
    sender = ToyNode(SENDER, Toy(GROUP, count))
    receivers = [ToyNode(host(i), Toy()) for i in range(n)]
    for r in receivers:
        net.add_node(r, link, groups=[GROUP])
    net.add_node(sender, groups=[GROUP])  # a member too: must not hear itself
    return sender, receivers


def test_multicast_reaches_every_member_but_not_the_sender() -> None:
    net = SimNetwork(1)
    sender, receivers = lan(net, 5)
    outsider = ToyNode(host(99), Toy())
    net.add_node(outsider)
    net.run(10.0)
    assert all(len(r.toy.got) == 50 for r in receivers)
    assert [addr for _, addr, _ in receivers[0].toy.got] == [SENDER] * 50
    assert sender.toy.got == [] and outsider.toy.got == []
    st = net.stats(sender)
    assert (st.sent_multicast, st.sent_multicast_bytes, st.sent_unicast) == (50, 5000, 0)
    assert st.by_dest == {GROUP: [50, 5000]}
    assert net.stats(receivers[0]).received == 50


def test_events_are_drained_into_on_event_at_delivery_time() -> None:
    net = SimNetwork(1)
    _, receivers = lan(net, 1, LinkSpec(delay=0.003), count=3)
    net.run(1.0)
    assert [t for _, t in receivers[0].seen] == pytest.approx([0.003, 0.013, 0.023])


def send_later(net: SimNetwork, t: float, node: ToyNode, data: bytes, dest: Addr) -> None:
    def action() -> None:
        node.toy.out.append((data, dest))
        net.wake(node)

    net.at(t, action)


def test_unicast_reaches_only_its_host_and_replies_route_back() -> None:
    net = SimNetwork(1)
    sender, receivers = lan(net, 3, count=0)
    send_later(net, 1.0, receivers[1], b"ping", SENDER)
    net.run(2.0)
    assert [(d, a) for d, a, _ in sender.toy.got] == [(b"ping", receivers[1].address)]
    assert [d for d, _, _ in receivers[1].toy.got] == [b"pong"]
    assert receivers[0].toy.got == [] and receivers[2].toy.got == []
    assert net.stats(receivers[1]).sent_unicast == 1 and net.stats(sender).sent_unicast == 1


def test_ping_pong_over_delayed_links() -> None:
    net = SimNetwork(1)
    server = ToyNode(SENDER, Toy())
    client = ToyNode(host(1), Toy())
    net.add_node(server, LinkSpec(delay=0.01))
    net.add_node(client, LinkSpec(delay=0.02), uplink=LinkSpec(delay=0.005))
    send_later(net, 1.0, client, b"ping", SENDER)
    net.run(2.0)
    assert [t for *_, t in server.toy.got] == [pytest.approx(1.015)]  # uplink + downlink
    assert [t for *_, t in client.toy.got] == [pytest.approx(1.035)]


def test_unroutable_unicast_is_counted() -> None:
    net = SimNetwork(1)
    node = ToyNode(host(1), Toy(("10.9.9.9", 1), count=3))
    net.add_node(node)
    net.run(1.0)
    assert net.stats(node).unroutable == 3 and net.stats(node).sent_unicast == 3


def test_lossy_fanout_is_independent_per_receiver() -> None:
    net = SimNetwork(7)
    _, receivers = lan(net, 20, LinkSpec(loss=0.2), count=2000)
    net.run(100.0)
    counts = [len(r.toy.got) for r in receivers]
    assert all(1500 < c < 1700 for c in counts)
    assert len(set(counts)) > 5  # not the same decision for everyone
    firsts = {tuple(d for d, _, _ in r.toy.got[:20]) for r in receivers}
    assert len(firsts) == 20


def test_mixed_links_in_one_group_keep_their_own_timing() -> None:
    net = SimNetwork(2)
    sender = ToyNode(SENDER, Toy(GROUP, count=10, period=0.1, size=972))
    specs = [LinkSpec(), LinkSpec(delay=0.05), LinkSpec(loss=0.5, delay=0.05),
             LinkSpec(rate_bps=1e6), LinkSpec(burst_loss=GilbertElliott(0.1, 0.5))]
    nodes = [ToyNode(host(i), Toy()) for i in range(len(specs))]
    for node, spec in zip(nodes, specs, strict=True):
        net.add_node(node, spec, groups=[GROUP])
    net.add_node(sender)
    net.run(5.0)
    sent = [i * 0.1 for i in range(10)]
    assert [t for *_, t in nodes[0].toy.got] == pytest.approx(sent)
    assert [t for *_, t in nodes[1].toy.got] == pytest.approx([t + 0.05 for t in sent])
    assert 0 < len(nodes[2].toy.got) < 10
    assert [t for *_, t in nodes[3].toy.got] == pytest.approx([t + 0.008 for t in sent])
    assert net.downlink(nodes[2]).dropped_loss == 10 - len(nodes[2].toy.got)


def test_crash_drops_traffic_and_a_restart_hears_the_rest() -> None:
    net = SimNetwork(1)
    sender, receivers = lan(net, 2, LinkSpec(delay=0.001), count=100)
    victim = receivers[0]
    fresh = ToyNode(victim.address, Toy())
    net.at(0.2505, lambda: net.crash(victim))  # sends happen every 10 ms from 0
    net.at(0.7505, lambda: net.add_node(fresh, LinkSpec(delay=0.001), groups=[GROUP]))
    net.run(10.0)
    assert len(receivers[1].toy.got) == 100
    assert len(victim.toy.got) == 25  # the one in flight at the crash is lost too
    assert len(fresh.toy.got) == 100 - 76
    assert not net.is_alive(victim) and net.is_alive(fresh)
    assert net.members(GROUP) == [receivers[1], sender, fresh]


def test_late_join_hears_only_later_datagrams() -> None:
    net = SimNetwork(1)
    _, receivers = lan(net, 1, count=100)
    late = ToyNode(host(50), Toy())
    net.at(0.5, lambda: net.add_node(late, groups=[GROUP]))
    net.run(10.0)
    assert len(late.toy.got) == 50 and late.toy.got[0][2] == pytest.approx(0.5)


def test_run_until_and_stop() -> None:
    net = SimNetwork(1)
    _, receivers = lan(net, 1, count=100)
    assert net.run(0.255) == 0.255 and len(receivers[0].toy.got) == 26
    t = net.run(10.0, stop=lambda: len(receivers[0].toy.got) >= 40)
    assert t == pytest.approx(0.39) and len(receivers[0].toy.got) == 40
    assert net.run(10.0) == pytest.approx(0.99)  # nothing left: time stops at the last event
    with pytest.raises(ValueError):
        net.at(0.5, lambda: None)


def _traced_run(seed: int) -> str:
    net = SimNetwork(seed)
    spec = LinkSpec(loss=0.1, delay=0.001, jitter=0.002, duplicate=0.05, reorder=0.05,
                    reorder_delay=0.01, corrupt=0.01, rate_bps=50e6, queue_bytes=64 * 1024)
    lan(net, 10, spec, count=300)
    lan_b = [ToyNode(host(100 + i), Toy()) for i in range(5)]
    for node in lan_b:
        net.add_node(node, LinkSpec(burst_loss=GilbertElliott(0.05, 0.3)), groups=[GROUP])
    net.run(10.0)
    return net.trace_digest()


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    assert _traced_run(1) == _traced_run(1)
    assert _traced_run(1) != _traced_run(2)


def test_duplicate_address_is_refused() -> None:
    net = SimNetwork(1)
    net.add_node(ToyNode(host(1), Toy()))
    with pytest.raises(ValueError):
        net.add_node(ToyNode(host(1), Toy()))


class Stuck(Toy):
    """A broken session: always due, never advancing."""

    def handle_timer(self, now: float) -> None:
        pass

    def get_timer(self) -> float | None:
        return 0.0


def test_livelock_is_caught() -> None:
    net = SimNetwork(1, max_spins=1000)
    net.add_node(ToyNode(host(1), Stuck()))
    with pytest.raises(SimLivelock):
        net.run(1.0)
