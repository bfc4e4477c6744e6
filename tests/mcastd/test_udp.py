"""The batched UDP endpoint: GSO runs keep datagram boundaries, GRO splits them again, and the
plain fallback does the same. Unicast on 127.0.0.1 only (multicast is tested in the lab)."""

from __future__ import annotations

import socket

import pytest
import trio

from mcastd.udp import UdpEndpoint, default_interface, gro_supported, gso_supported
from protocol.config import Addr

A: Addr = ("239.1.1.1", 9)
B: Addr = ("239.1.1.2", 9)


def runs(sizes_and_dests: list[tuple[int, Addr]]) -> list[int]:
    batch = [(bytes(n), dest) for n, dest in sizes_and_dests]
    ends, i = [], 0
    while i < len(batch):
        i = UdpEndpoint._gso_run(batch, i)
        ends.append(i)
    return ends


def test_a_gso_run_needs_one_destination_and_one_size_but_the_last() -> None:
    assert runs([(1472, A)] * 3) == [3]
    assert runs([(1472, A), (1472, A), (900, A), (1472, A)]) == [3, 4]  # short one ends it
    assert runs([(1472, A), (1472, B)]) == [1, 2]
    assert runs([(100, A), (1472, A)]) == [1, 2]  # a longer one cannot follow
    assert runs([(1472, A)] * 100) == [44, 88, 100]  # 64 KB per send at most


def pair(gso: bool, gro: bool) -> tuple[UdpEndpoint, UdpEndpoint]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # loopback has no backpressure
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    return UdpEndpoint(tx, gso=gso), UdpEndpoint(rx, gro=gro)


@pytest.mark.parametrize(("gso", "gro"), [(False, False), (True, False), (False, True),
                                          (True, True)])
async def test_datagrams_arrive_whole_and_in_order(gso: bool, gro: bool) -> None:
    if gso and not gso_supported() or gro and not gro_supported():
        pytest.skip("this kernel lacks UDP GSO/GRO")
    tx, rx = pair(gso, gro)
    try:
        dest = rx.address
        sent = [(bytes([i % 251]) * 1472, dest) for i in range(100)] + [(b"tail", dest)]
        start = 0
        with trio.fail_after(10):
            while start < len(sent):
                start = tx.send_batch(sent, start)
                if start < len(sent):
                    await tx.wait_writable()
            got: list[tuple[bytes, Addr]] = []
            while len(got) < len(sent):
                await rx.wait_readable()
                rx.receive_batch(got, 1000)
        assert [d for d, _ in got] == [d for d, _ in sent]
        assert {a for _, a in got} == {tx.address}
    finally:
        tx.close()
        rx.close()


def test_the_default_interface_comes_from_the_route_table(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\n"
        "lab0\t00004D0A\t00000000\t0001\n"
        "wan7\t00000000\t0101A8C0\t0003\n"
    )
    assert default_interface(str(table)) == "wan7"
    table.write_text("Iface\tDestination\tGateway\tFlags\n")
    with pytest.raises(Exception, match="pass --interface"):
        default_interface(str(table))
