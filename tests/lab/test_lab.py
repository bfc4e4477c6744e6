"""The kernel lab itself: build and teardown, multicast over the bridge, loss, rate (root only)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time

import pytest
from pyroute2 import netns

from netsim.lab import Lab, LabError, LabHost, lab_available

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]

GROUP, PORT = "239.255.77.9", 9999

# Joins GROUP on the lab address, prints "ready", counts datagrams until it has `expect` or the
# traffic stops for 0.2 s, then prints "count seconds-from-first-to-last". Bounded by `limit`.
RECEIVE = """
import socket, sys, time
group, port, ifaddr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
expect, limit = int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: Python has no name for it
s.bind((group, port))
mreq = socket.inet_aton(group) + socket.inet_aton(ifaddr)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s.settimeout(0.2)
print("ready", flush=True)
n, first, last, end = 0, 0.0, 0.0, time.monotonic() + limit
while n < expect and time.monotonic() < end:
    try:
        s.recv(65535)
    except socket.timeout:
        if n:
            break
        continue
    last = time.monotonic()
    first = first or last
    n += 1
print(n, last - first)
"""

# Sends `count` datagrams of `size` bytes to GROUP out of the lab interface; a 1 ms pause every
# `pause_every` datagrams (0: none) keeps bursts below the kernel's per-CPU backlog.
SEND = """
import socket, sys, time
group, port, ifaddr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count, size, pause_every = map(int, sys.argv[4:7])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for i in range(count):
    s.sendto(bytes(size), (group, port))
    if pause_every and i % pause_every == pause_every - 1:
        time.sleep(0.001)
"""


def lab_namespaces(prefix: str) -> list[str]:
    return [name for name in netns.listnetns() if name.startswith(f"{prefix}-")]


def multicast(
    lab: Lab, to: list[LabHost], count: int, size: int = 100, pause_every: int = 100
) -> list[tuple[int, float]]:
    """Send ``count`` datagrams from the sender; each receiver's (received, seconds)."""
    with contextlib.ExitStack() as stack:  # closes the pipes also when an assertion fails
        procs = [
            stack.enter_context(lab.popen(host, [sys.executable, "-c", RECEIVE, GROUP, str(PORT),
                                                 host.ip, str(count), "10"],
                                          stdout=subprocess.PIPE))
            for host in to
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        lab.run(lab.sender, [sys.executable, "-c", SEND, GROUP, str(PORT), lab.sender.ip,
                             str(count), str(size), str(pause_every)], check=True, timeout=20)
        results = []
        for proc in procs:
            n, seconds = proc.communicate(timeout=15)[0].split()
            results.append((int(n), float(seconds)))
    return results


def test_builds_and_removes_everything() -> None:
    with Lab(2, extra_hosts=1) as lab:
        assert len(lab_namespaces(lab.prefix)) == 5  # the switch, sender, 2 receivers, 1 extra
        assert [h.ip for h in lab.hosts] == ["10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.4"]
        sleeper = lab.popen(lab.receivers[0], ["sleep", "30"])
    assert sleeper.returncode is not None  # killed with the lab
    assert lab_namespaces(lab.prefix) == []


def test_removes_everything_when_the_body_raises() -> None:
    lab = Lab(1)
    with pytest.raises(RuntimeError), lab:
        raise RuntimeError("boom")
    assert lab_namespaces(lab.prefix) == []


def test_sigterm_removes_the_lab() -> None:
    script = ("import time; from netsim.lab import Lab\n"
              "with Lab(1) as lab:\n print(lab.prefix, flush=True); time.sleep(20)")
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        prefix = proc.stdout.readline().decode().strip()
        assert lab_namespaces(prefix)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert lab_namespaces(prefix) == []


def test_multicast_reaches_every_receiver_and_stays_in_the_namespaces() -> None:
    root_interfaces = socket.if_nameindex()
    with Lab(3, extra_hosts=1) as lab:
        assert socket.if_nameindex() == root_interfaces
        for host in lab.hosts:
            links = lab.run(host, ["ip", "-o", "link", "show"], check=True, capture_output=True,
                            timeout=10).stdout.decode()
            assert sorted(line.split(":")[1].split("@")[0].strip()
                          for line in links.splitlines()) == ["lab0", "lo"]
        assert [n for n, _ in multicast(lab, lab.receivers, 200)] == [200, 200, 200]
    assert socket.if_nameindex() == root_interfaces


def test_loss_drops_about_the_asked_share() -> None:
    with Lab(2, loss_pct=[20.0, 0.0]) as lab:
        (lossy, _), (clean, _) = multicast(lab, lab.receivers, 2000)
        assert 0.70 * 2000 <= lossy <= 0.90 * 2000
        assert clean == 2000
        lab.set_loss(lab.receivers[0], 0.5)
        rules = lab.run(lab.receivers[0], ["nft", "list", "ruleset"], capture_output=True,
                        timeout=10).stdout.decode()
        assert "numgen random mod 1000 < 5 drop" in rules
        lab.set_loss(lab.receivers[0], 0)
        rules = lab.run(lab.receivers[0], ["nft", "list", "ruleset"], capture_output=True,
                        timeout=10).stdout.decode()
        assert "numgen" not in rules


def test_rate_limits_both_directions() -> None:
    with Lab(1, rate_mbit=100) as lab:
        receiver = lab.receivers[0]
        switch = LabHost("switch", lab.bridge_netns, "p-r0", "")
        for host in (lab.sender, receiver, switch):
            qdiscs = lab.run(host, ["tc", "qdisc", "show", "dev", host.ifname],
                             capture_output=True, timeout=10).stdout.decode()
            assert "tbf" in qdiscs and "rate 100Mbit" in qdiscs, qdiscs
        # 2 MB at 100 Mbit/s take 0.16 s; unlimited, a veth moves them in a few ms.
        started = time.monotonic()
        [(received, seconds)] = multicast(lab, [receiver], 1400, size=1472, pause_every=0)
        assert received > 1000
        assert 0.1 <= seconds < time.monotonic() - started
        lab.set_rate(lab.sender, None)
        qdiscs = lab.run(lab.sender, ["tc", "qdisc", "show", "dev", "lab0"],
                         capture_output=True, timeout=10).stdout.decode()
        assert "tbf" not in qdiscs


def test_refuses_a_namespace_it_did_not_create() -> None:
    prefix = f"{Lab(1).prefix}-dup"
    netns.create(f"{prefix}-r0")
    try:
        with pytest.raises(LabError, match="already exists"), Lab(1, prefix=prefix):
            pass
        assert lab_namespaces(prefix) == [f"{prefix}-r0"]  # the stranger's stays, ours are gone
    finally:
        netns.remove(f"{prefix}-r0")
