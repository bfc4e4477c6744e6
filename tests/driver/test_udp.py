"""The batched UDP endpoint: GSO runs keep datagram boundaries, GRO splits them again, and the
plain fallback does the same. Unicast on 127.0.0.1, and multicast only on ``lo`` named
explicitly (with TTL 0): nothing here may leave the host (the rest is tested in the lab)."""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from driver.batchio import RecvRing
from driver.udp import (
    SEND_BUFFER_MIN,
    SOCKET_BUFFER,
    NetworkError,
    UdpEndpoint,
    default_interface,
    gro_supported,
    gso_supported,
    interface_speed,
    open_group_listener,
    open_sender,
    send_buffer_for,
    socket_drops,
)
from protocol.config import CONTROL_PORTS, Addr


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
            ring = RecvRing()
            while len(got) < len(sent):
                await rx.wait_readable()
                got += [(ring.datagram(i), ring.address_of(i))
                        for i in range(rx.receive_into(ring))]
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
    none = tmp_path / "none"
    assert default_interface(str(table), str(none)) == "wan7"
    table.write_text("Iface\tDestination\tGateway\tFlags\n")
    with pytest.raises(Exception, match="pass --interface"):
        default_interface(str(table), str(none))
    # An IPv6-only LAN: the IPv6 default route's interface (the kernel's unreachable one on lo
    # does not count).
    ipv6 = tmp_path / "ipv6_route"
    ipv6.write_text(
        f"{'0' * 32} 00 {'0' * 32} 00 {'0' * 32} ffffffff 00000001 00000000 00200200       lo\n"
        f"fe80{'0' * 28} 40 {'0' * 32} 00 {'0' * 32} 00000100 00000001 00000000 00000001  lab0\n"
        f"{'0' * 32} 00 {'0' * 32} 00 fe80{'0' * 27}1 00000400 00000003 00000000 00000003  wan6\n"
    )
    assert default_interface(str(table), str(ipv6)) == "wan6"


def test_a_full_receive_buffer_counts_its_drops() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx_sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh,
    ):
        rx_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        rx_sock.bind(("127.0.0.1", 0))
        fresh.bind(("127.0.0.1", 0))
        rx = UdpEndpoint(rx_sock)
        if rx.drops() is None:
            pytest.skip("this kernel has no SO_MEMINFO drop counter")
        assert rx.drops() == 0
        dest = rx_sock.getsockname()
        for _ in range(200):  # unread: a few fit, the rest overflow
            tx.sendto(bytes(1400), dest)
        drops = rx.drops()
        assert drops is not None and 0 < drops < 200
        assert socket_drops(fresh) == 0


def test_a_closed_socket_has_no_drop_count() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.close()
    assert socket_drops(sock) is None


LO_GROUP = "239.255.77.99"


def lo_sender() -> socket.socket:
    """A socket whose multicast goes out of ``lo`` only, and with TTL 0 never off the host."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lo = socket.if_nametoindex("lo")
    mreqn = socket.inet_aton("0.0.0.0") + socket.inet_aton("0.0.0.0") + struct.pack("=i", lo)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def received(endpoint: UdpEndpoint, timeout: float = 2.0) -> list[bytes]:
    readable, _, _ = select.select([endpoint.sock], [], [], timeout)
    if not readable:
        return []
    ring = RecvRing(10)
    return [ring.datagram(i) for i in range(endpoint.receive_into(ring))]


def test_a_group_listener_still_receives_after_reasserting_membership() -> None:
    listener = open_group_listener((LO_GROUP, 0), "lo", gro=False, buffer=1 << 16)
    try:
        lo = socket.if_nametoindex("lo")
        assert listener.membership == (
            socket.inet_aton(LO_GROUP) + socket.inet_aton("0.0.0.0") + struct.pack("=i", lo)
        )
        port = listener.address[1]
        with lo_sender() as tx:
            tx.sendto(b"before", (LO_GROUP, port))
            assert received(listener) == [b"before"]
            listener.reassert_membership()
            listener.reassert_membership()
            tx.sendto(b"after", (LO_GROUP, port))
            assert received(listener) == [b"after"]
    finally:
        listener.close()


def test_reasserting_is_a_no_op_without_a_group_and_a_sentence_on_failure() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        plain = UdpEndpoint(sock)
        assert plain.membership is None
        plain.reassert_membership()
    listener = open_group_listener((LO_GROUP, 0), "lo", gro=False, buffer=1 << 16)
    listener.close()
    with pytest.raises(NetworkError, match=f"cannot renew membership of .* group {LO_GROUP}"):
        listener.reassert_membership()


_UNREACHABLE_SEND = """
import socket
from driver.udp import UdpEndpoint
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
endpoint = UdpEndpoint(sock)
batch = [(b"x", ("10.9.9.9", 9)), (b"y", ("10.9.9.9", 9)), (b"z", ("10.9.9.8", 9))]
print(endpoint.send_batch(batch), endpoint.send_batch(batch, 2), endpoint.unreachable)
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare (a network namespace with no routes)")
def test_an_unreachable_network_loses_the_datagrams_and_goes_on() -> None:
    # In a fresh network namespace nothing is routed, as after a cable is pulled: the send
    # fails with ENETUNREACH, which loses the run's datagrams, not the program.
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", _UNREACHABLE_SEND],
                          capture_output=True, text=True, timeout=60, check=True,
                          cwd=Path(__file__).parents[2])
    assert done.stdout.split() == ["2", "3", "3"]


def test_the_senders_socket_buffer_is_20_ms_of_its_rate_within_bounds() -> None:
    assert send_buffer_for(100e6) == 250_000
    assert send_buffer_for(1e6) == SEND_BUFFER_MIN  # one GSO batch at least
    assert send_buffer_for(100e9) == SOCKET_BUFFER


def test_the_sender_opens_its_socket_with_that_buffer() -> None:
    endpoint = open_sender("lo", 0, 100e6, gso=False)
    try:
        # The kernel reports double what was set (its bookkeeping share); without root it caps
        # the buffer at net.core.wmem_max.
        cap = 250_000 if os.geteuid() == 0 else int(
            Path("/proc/sys/net/core/wmem_max").read_text())
        assert endpoint.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * min(
            250_000, cap)
    finally:
        endpoint.close()


def test_concurrent_senders_take_the_first_free_control_ports_of_the_range() -> None:
    first = open_sender("lo", 0, 100e6, gso=False)
    second = open_sender("lo", 0, 100e6, gso=False)
    try:
        ports = [first.address[1], second.address[1]]
        assert all(port in CONTROL_PORTS for port in ports)
        assert ports[0] != ports[1]
    finally:
        first.close()
        second.close()
    # A session that is gone leaves its port free for the next one.
    again = open_sender("lo", 0, 100e6, gso=False)
    try:
        assert again.address[1] in CONTROL_PORTS
    finally:
        again.close()


def test_a_control_port_that_is_taken_is_refused_in_one_sentence() -> None:
    first = open_sender("lo", 0, 100e6, gso=False)
    try:
        with pytest.raises(NetworkError, match=f"udp port {first.address[1]} .* is taken"):
            open_sender("lo", 0, 100e6, gso=False, control_port=first.address[1])
    finally:
        first.close()


def test_the_link_speed_comes_from_sysfs_where_the_nic_tells_it(tmp_path: Path) -> None:
    for name, text in (("eth0", "100\n"), ("veth0", "10000\n"), ("wlan0", "-1\n"), ("x", "?")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "speed").write_text(text)
    assert interface_speed("eth0", str(tmp_path)) == 100e6
    assert interface_speed("veth0", str(tmp_path)) == 10e9
    assert interface_speed("wlan0", str(tmp_path)) is None  # unknown: -1
    assert interface_speed("x", str(tmp_path)) is None
    assert interface_speed("nosuch", str(tmp_path)) is None
