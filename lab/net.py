"""The kernel lab: a switch and a classroom of hosts built from network namespaces (needs root).

One namespace holds a Linux bridge (the switch); every host (sender, receivers, extras) gets its
own namespace, joined to the bridge by a veth pair whose host end is ``lab0``. Nothing is ever
created in the root namespace, so no lab traffic can reach the machine's real interfaces.
``tc tbf`` limits a host's link speed in both directions and an nftables ``numgen random`` rule
drops a share of the UDP a host receives (this kernel has no netem). ``igmp_forget_after`` makes
the switch an IGMP-snooping one that forgets members who do not re-assert their membership. Run
the real programs inside with :meth:`Lab.popen` / :meth:`Lab.run`; leaving the ``with`` block
removes everything.

``python -m lab classroom ...`` runs the real sender and receivers here (lab/cli.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from pyroute2 import NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

IFNAME = "lab0"  # every host's lab interface, inside its own namespace
BRIDGE = "br0"
_TC_ROOT = 0xFFFFFFFF
_NFT_TABLE = "mclab"
_QUERY_RESPONSE_CS = 10  # the snooping switch's query response interval, centiseconds
_counter = itertools.count()


class LabError(Exception):
    """The lab cannot be built here; the message says why in one sentence."""


@dataclass(frozen=True)
class LabHost:
    name: str  # "sender", "r0", "x0"
    netns: str
    ifname: str
    ip: str


def lab_available() -> str | None:
    """None when this machine can build a lab, else why not (for pytest skips)."""
    if os.geteuid() != 0:
        return "the kernel lab needs root"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"the kernel lab needs {' and '.join(missing)} on PATH"
    return None


class Lab:
    def __init__(
        self,
        receivers: int,
        *,
        rate_mbit: float | None | Sequence[float | None] = None,
        loss_pct: float | Sequence[float] = 0.0,
        extra_hosts: int = 0,
        subnet: str = "10.77.0.0/24",
        prefix: str | None = None,
        igmp_forget_after: float | None = None,
        mtu: int = 1500,
        querier: bool = False,
        ipv6_only: bool = False,
    ) -> None:
        """``rate_mbit``: one link speed for every host, or one per receiver (the sender and
        the extra hosts then get line speed); None is line speed. ``igmp_forget_after``: see
        :meth:`_snooping_switch`. ``mtu``: of every link (9000: a jumbo-frame LAN).
        ``querier``: the switch snoops IGMP and MLD and runs an ordinary querier of each (as a
        managed switch or a multicast router does), which answers a host's leave with a
        group-specific query;
        without it (and without ``igmp_forget_after``) the bridge snoops but has no querier.
        ``ipv6_only``: no IPv4 address anywhere, only the IPv6 link-local ones every
        interface makes itself (a host's ``ip`` is then its link-local address)."""
        if receivers < 0 or extra_hosts < 0:
            raise ValueError("host counts must be >= 0")
        losses = [loss_pct] * receivers if isinstance(loss_pct, int | float) else list(loss_pct)
        if len(losses) != receivers:
            raise ValueError(f"{len(losses)} loss values for {receivers} receivers")
        if rate_mbit is None or isinstance(rate_mbit, int | float):
            rates = [rate_mbit] * (1 + receivers + extra_hosts)
        else:
            per_receiver = list(rate_mbit)
            if len(per_receiver) != receivers:
                raise ValueError(f"{len(per_receiver)} rate values for {receivers} receivers")
            rates = [None, *per_receiver, *[None] * extra_hosts]
        if any(r is not None and r <= 0 for r in rates):
            raise ValueError(f"rates must be > 0 Mbit/s, not {rate_mbit}")
        if igmp_forget_after is not None and not 0.01 <= igmp_forget_after <= 86400:
            raise ValueError(f"igmp_forget_after must be within 0.01..86400 s, "
                             f"not {igmp_forget_after}")
        if querier and igmp_forget_after is not None:
            raise ValueError("igmp_forget_after already gives the switch a querier of its own")
        if not 1280 <= mtu <= 65535:
            raise ValueError(f"mtu must be within 1280..65535, not {mtu}")
        self.mtu = mtu
        self.ipv6_only = ipv6_only
        addresses = ipaddress.ip_network(subnet).hosts()
        self.prefixlen = ipaddress.ip_network(subnet).prefixlen
        self.prefix = prefix or f"mclab{os.getpid()}-{next(_counter)}"
        names = ["sender", *(f"r{i}" for i in range(receivers)),
                 *(f"x{i}" for i in range(extra_hosts))]
        try:
            hosts = [LabHost(n, f"{self.prefix}-{n}", IFNAME, str(next(addresses))) for n in names]
        except StopIteration:
            raise ValueError(f"subnet {subnet} is too small for {len(names)} hosts") from None
        self.sender = hosts[0]
        self.receivers = hosts[1 : 1 + receivers]
        self.extras = hosts[1 + receivers :]
        self.bridge_netns = f"{self.prefix}-switch"
        self.rate_mbit = rate_mbit if rate_mbit is None or isinstance(rate_mbit, int | float) \
            else list(rate_mbit)
        self.igmp_forget_after = igmp_forget_after
        self.querier = querier
        self._rates = rates  # per host, in self.hosts order
        self._losses = losses
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._old_sigterm: Any = None
        self._sigterm_installed = False
        self._terminating = False
        self._pid = 0  # of the process that entered the lab

    @property
    def hosts(self) -> list[LabHost]:
        return [self.sender, *self.receivers, *self.extras]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        if os.geteuid() != 0:
            raise LabError("the kernel lab needs root: run it as root (sudo), it creates network "
                           "namespaces, a bridge and traffic-control rules")
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._sigterm_installed = True
        try:
            self._build()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._teardown()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            # A forked child inherits this handler: pyroute2 stops its netns helpers with
            # SIGTERM, and unwinding our stack there would tear the lab down under us.
            os._exit(128 + signum)
        # Unwind through __exit__ once; a second SIGTERM must not interrupt the teardown.
        if not self._terminating:
            self._terminating = True
            raise SystemExit(128 + signum)

    def _build(self) -> None:
        for name in (self.bridge_netns, *(h.netns for h in self.hosts)):
            # Checked first: pyroute2 leaks two sockets when its create fails on an existing name.
            if name in netns.listnetns():
                raise LabError(f"network namespace {name} already exists: another lab uses this "
                               f"prefix or left it behind (ip netns del {name})")
            netns.create(name)
            self._namespaces.append(name)
            if self.ipv6_only:
                # Link-local addresses usable at once: no duplicate address detection (one
                # second) on a LAN whose every address the lab made.
                subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                                "net.ipv6.conf.default.accept_dad=0"], check=True)
        with NetNS(self.bridge_netns) as switch:
            switch.link("set", index=switch.link_lookup(ifname="lo")[0], state="up")
            switch.link("add", ifname=BRIDGE, kind="bridge")
            bridge = switch.link_lookup(ifname=BRIDGE)[0]
            switch.link("set", index=bridge, state="up")
            querier_active_at = 0.0
            if self.igmp_forget_after is not None:
                querier_active_at = self._snooping_switch(switch, bridge, self.igmp_forget_after)
            elif self.querier:
                querier_active_at = self._querier_switch(switch, bridge)
            for host in self.hosts:
                # gso_max_segs=1 makes the kernel cut GSO batches into single frames before they
                # leave a host, as a NIC does on the wire: otherwise a 44-datagram batch crosses
                # the veth whole and the loss rule drops (or keeps) all 44 together.
                port = _port(host)
                switch.link("add", ifname=port, kind="veth", gso_max_segs=1, mtu=self.mtu,
                            peer={"ifname": host.ifname, "net_ns_fd": host.netns,
                                  "gso_max_segs": 1, "mtu": self.mtu})
                index = switch.link_lookup(ifname=port)[0]
                switch.link("set", index=index, master=bridge, state="up")
                if self.igmp_forget_after is not None and host is not self.sender:
                    # Unregistered multicast (a group with no member left on the port) no longer
                    # reaches this host: only its membership lets the group's traffic through.
                    switch.brport("set", index=index, mcast_flood=0)
        # Without igmp_forget_after IGMP snooping stays at the kernel default: with no querier on
        # the bridge it floods multicast to every port, which is what the tests and daemons need.
        for host, rate in zip(self.hosts, self._rates, strict=True):
            with NetNS(host.netns) as ns:
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
                index = ns.link_lookup(ifname=host.ifname)[0]
                if not self.ipv6_only:
                    ns.addr("add", index=index, address=host.ip, prefixlen=self.prefixlen)
                ns.link("set", index=index, state="up")
            self.set_rate(host, rate)
        if self.ipv6_only:
            self._take_link_local_addresses()
        for host, loss in zip(self.receivers, self._losses, strict=True):
            if loss:
                self.set_loss(host, loss)
        # Snooping takes effect once the switch counts its querier as present (bounded wait).
        time.sleep(min(1.0, max(0.0, querier_active_at - time.monotonic())))

    def _take_link_local_addresses(self) -> None:
        """Each host's ``ip`` becomes the link-local address its interface made itself."""
        found = []
        for host in self.hosts:
            with NetNS(host.netns) as ns:
                index = ns.link_lookup(ifname=host.ifname)[0]
                deadline = time.monotonic() + 5.0
                while not (addrs := ns.get_addr(family=socket.AF_INET6, index=index)):
                    if time.monotonic() > deadline:
                        raise LabError(f"{host.name} made no IPv6 link-local address in 5 s")
                    time.sleep(0.05)
                found.append(dataclasses.replace(host, ip=addrs[0].get_attr("IFA_ADDRESS")))
        self.sender, self.receivers = found[0], found[1 : 1 + len(self.receivers)]
        self.extras = found[1 + len(self.receivers) :]

    @staticmethod
    def _snooping_switch(switch: Any, bridge: int, forget_after: float) -> float:
        """Make the bridge an IGMP-snooping switch that forgets a member ``forget_after`` s
        after its last report; returns when (monotonic) its snooping takes effect.

        Real switches that snoop IGMP on a LAN without a querier (no multicast router, nobody
        enabled one) learn members from the reports hosts send when they join, then drop them
        after the membership interval (260 s by default): nobody asks the hosts to report
        again, so the group's traffic stops reaching them mid-transfer unless the program
        re-joins now and then. This emulates such a switch with a short timeout.

        The Linux bridge cannot be told that literally. With snooping on and no querier it
        trusts none of its membership table and floods every multicast datagram to all ports
        with mcast_flood on, so members are never forgotten (their traffic still comes), and with
        mcast_flood off on a port nothing reaches it at all (checked on kernel 6.18: the mdb
        learns and expires the entries, the datagrams go nowhere). So the bridge runs its own
        querier, which makes it honour the table, but one that asks once at startup (before
        any host has joined) and then not again for an hour, and in IGMPv3 so the hosts stay
        in v3 mode (a v2 host repeats its join report at a random time up to 10 s later).
        Receiver and extra ports get mcast_flood off, so a group whose member was forgotten
        (unregistered multicast) no longer reaches them; the sender's port keeps flooding.
        """
        centis = max(1, round(forget_after * 100))  # bridge intervals are in centiseconds
        switch.link("set", index=bridge, kind="bridge", br_mcast_snooping=1,
                    br_mcast_igmp_version=3, br_mcast_membership_intvl=centis,
                    br_mcast_query_intvl=360_000, br_mcast_startup_query_intvl=360_000,
                    br_mcast_startup_query_cnt=1,
                    br_mcast_query_response_intvl=_QUERY_RESPONSE_CS)
        # A message of its own, after the response interval is set: enabling the querier arms
        # a delay of one response interval (10 s at the default) before the bridge uses its
        # membership table, and the kernel reads the interval when the querier is enabled.
        switch.link("set", index=bridge, kind="bridge", br_mcast_querier=1)
        return time.monotonic() + _QUERY_RESPONSE_CS / 100 + 0.1

    @staticmethod
    def _querier_switch(switch: Any, bridge: int) -> float:
        """Make the bridge a snooping switch with an ordinary IGMP querier (the kernel's
        default intervals: a general query every 125 s, a group-specific one within a second
        of a leave); returns when (monotonic) its snooping takes effect. The response interval
        is shortened, as in :meth:`_snooping_switch`, so that it does within a second."""
        # MLDv2 as hosts speak it: the IPv6 querier answers a leave as the IPv4 one does.
        switch.link("set", index=bridge, kind="bridge", br_mcast_snooping=1,
                    br_mcast_query_response_intvl=_QUERY_RESPONSE_CS, br_mcast_mld_version=2)
        switch.link("set", index=bridge, kind="bridge", br_mcast_querier=1)
        return time.monotonic() + _QUERY_RESPONSE_CS / 100 + 0.1

    def _teardown(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        if main:  # Ctrl-C or SIGTERM now would leave namespaces behind: hold them until done
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for proc in self._processes:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self._processes.clear()
            # Removing a namespace's name frees it (and its veths) once no process holds it.
            for name in reversed(self._namespaces):
                with contextlib.suppress(FileNotFoundError):
                    netns.remove(name)
            self._namespaces.clear()
        finally:
            if main:
                if self._sigterm_installed:
                    # None: the old handler was not set from Python; the default is closest.
                    signal.signal(signal.SIGTERM, self._old_sigterm or signal.SIG_DFL)
                    self._sigterm_installed = False
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    # -- running programs --------------------------------------------------------------------

    def command(self, host: LabHost, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", host.netns, *argv]

    def popen(self, host: LabHost, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``host``'s namespace, in a new process group (killed at exit)."""
        kwargs["start_new_session"] = True  # so the teardown can kill its whole group
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.command(host, argv), **kwargs)
        self._processes.append(proc)
        return proc

    def run(
        self, host: LabHost, argv: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[bytes]:
        result: subprocess.CompletedProcess[bytes] = subprocess.run(
            self.command(host, argv), **kwargs)
        return result

    # -- link conditions ---------------------------------------------------------------------

    def set_loss(self, host: LabHost, pct: float) -> None:
        """Drop ``pct`` % (per-mille precision) of the UDP datagrams ``host`` receives."""
        if not 0.0 <= pct <= 100.0:
            raise ValueError(f"loss must be within 0..100 %, not {pct}")
        # add+delete first makes the script replace the table whether or not it exists.
        script = f"add table inet {_NFT_TABLE}\ndelete table inet {_NFT_TABLE}\n"
        permille = round(pct * 10)
        if permille:
            script += (
                f"table inet {_NFT_TABLE} {{\n  chain input {{\n"
                "    type filter hook input priority filter; policy accept;\n"
                f"    meta l4proto udp numgen random mod 1000 < {permille} drop\n  }}\n}}\n"
            )
        self.run(host, ["nft", "-f", "-"], input=script.encode(), check=True,
                 capture_output=True, timeout=10)

    def rate_of(self, host: LabHost) -> float | None:
        """The link speed ``host`` was built with (None: line speed)."""
        return self._rates[self.hosts.index(host)]

    def set_rate(self, host: LabHost, rate_mbit: float | None) -> None:
        """Limit ``host``'s link to ``rate_mbit`` in both directions (None: line speed)."""
        with NetNS(host.netns) as ns:
            _set_tbf(ns, ns.link_lookup(ifname=host.ifname)[0], rate_mbit)
        with NetNS(self.bridge_netns) as switch:
            _set_tbf(switch, switch.link_lookup(ifname=_port(host))[0], rate_mbit)


def tx_bytes(host: LabHost) -> int:
    """Bytes the host's link has sent (Ethernet frames), from the kernel's counters."""
    return tx_counters(host)[0]


def tx_counters(host: LabHost) -> tuple[int, int]:
    """(bytes, frames) the host's link has sent, from the kernel's counters."""
    with NetNS(host.netns) as ns:
        link = ns.get_links(ns.link_lookup(ifname=host.ifname)[0])[0]
        stats = link.get_attr("IFLA_STATS64")
        return int(stats["tx_bytes"]), int(stats["tx_packets"])


def _port(host: LabHost) -> str:
    """The bridge-side end of ``host``'s veth (names are per namespace, so no clashes)."""
    return f"p-{host.name}"


def _set_tbf(ns: Any, index: int, rate_mbit: float | None) -> None:
    if rate_mbit is None:
        try:
            ns.tc("del", index=index, parent=_TC_ROOT)
        except NetlinkError as e:
            if e.code not in (2, 22):  # no qdisc of ours there: nothing to remove
                raise
        return
    if rate_mbit <= 0:
        raise ValueError(f"rate must be > 0 Mbit/s, not {rate_mbit}")
    # A switch port: a 2 ms token bucket (at least 32 KiB so a GSO burst fits) and a queue of
    # 50 ms beyond it, after which the port drops, like a real one.
    burst = max(32 * 1024, int(rate_mbit * 1e6 / 8 * 0.002))
    ns.tc("replace", "tbf", index, rate=f"{int(rate_mbit * 1000)}kbit", burst=burst,
          latency="50ms")
