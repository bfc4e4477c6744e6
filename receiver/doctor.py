"""`mcast-receive --doctor`: on a laptop, every check against the first `mcastd doctor` heard
on the discovery group: the IGMP (IPv6: MLD) querier, other sessions on the group, the
control port (a firewall?) and the round trip, loss at a few rates, and the MTU of both ends.
One line per finding (or a JSON object with --json), also sent back to the responder for the
admin's screen. Exit 0 if all is well, 1 if a problem was found."""

from __future__ import annotations

import argparse
import contextlib
import secrets
import socket
from collections.abc import Callable
from typing import TypeVar

import trio

from driver.batchio import RecvRing
from driver.doctor_output import print_finding, run_doctor
from driver.doctor_watch import GroupListener, ResponderSeen
from driver.family import discovery_addr, resolve_family
from driver.igmp import find_querier
from driver.udp import (
    NetworkError,
    UdpEndpoint,
    default_interface,
    interface_mtu,
    open_group_listener,
    open_unicast,
)
from protocol.config import Addr
from protocol.diagnosis import (
    BurstOutcome,
    Finding,
    big_probe_size,
    control_port_finding,
    exit_code,
    loss_findings,
    mtu_finding,
    querier_finding,
    responder_found_finding,
    responder_missing_finding,
    rtt_finding,
    sessions_findings,
    skipped,
)
from protocol.doctor import (
    MAX_RESULT_LINES,
    MAX_TEXT,
    BurstDone,
    BurstRequest,
    Ping,
    Pong,
    Result,
    burst_count,
    datagram_size,
    decode_doctor_untrusted,
    decode_probe_untrusted,
    probe_addresses,
)
from protocol.errors import BadPacket
from protocol.receiver import in_zone_of

RESPONDER_WAIT = 10.0  # default for finding `mcastd doctor` (--timeout changes it)
SESSIONS_WAIT = 3.0  # sessions announce every 0.25-1 s
QUERIER_WAIT = 3.0
PINGS = 5
PING_SPACING = 0.1
PING_WAIT = 1.0  # after the last ping
BURST_ATTEMPTS = 3
BURST_ANSWER_WAIT = 2.0  # a burst takes 0.5 s, at most 1 s: then BURST_DONE comes
BURST_GRACE = 0.2  # the last datagrams of a burst may trail its BURST_DONE
RESULT_COPIES = 3  # the result is sent this often (UDP; the responder keeps one)

T = TypeVar("T")


def run(args: argparse.Namespace) -> int:
    """The `--doctor` entry point: findings on stdout, exit 0 (all well) or 1."""
    findings: list[Finding] = []

    async def main() -> int:
        findings.extend(await laptop_doctor(args))
        return exit_code(findings)

    return run_doctor("mcast-receive", main)


async def laptop_doctor(args: argparse.Namespace) -> list[Finding]:
    ifname = args.interface or default_interface()
    family = resolve_family(ifname, args.ipv6, (args.discovery_group,))
    ipv6 = family == socket.AF_INET6
    discovery = discovery_addr(family, args.discovery_group, args.discovery_port)
    wait = args.timeout or RESPONDER_WAIT
    mtu = interface_mtu(ifname)

    def show(finding: Finding) -> Finding:
        if args.quiet <= 0 or finding.problem:
            print_finding(finding, args.json)
        return finding

    findings: list[Finding] = []
    querier: list[Finding] = []
    querier_done = trio.Event()

    async def check_querier() -> None:
        try:
            found = await find_querier(ifname, probe_addresses(ipv6)[1], QUERIER_WAIT)
            querier.append(querier_finding(ifname, found, QUERIER_WAIT, ipv6))
        except NetworkError as exc:
            querier.append(skipped("querier", str(exc)))
        finally:
            querier_done.set()

    listener = GroupListener(ifname, discovery, None)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listener.run)
            nursery.start_soon(check_querier)
            with trio.move_on_after(wait):
                await listener.responder_found.wait()
            await trio.sleep_until(listener.started + SESSIONS_WAIT)
            await querier_done.wait()
            nursery.cancel_scope.cancel()  # heard enough: a session's data costs CPU
    finally:
        listener.close()
    findings += [show(f) for f in querier]
    findings += [show(f) for f in sessions_findings(listener.snapshot(), None,
                                                     on_sender=False)]
    if not listener.responders:
        findings.append(show(responder_missing_finding(wait)))
    else:
        findings += await probe_responder(listener.responders[0], ifname, family, mtu,
                                          findings, show)
    return findings


async def probe_responder(responder: ResponderSeen, ifname: str, family: int, mtu: int,
                          earlier: list[Finding], show: Callable[[Finding], Finding]
                          ) -> list[Finding]:
    """The checks against the responder; at the end every finding (``earlier`` ones too) is
    sent to it for the admin's screen."""
    here = responder.here
    ipv6 = family == socket.AF_INET6
    # An announced link-local host names the responder's interface: ours is the one heard on.
    control = (in_zone_of(here.control_host, responder.source), here.control_port)
    probe_group = (here.probe_group, here.probe_port)
    findings = [show(responder_found_finding(control, here.mtu))]
    control_endpoint = open_unicast(ifname, family)
    try:
        probe_endpoint = open_group_listener(probe_group, ifname, gro=False)
    except BaseException:
        control_endpoint.close()
        raise
    prober = Prober(control_endpoint, probe_endpoint, control, secrets.randbits(63), mtu, ipv6)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(prober.receive_control)
            nursery.start_soon(prober.count_probes)
            rtts = await prober.ping(PINGS)
            findings.append(show(control_port_finding(control, PINGS, len(rtts), True)))
            rtt = rtt_finding(control, rtts)
            if rtt is not None:
                findings.append(show(rtt))
            small: BurstOutcome | None = None
            big: BurstOutcome | None = None
            if rtts:
                size = datagram_size(min(1500, mtu, here.mtu), ipv6)
                outcomes = [await prober.burst(rate, size) for rate in here.rates]
                findings += [show(f) for f in loss_findings(outcomes, probe_group)]
                small = outcomes[0]
                if (big_size := big_probe_size(here.mtu, ipv6)) is not None:
                    big = await prober.burst(here.rates[0], big_size)
            else:
                findings.append(show(skipped("loss", "no probe bursts: they are asked for on "
                                                     "the control port")))
            findings.append(show(mtu_finding(here.mtu, mtu, small, big)))
            if rtts:
                await prober.send_result([*earlier, *findings])
            nursery.cancel_scope.cancel()
    finally:
        control_endpoint.close()
        probe_endpoint.close()
    return findings


class Prober:
    """The laptop's half of the probe: pings, burst requests, and the count of what arrived."""

    def __init__(self, control: UdpEndpoint, probe: UdpEndpoint, responder: Addr,
                 laptop_id: int, mtu: int, ipv6: bool = False) -> None:
        self.control = control
        self.probe = probe
        self.responder = responder
        self.laptop_id = laptop_id
        self.mtu = mtu
        self.ipv6 = ipv6
        self.rtts: dict[int, float] = {}
        self.done: dict[int, BurstDone] = {}
        self.arrived: dict[int, int] = {}
        self.dropped = 0  # foreign or garbled datagrams
        self._bursts = 0
        self._changed = trio.Event()  # set on every answer from the responder

    def _send(self, datagram: bytes) -> None:
        # A full buffer, no route, this laptop's own firewall: as if lost on the wire, which
        # the findings then tell.
        with contextlib.suppress(OSError):
            self.control.sock.sendto(datagram, self.responder)

    async def receive_control(self) -> None:
        while True:
            await self.control.wait_readable()
            while True:
                try:
                    data, _source = self.control.sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                self._on_control(data)

    def _on_control(self, data: bytes) -> None:
        try:
            msg = decode_doctor_untrusted(data)
        except BadPacket:
            self.dropped += 1
            return
        self._changed.set()
        if isinstance(msg, Pong) and msg.laptop_id == self.laptop_id:
            self.rtts.setdefault(msg.seq, trio.current_time() - msg.sent)
        elif isinstance(msg, BurstDone) and msg.laptop_id == self.laptop_id:
            self.done.setdefault(msg.burst, msg)
        else:
            self.dropped += 1

    async def count_probes(self) -> None:
        ring = RecvRing(64)
        arrived = self.arrived
        while True:
            await self.probe.wait_readable()
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while self.probe.receive_into(ring):
                    for i in range(ring.count):
                        try:
                            probe = decode_probe_untrusted(ring.datagram(i))
                        except BadPacket:
                            self.dropped += 1
                            continue
                        if probe.laptop_id != self.laptop_id:
                            self.dropped += 1  # another laptop's burst, passing by
                            continue
                        arrived[probe.burst] = arrived.get(probe.burst, 0) + 1

    async def _until(self, value: Callable[[], T | None], seconds: float) -> T | None:
        with trio.move_on_after(seconds):
            while (got := value()) is None:
                self._changed = trio.Event()
                await self._changed.wait()
            return got
        return None

    async def ping(self, count: int) -> list[float]:
        """Round trips of ``count`` pings to the responder's control port (none: no answer)."""
        for seq in range(count):
            self._send(Ping(self.laptop_id, seq, trio.current_time()).encode())
            await trio.sleep(PING_SPACING)
        await self._until(lambda: True if len(self.rtts) >= count else None, PING_WAIT)
        return list(self.rtts.values())

    async def burst(self, rate_bps: int, size: int) -> BurstOutcome:
        """Ask for one burst and count what of it arrives."""
        self._bursts += 1
        burst = self._bursts
        request = BurstRequest(self.laptop_id, burst, rate_bps, size,
                               burst_count(rate_bps, size, ipv6=self.ipv6), self.mtu).encode()
        drops_before = self.probe.drops() or 0
        done: BurstDone | None = None
        for _attempt in range(BURST_ATTEMPTS):
            self._send(request)
            done = await self._until(lambda: self.done.get(burst), BURST_ANSWER_WAIT)
            if done is not None:
                break
        await trio.sleep(BURST_GRACE)
        drops = (self.probe.drops() or 0) - drops_before
        arrived = self.arrived.get(burst, 0)
        if done is None:
            return BurstOutcome(rate_bps, size, -1, arrived, 0.0, drops)
        return BurstOutcome(rate_bps, size, done.sent, arrived, done.seconds, drops, done.error)

    async def send_result(self, findings: list[Finding]) -> None:
        lines = [[f.check, f.status, f.text[:MAX_TEXT]] for f in findings[:MAX_RESULT_LINES]]
        datagram = Result(self.laptop_id, lines).encode()
        for _copy in range(RESULT_COPIES):
            self._send(datagram)
            await trio.sleep(0.05)
