"""`mcastd doctor`: on the admin's machine, the local checks (IGMP or, on IPv6, MLD querier,
MTU, sessions on the group), then a responder that laptops running `mcast-receive --doctor`
probe, for --duration seconds, showing each laptop's findings as they come. Exit 1 if any was
a problem."""

from __future__ import annotations

import argparse
import secrets
import socket
from functools import partial

import trio

from driver.doctor_output import print_finding, run_doctor
from driver.doctor_watch import GroupListener, unzoned
from driver.family import check_group_family, discovery_addr, resolve_family
from driver.igmp import find_querier
from driver.options import (
    add_network_options,
    multicast_address,
    port_number,
    positive_float,
    rate_argument,
)
from driver.udp import NetworkError, default_interface, interface_mtu, open_sender
from protocol.config import DATA_PORT, Addr
from protocol.diagnosis import (
    Finding,
    exit_code,
    local_mtu_finding,
    ok,
    querier_finding,
    sessions_findings,
    skipped,
)
from protocol.doctor import DEFAULT_RATES, MAX_RATE_BPS, MAX_RATES, probe_addresses

from .doctor_responder import Responder, responder_here

QUERIER_WAIT = 3.0
SESSIONS_WAIT = 3.0  # sessions announce every 0.25-1 s
MAX_DURATION = 86400.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check the network for multicast imaging, and answer laptops' probes",
        description="Check what breaks multicast imaging: an IGMP (IPv6: MLD) querier on the "
        "LAN, this link's MTU, other sessions on the data group; then answer `mcast-receive "
        "--doctor` on laptops (path, loss and round trip at a few rates, MTU, firewall) for "
        "--duration seconds, printing each finding on one line. Exit 0 if all is well, 1 if not.")
    add_network_options(parser)
    parser.add_argument("--group", type=multicast_address,
                        help="the data group you mean to pass `serve --group`: also check who "
                             "sends to it (default: none; each session draws its own, and only "
                             "two announced on one group are a problem)")
    parser.add_argument("--port", default=DATA_PORT, type=port_number,
                        help="UDP port of that group (default %(default)s)")
    parser.add_argument("--duration", type=duration, default=60.0, metavar="SECONDS",
                        help="answer laptops this long, then exit (default %(default)g)")
    parser.add_argument("--rates", type=rate_list, metavar="RATES",
                        default=list(DEFAULT_RATES),
                        help="the rates laptops probe, comma-separated (default 10M,100M,500M)")


def duration(text: str) -> float:
    value = positive_float(text)
    if value > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"--duration {text} is more than a day")
    return value


def rate_list(text: str) -> list[int]:
    rates = sorted(int(rate_argument(part)) for part in text.split(",") if part)
    if not 0 < len(rates) <= MAX_RATES or rates[-1] > MAX_RATE_BPS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 1-{MAX_RATES} rates of at most 10G, comma-separated")
    return rates


def run(args: argparse.Namespace) -> int:
    return run_doctor("mcastd", partial(doctor, args))


async def local_findings(ifname: str, listener: GroupListener, data_group: Addr | None,
                         mtu: int, ipv6: bool) -> list[Finding]:
    """The querier, MTU and sessions checks, run side by side (~3 s)."""
    querier: list[Finding] = []

    async def check_querier() -> None:
        try:
            found = await find_querier(ifname, probe_addresses(ipv6)[1], QUERIER_WAIT)
            querier.append(querier_finding(ifname, found, QUERIER_WAIT, ipv6))
        except NetworkError as exc:
            querier.append(skipped("querier", f"{exc}"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check_querier)
        async with trio.open_nursery() as listening:
            listening.start_soon(listener.run)
            await trio.sleep(SESSIONS_WAIT)
            listening.cancel_scope.cancel()  # heard enough: a session's data costs CPU
    sessions = sessions_findings(listener.snapshot(), data_group, on_sender=True)
    return [*querier, local_mtu_finding(ifname, mtu), *sessions]


async def doctor(args: argparse.Namespace) -> int:
    ifname = args.interface or default_interface()
    family = resolve_family(ifname, args.ipv6, (args.group, args.discovery_group))
    ipv6 = family == socket.AF_INET6
    discovery = discovery_addr(family, args.discovery_group, args.discovery_port)
    data_group = None if args.group is None else (args.group, args.port)
    if args.group is not None:
        check_group_family(args.group, family, "--group")
    mtu = interface_mtu(ifname)
    probe = probe_addresses(ipv6)[0]
    problems: list[Finding] = []

    def show(finding: Finding, laptop: str | None = None) -> None:
        if finding.problem:
            problems.append(finding)
        if args.quiet <= 0 or finding.problem:
            print_finding(finding, args.json, laptop)

    def on_report(laptop: str, findings: list[Finding]) -> None:
        for finding in findings:
            show(finding, unzoned(laptop))  # as the laptop's own findings name itself

    started = trio.current_time()
    endpoint = open_sender(ifname, 1, float(max(args.rates)), family=family)
    try:
        listener = GroupListener(ifname, discovery, data_group)
        # Announced without its zone, which names this machine's interface, not the laptop's.
        control = (unzoned(endpoint.address[0]), endpoint.address[1])
        here = responder_here(secrets.randbits(63), control, mtu, probe, args.rates)
        responder = Responder(endpoint, here, discovery, probe, on_report)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(responder.run)  # laptops may come during the local checks
                for finding in await local_findings(ifname, listener, data_group, mtu, ipv6):
                    show(finding)
                show(ok("responder", f"answering laptops' `mcast-receive --doctor` on "
                                     f"{control[0]} udp {control[1]} until "
                                     f"{args.duration:g} s have passed"))
                # The local checks always finish; --duration may end the answering with them.
                await trio.sleep_until(started + args.duration)
                nursery.cancel_scope.cancel()
        finally:
            listener.close()
    finally:
        endpoint.close()
    return exit_code(problems)
