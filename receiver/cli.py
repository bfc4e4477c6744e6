"""`mcast-receive TARGET`: find the session, write the image to TARGET, verify it."""

from __future__ import annotations

import argparse
import random
import secrets
import sys
from collections.abc import Sequence
from functools import partial

import trio

from mcastd.console import Console, make_console
from mcastd.options import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_network_options,
    positive_float,
    run_program,
    setup_logging,
    verbosity,
)
from mcastd.udp import NetworkError, default_interface
from protocol.config import ReceiverConfig
from protocol.receiver import ReceiverSession

from .daemon import ReceiverDaemon
from .net import KernelNet
from .target import TargetError, TargetInfo, check_target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcast-receive",
        description="Receive a disk image from `mcastd serve` over UDP multicast and write it "
        "to TARGET; exit 0 only when the whole TARGET verified against the image's SHA-256.",
    )
    parser.add_argument("target", metavar="TARGET",
                        help="file (created or overwritten) or block device to write")
    add_network_options(parser)
    parser.add_argument("--session", metavar="NAME",
                        help="join only the session of this name (default: the first one "
                             "announced)")
    parser.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                        help="give up if no session is announced within SECONDS "
                             "(default: wait until one is)")
    parser.add_argument("--no-gro", action="store_true",
                        help="receive datagram by datagram even if the kernel has UDP GRO")
    return parser


async def receive(args: argparse.Namespace, info: TargetInfo, console: Console) -> int:
    ifname = args.interface or default_interface()
    discovery = (args.discovery_group, args.discovery_port)
    net = KernelNet(ifname, discovery, gro=False if args.no_gro else None)
    try:
        config = ReceiverConfig(discovery_addr=discovery, session_name=args.session)
        session = ReceiverSession(config, random.Random(secrets.randbits(64)), trio.current_time())
        console.message(f"listening for sessions on {ifname} ({discovery[0]}:{discovery[1]})")
        daemon = ReceiverDaemon(
            session, net, info, console, discovery_timeout=args.timeout, interface=ifname
        )
        report = await daemon.run()
    finally:
        net.close()
    console.final(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = verbosity(args)
    try:
        info = check_target(args.target)  # before any socket: refuse a mounted disk at once
    except TargetError as exc:
        print(f"mcast-receive: {exc}", file=sys.stderr)
        return EXIT_USAGE
    console = make_console(json_mode=args.json, verbosity=level)
    setup_logging(console, level)
    return run_program("mcast-receive", console, partial(receive, args, info, console),
                       (NetworkError,), "the target is incomplete.")
