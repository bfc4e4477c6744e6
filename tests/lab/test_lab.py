"""The kernel lab itself: build and teardown, multicast over the bridge, loss, rate, a snooping
switch that forgets members (root only)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time

import pytest
from pyroute2 import netns

from lab.net import Lab, LabError, LabHost, lab_available

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


# Joins `group` on the lab address, prints "ready", then counts the datagrams of each second for
# `seconds` s and prints the counts. `rejoin` > 0: drops and re-adds the membership that often.
COUNT_PER_SECOND = """
import socket, sys, time
group, port, ifaddr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seconds, rejoin = int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((group, port))
mreq = socket.inet_aton(group) + socket.inet_aton(ifaddr)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print("ready", flush=True)
counts, start = [0] * seconds, time.monotonic()
next_rejoin = start + rejoin
while (now := time.monotonic()) < start + seconds:
    if rejoin > 0 and now >= next_rejoin:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        next_rejoin += rejoin
    s.settimeout(max(0.01, min(0.1, start + seconds - now)))
    try:
        s.recv(65535)
    except socket.timeout:
        continue
    second = int(time.monotonic() - start)
    if second < seconds:
        counts[second] += 1
print(*counts, flush=True)
"""

# Sends one small datagram to `group` out of the lab interface every `gap` s, `count` times.
TRICKLE = """
import socket, sys, time
group, port, ifaddr, count, gap = *sys.argv[1:4], int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for _ in range(count):
    s.sendto(b"tick", (group, int(port)))
    time.sleep(gap)
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
    script = ("import time; from lab.net import Lab\n"
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


def test_per_receiver_rates() -> None:
    with Lab(2, rate_mbit=[10, None], extra_hosts=1) as lab:
        switch = [LabHost(f"p-{h.name}", lab.bridge_netns, f"p-{h.name}", "") for h in lab.hosts]
        for host in [*lab.hosts, *switch]:
            qdiscs = lab.run(host, ["tc", "qdisc", "show", "dev", host.ifname],
                             capture_output=True, timeout=10).stdout.decode()
            limited = host.name in ("r0", "p-r0")
            assert ("tbf" in qdiscs and "rate 10Mbit" in qdiscs) == limited, (host, qdiscs)
            assert limited or "tbf" not in qdiscs, (host, qdiscs)
        assert [lab.rate_of(h) for h in lab.hosts] == [None, 10, None, None]


def test_a_snooping_switch_forgets_members_that_do_not_rejoin() -> None:
    group = "239.255.77.50"
    with Lab(2, igmp_forget_after=2, extra_hosts=1) as lab, contextlib.ExitStack() as stack:
        switch = LabHost("switch", lab.bridge_netns, "br0", "")
        details = lab.run(switch, ["ip", "-d", "link", "show", "br0"], capture_output=True,
                          check=True, timeout=10).stdout.decode()
        for option in ("mcast_snooping 1", "mcast_membership_interval 200", "mcast_igmp_version 3",
                       "mcast_querier 1"):
            assert option in details, details
        ports = lab.run(switch, ["bridge", "-d", "link", "show"], capture_output=True,
                        check=True, timeout=10).stdout.decode()
        floods = {line.split(":")[1].split("@")[0].strip(): "mcast_flood on" in detail
                  for line, detail in zip(ports.splitlines()[::2], ports.splitlines()[1::2],
                                          strict=True)}
        assert floods == {"p-sender": True, "p-r0": False, "p-r1": False, "p-x0": False}

        # r0 joins once; r1 drops and re-adds its membership every second.
        procs = [
            stack.enter_context(lab.popen(host, [sys.executable, "-c", COUNT_PER_SECOND, group,
                                                 str(PORT), host.ip, "6", rejoin],
                                          stdout=subprocess.PIPE))
            for host, rejoin in zip(lab.receivers, ["0", "1"], strict=True)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        lab.run(lab.sender, [sys.executable, "-c", TRICKLE, group, str(PORT), lab.sender.ip,
                             "120", "0.05"], check=True, timeout=20)
        once, rejoining = ([int(n) for n in proc.communicate(timeout=15)[0].split()]
                           for proc in procs)
        mdb = lab.run(switch, ["bridge", "mdb", "show"], capture_output=True, check=True,
                      timeout=10).stdout.decode()
    # 20 a second while the switch knows r0; its join report and the one repeat within 1 s
    # keep it for at most ~3 s, then nothing reaches it.
    assert once[0] >= 15, once
    assert once[-2:] == [0, 0], once
    assert all(n >= 15 for n in rejoining), rejoining
    assert f"port p-r1 grp {group}" in mdb and f"port p-r0 grp {group}" not in mdb, mdb


def test_refuses_a_namespace_it_did_not_create() -> None:
    prefix = f"{Lab(1).prefix}-dup"
    netns.create(f"{prefix}-r0")
    try:
        with pytest.raises(LabError, match="already exists"), Lab(1, prefix=prefix):
            pass
        assert lab_namespaces(prefix) == [f"{prefix}-r0"]  # the stranger's stays, ours are gone
    finally:
        netns.remove(f"{prefix}-r0")
