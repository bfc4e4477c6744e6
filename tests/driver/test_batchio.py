"""Batched datagram I/O, both twins (pure socket calls and the compiled recvmmsg/sendmmsg/GSO)
on real loopback sockets: the same datagrams arrive whole, in order, with their source, and a
send run stops where one system call must. Unicast on 127.0.0.1 only: nothing leaves the host."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator

import pytest

from driver import batchio
from driver.batchio import RecvRing, recv_into_py, run_end, send_run_py
from driver.udp import UDP_GRO, gro_supported, gso_supported
from protocol.config import Addr

A: Addr = ("239.1.1.1", 9)
B: Addr = ("239.1.1.2", 9)

try:
    from driver._batchio import recv_into as recv_c
    from driver._batchio import send_run as send_c
except ImportError:  # pragma: no cover
    recv_c = send_c = None


def compiled_recv(sock: socket.socket, ring: RecvRing, gro: bool) -> int:
    assert recv_c is not None
    got: int = recv_c(sock.fileno(), ring.buf, batchio.SLOT_SIZE, ring.nslots, ring.spans,
                      ring.slots, ring.addrs, gro)
    return max(got, 0)


def compiled_send(sock: socket.socket, datagrams: list[tuple[bytes, Addr]], start: int,
                  gso: bool) -> tuple[int, int]:
    assert send_c is not None
    result: tuple[int, int] = send_c(sock.fileno(), datagrams, start, gso)
    return result


Recv = Callable[[socket.socket, RecvRing, bool], int]
Send = Callable[[socket.socket, list[tuple[bytes, Addr]], int, bool], tuple[int, int]]
RECEIVERS: dict[str, Recv] = {"pure": recv_into_py, "compiled": compiled_recv}
SENDERS: dict[str, Send] = {"pure": send_run_py, "compiled": compiled_send}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the pure twin runs")
def test_the_install_built_the_compiled_twin() -> None:
    assert batchio.COMPILED and recv_c is not None and send_c is not None


def ends(sizes_and_dests: list[tuple[int, Addr]], gso: bool = True) -> list[int]:
    batch = [(bytes(n), dest) for n, dest in sizes_and_dests]
    out, i = [], 0
    while i < len(batch):
        i = run_end(batch, i, gso)
        out.append(i)
    return out


def test_a_gso_run_needs_one_destination_and_one_size_but_the_last() -> None:
    assert ends([(1472, A)] * 3) == [3]
    assert ends([(1472, A), (1472, A), (900, A), (1472, A)]) == [3, 4]  # short one ends it
    assert ends([(1472, A), (1472, B)]) == [1, 2]
    assert ends([(100, A), (1472, A)]) == [1, 2]  # a longer one cannot follow
    assert ends([(1472, A)] * 100) == [44, 88, 100]  # 64 KB per send at most


def test_without_gso_a_run_needs_one_destination_only() -> None:
    assert ends([(1472, A), (900, A), (1472, A)], gso=False) == [3]
    assert ends([(1472, A)] * 100, gso=False) == [64, 100]
    assert ends([(1472, A), (1472, B), (1472, B)], gso=False) == [1, 3]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    yield tx, rx
    tx.close()
    rx.close()


@pytest.mark.parametrize("sender", sorted(SENDERS))
@pytest.mark.parametrize("receiver", sorted(RECEIVERS))
@pytest.mark.parametrize(("gso", "gro"), [(False, False), (True, False), (False, True),
                                          (True, True)])
def test_datagrams_cross_whole_in_order_with_their_source(
        pair: tuple[socket.socket, socket.socket], sender: str, receiver: str, gso: bool,
        gro: bool) -> None:
    if gso and not gso_supported() or gro and not gro_supported():
        pytest.skip("this kernel lacks UDP GSO/GRO")
    tx, rx = pair
    if gro:
        rx.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
    dest = rx.getsockname()
    sent = ([(bytes([i % 251]) * 1448, dest) for i in range(150)] + [(b"tail", dest)]
            + [(bytes([7]) * 900, dest)] * 3)
    start, calls = 0, 0
    while start < len(sent):
        start, err = SENDERS[sender](tx, sent, start, gso)
        assert err == 0
        calls += 1
    if gso or sender == "compiled":
        assert calls < len(sent) // 10  # many datagrams per system call
    ring = RecvRing(16)
    got: list[tuple[bytes, Addr]] = []
    for _ in range(1000):
        n = RECEIVERS[receiver](rx, ring, gro)
        got += [(ring.datagram(i), ring.address_of(i)) for i in range(n)]
        if len(got) >= len(sent):
            break
    assert [d for d, _ in got] == [d for d, _ in sent]
    assert {a for _, a in got} == {tx.getsockname()}


@pytest.mark.parametrize("receiver", sorted(RECEIVERS))
def test_nothing_queued_is_zero_datagrams(pair: tuple[socket.socket, socket.socket],
                                          receiver: str) -> None:
    _tx, rx = pair
    assert RECEIVERS[receiver](rx, RecvRing(4), False) == 0


@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_an_unreachable_destination_is_an_errno_not_an_exception(
        pair: tuple[socket.socket, socket.socket], sender: str) -> None:
    tx, _rx = pair
    # 127.0.0.1 cannot reach another network's host: the route lookup fails at once.
    next_index, err = SENDERS[sender](tx, [(b"x", ("192.0.2.1", 9))], 0, False)
    assert next_index == 0 and err != 0


def test_an_ipv6_source_address_is_read_back() -> None:
    ring = RecvRing(2)
    ring.put([(b"a", ("fe80::1", 9771)), (b"b", ("10.0.0.7", 1))])
    assert ring.address_of(0) == ("fe80::1", 9771)
    assert ring.address_of(1) == ("10.0.0.7", 1)
    assert [ring.datagram(0), ring.datagram(1)] == [b"a", b"b"]
