"""`mcast-receive TARGET`: find the session, write the image to TARGET, verify it."""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

from driver.batchio import pure_path_warning
from driver.console import Console, make_console
from driver.family import discovery_addr, resolve_family
from driver.keys import TRUST_FILE_NAME, KeyFileError, find_default_trust, parse_trust
from driver.options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_network_options,
    positive_float,
    run_program,
    setup_logging,
    verbosity,
)
from driver.progress import TaskProgress
from driver.report import FinalReport
from driver.secret import SECRET_FILE_NAME, find_default_secret, load_secret
from driver.udp import IGMP_REASSERT_INTERVAL, NetworkError, default_interface, interface_mtu
from driver.units import format_addr, format_bytes
from protocol.config import DISCOVERY_ADDR, Addr, ReceiverConfig
from protocol.receiver import ReceiverSession
from protocol.seal import Sealer
from protocol.wire import ip_udp_headers

from . import doctor
from .daemon import ReceiverDaemon
from .export import ExportError, export_image
from .identity import host_identity
from .journal import default_state_dir
from .net import KernelNet
from .report_file import report_record, write_report
from .target import TargetError, TargetInfo, check_target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcast-receive",
        description="Receive a disk image from `mcastd serve` over UDP multicast and write it "
        "to TARGET; exit 0 only when the whole TARGET verified against the image's SHA-256.",
    )
    parser.add_argument("target", metavar="TARGET", nargs="?",
                        help="file (created or overwritten) or block device to write")
    parser.add_argument("--doctor", action="store_true",
                        help="instead, check the network against `mcastd doctor` on the "
                             "sender machine and print what is wrong, one line each (exit 1 "
                             "if anything is; --timeout: how long to look for it, default 10)")
    add_network_options(parser)
    parser.add_argument("--session", metavar="NAME",
                        help="join only the session of this name (default: the first one "
                             "announced)")
    parser.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                        help="give up if no session is announced within SECONDS "
                             "(default: wait until one is)")
    parser.add_argument("--no-gro", action="store_true",
                        help="receive datagram by datagram even if the kernel has UDP GRO")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="where the resume journal is kept; point it at the boot stick to "
                             f"survive a reboot (default {default_state_dir()})")
    parser.add_argument("--no-resume", action="store_true",
                        help="start from scratch: ignore and keep no resume journal")
    parser.add_argument("--wait-for-sender", action="store_true",
                        help="if the sender stops mid-way, keep what is written and wait for "
                             "a sender of the same image instead of exiting")
    parser.add_argument("--from-image", metavar="IMAGE",
                        help="write this prepared image (mcastd capture) to TARGET here, "
                             "without the network, with the same checks")
    parser.add_argument("--delta", action="store_true",
                        help="TARGET holds an earlier version of the image (this laptop was "
                             "imaged before): read it first and receive only the blocks that "
                             "changed")
    parser.add_argument("--grow", action="store_true",
                        help="after a prepared image is written and verified, grow its last "
                             "partition and filesystem to the end of this disk")
    parser.add_argument("--igmp-interval", type=positive_float, metavar="SECONDS",
                        default=IGMP_REASSERT_INTERVAL,
                        help="renew the multicast membership this often, for switches with "
                             "IGMP snooping and no querier (default %(default)g)")
    parser.add_argument("--trust", action="append", metavar="FILE|FINGERPRINT",
                        help="follow only a sender signing with this key: its fingerprint "
                             "(SHA256:...) or a .pub file; repeat to trust several (default: "
                             f"{TRUST_FILE_NAME} next to this program, else "
                             "/etc/mcastd/trust.pub, else any sender, unauthenticated)")
    parser.add_argument("--encrypt", type=Path, metavar="FILE",
                        help="the secret of an encrypted session (as `mcastd serve --encrypt` "
                             "uses); then only sessions encrypted with it are followed (default: "
                             f"{SECRET_FILE_NAME} next to this program, else "
                             "/etc/mcastd/secret.key, else sessions in the clear)")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="at the end, whatever the outcome, write this laptop's result to "
                             "FILE as one JSON object (MAC, serial numbers, seconds, result, "
                             "bytes verified), atomically: e.g. on the boot stick")
    return parser


def encryption_secret(path: Path | None) -> tuple[bytes, Path] | None:
    """The secret to open sessions with, and its file: --encrypt's, else the boot stick's or
    the system's, else None (sessions in the clear)."""
    if path is None:
        return find_default_secret()
    return load_secret(path, private=False), path  # a boot stick's FAT has no file modes


def trusted_keys(values: Sequence[str] | None) -> frozenset[str] | None:
    """The fingerprints to insist on: the union of every --trust, else the boot stick's or
    the system's trust file, else None (any sender; the daemon warns)."""
    if not values:
        return find_default_trust()
    return frozenset().union(*(parse_trust(value) for value in values))


def receiver_config(
    args: argparse.Namespace, trusted: frozenset[str] | None, image: bytes | None,
    host: dict[str, str] | None = None, max_datagram: int = 0, discovery: Addr | None = None,
) -> ReceiverConfig:
    if discovery is None:
        discovery = (args.discovery_group or DISCOVERY_ADDR[0], args.discovery_port)
    return ReceiverConfig(discovery_addr=discovery,
                          session_name=args.session, image_sha256=image, trusted=trusted,
                          delta=args.delta, host=tuple((host or {}).items()),
                          max_datagram=max_datagram)


async def receive(
    args: argparse.Namespace, info: TargetInfo, console: Console,
    trusted: frozenset[str] | None, secret: tuple[bytes, Path] | None,
) -> int:
    ifname = args.interface or default_interface()
    family = resolve_family(ifname, args.ipv6, (args.discovery_group,))
    discovery = discovery_addr(family, args.discovery_group, args.discovery_port)
    ipv6 = family == socket.AF_INET6
    net = KernelNet(ifname, discovery, gro=False if args.no_gro else None, family=family)
    state_dir = None if args.no_resume else args.state_dir or default_state_dir()
    rng = random.Random(secrets.randbits(64))
    image: bytes | None = None  # after a lost sender: only a session of the same image will do
    host = host_identity(ifname, info.path)  # told to the sender, for the admin's summary
    try:
        console.message(f"listening for sessions on {ifname} ({format_addr(discovery)})")
        if (slow := pure_path_warning()) is not None:
            console.message(slow, level=logging.WARNING)
        if trusted:
            keys = next(iter(trusted)) if len(trusted) == 1 else f"{len(trusted)} keys"
            console.message(f"following only a sender signing with {keys}")
        if secret is not None:
            console.message(f"following only sessions encrypted with the secret in {secret[1]}")
        while True:
            config = receiver_config(args, trusted, image, host,
                                     interface_mtu(ifname) - ip_udp_headers(ipv6), discovery)
            # Nonces from the system's generator: they must never repeat under the key.
            sealer = Sealer(secret[0], random.SystemRandom()) if secret is not None else None
            session = ReceiverSession(config, random.Random(rng.getrandbits(64)),
                                      trio.current_time(), sealer=sealer)
            daemon = ReceiverDaemon(
                session, net, info, console, discovery_timeout=args.timeout, interface=ifname,
                state_dir=state_dir, igmp_interval=args.igmp_interval, grow=args.grow,
            )
            report = await daemon.run()
            if not (args.wait_for_sender and session.sender_lost and session.announce):
                break
            image = session.announce.image_sha256
            console.message(f"{report.message}; waiting for a sender of the same image "
                            "(--wait-for-sender): what is written is kept",
                            level=logging.WARNING)
    finally:
        net.close()
    _explain_lost_sender(report, session, state_dir is not None)
    if args.report is not None:
        save_report(args.report, report, console)
    console.final(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def save_report(path: Path, report: FinalReport, console: Console) -> None:
    """--report: written before the final line, so a script that saw that line finds it. A
    stick that cannot take it does not change the laptop's outcome: an error is shown."""
    try:
        write_report(path, report_record(report, datetime.now(UTC)))
    except OSError as exc:
        console.message(f"could not write the report {path}: {exc.strerror or exc}",
                        level=logging.ERROR)


def _explain_lost_sender(report: FinalReport, session: ReceiverSession, resumable: bool) -> None:
    """Tell the user what to do about a sender that vanished, in the final sentence."""
    if session.sender_lost and not report.ok:
        keep = ("what is written is kept: start mcast-receive again (or use --wait-for-sender) "
                "to receive only the rest" if resumable else "start again to retry")
        report.message = f"{report.message}; {keep}."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.doctor:
        if args.target is not None:
            parser.error("--doctor checks the network and writes nothing: leave TARGET out")
        return doctor.run(args)
    if args.target is None:
        parser.error("the following arguments are required: TARGET")
    level = verbosity(args)
    if args.from_image is not None and args.delta:
        parser.error("--delta compares the disk with a session's manifest; --from-image "
                     "writes the whole image: use one of them")
    if args.from_image is not None and args.report is not None:
        parser.error("--report records a network run; --from-image prints its result")
    if args.from_image is not None:
        return from_image(args, level)
    if args.report is not None and not args.report.parent.is_dir():
        # Found out now, not after the transfer.
        print(f"mcast-receive: {args.report.parent} (for --report) is not a directory",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        # All before any socket: a typo in --trust or a mounted disk is refused at once.
        trusted = trusted_keys(args.trust)
        secret = encryption_secret(args.encrypt)
        info = check_target(args.target)
    except (KeyFileError, TargetError) as exc:
        print(f"mcast-receive: {exc}", file=sys.stderr)
        return EXIT_USAGE
    console = make_console(json_mode=args.json, verbosity=level)
    setup_logging(console, level)
    return run_program("mcast-receive", console,
                       partial(receive, args, info, console, trusted, secret),
                       (NetworkError,), "the target is incomplete.")


def from_image(args: argparse.Namespace, level: int) -> int:
    """`--from-image`: the prepared image written to TARGET here, with a progress bar."""
    console = make_console(json_mode=args.json, verbosity=level)
    setup_logging(console, level)
    started = time.monotonic()
    task = TaskProgress(console, f"{args.from_image} → {args.target}")

    def progress(phase: str, done: int, total: int) -> None:
        task.update(phase, done, total)

    try:
        verified, discarded = export_image(args.from_image, args.target, grow=args.grow,
                                           progress=progress)
    except ExportError as exc:
        console.close()
        print(f"mcast-receive: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.close()
        print("mcast-receive: interrupted; the target is incomplete.", file=sys.stderr)
        return EXIT_INTERRUPTED
    console.final(FinalReport(
        role="export", ok=True, seconds=time.monotonic() - started, image_size=verified,
        message=(f"{args.from_image} is written to {args.target}; its "
                 f"{format_bytes(verified)} in use read back and verified."),
        details={"verified_bytes": verified, "discarded_bytes": discarded}))
    console.close()
    return EXIT_OK
