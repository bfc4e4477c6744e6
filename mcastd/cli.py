"""`mcastd serve IMAGE`: argv → a SenderConfig and a running SenderDaemon; `mcastd keygen`:
the signing key receivers trust (or, with --secret, the shared secret of --encrypt)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from disk.capture import CaptureError, SourceDisk, plan
from driver.batchio import pure_path_warning
from driver.console import Console, make_console
from driver.family import check_group_family, discovery_addr, resolve_family
from driver.keys import (
    TRUST_FILE_NAME,
    KeyFileError,
    default_key_path,
    generate_key,
    load_or_create_key,
    public_key_path,
)
from driver.options import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_network_options,
    multicast_address,
    percent,
    port_number,
    positive_float,
    positive_int,
    rate_argument,
    run_program,
    setup_logging,
    size_argument,
    ttl_value,
    verbosity,
)
from driver.report import FinalReport
from driver.secret import SECRET_FILE_NAME, generate_secret, load_or_create_secret
from driver.udp import (
    NetworkError,
    UdpEndpoint,
    default_interface,
    interface_mtu,
    interface_speed,
    open_group_listener,
    open_sender,
)
from driver.units import format_addr, format_bytes
from protocol.config import (
    CONTROL_PORTS,
    DATA_GROUPS,
    DATA_GROUPS6,
    DATA_PORT,
    DEFAULT_BLOCK_SIZE,
    Addr,
    SenderConfig,
    random_data_group,
)
from protocol.manifest import Manifest
from protocol.seal import Sealer, session_symbol_size
from protocol.sender import SenderSession
from protocol.trust import Signer
from protocol.wire import JUMBO_MTU, symbol_size_for

from . import capture_cmd, doctor_cmd, image_cmd, stick_cmd
from .image import ImageError, ImageSource, PreparedSource, default_cache_dir, open_image
from .report_dir import (
    HISTORY_NAME,
    ReportDirError,
    SessionFacts,
    check_report_dir,
    write_session_report,
)
from .serve import SenderDaemon
from .status import DEFAULT_ADDRESS, StatusServer, status_address

HASH_REPORT_INTERVAL = 5.0
DEFAULT_RATE = 900e6
MIN_MTU = 576  # the least every IPv4 link carries (RFC 791)
MIN_MTU6 = 1280  # and every IPv6 link (RFC 8200)
_KEY_DEFAULT = "$MCASTD_KEY, else ~/.config/mcastd/sender.key"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcastd",
        description="Image a classroom of computers at once over UDP multicast.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="serve one image to every receiver on the network, then exit",
        description="Serve IMAGE (a file or a disk) to every mcast-receive on the network, "
        "verify that each wrote it exactly, then exit: 0 if all did, 1 otherwise.",
    )
    serve.add_argument("image", metavar="IMAGE", help="image file or block device to send")
    add_network_options(serve)
    serve.add_argument("--group", type=multicast_address,
                       help="multicast group for the data (default: one drawn at random from "
                            f"{DATA_GROUPS} (IPv6 {DATA_GROUPS6}) for this session, so that "
                            "sessions running at once never share one)")
    serve.add_argument("--port", default=DATA_PORT, type=port_number,
                       help="UDP port of the data group (default %(default)s)")
    serve.add_argument("--control-port", type=port_number, metavar="PORT",
                       help="UDP port the laptops answer to (default: the first free one of "
                            f"{CONTROL_PORTS.start}-{CONTROL_PORTS.stop - 1}, the range a "
                            "firewall must let in)")
    serve.add_argument("--rate", type=rate_argument,
                       help="ceiling on the wire in bits/s, Ethernet frames counted: 900M, 1G, "
                            "100M (default 900M, or the interface's link speed if slower)")
    serve.add_argument("--mtu", type=positive_int, metavar="BYTES",
                       help="largest IP packet to send (default: the interface's MTU, up to "
                            "9000 for jumbo frames); lower it when some switch or laptop on "
                            "the way takes less")
    serve.add_argument("--min-receivers", type=positive_int, default=1, metavar="N",
                       help="start once N receivers joined (default 1)")
    serve.add_argument("--max-wait", type=positive_float, metavar="SECONDS",
                       help="start after SECONDS with at least one receiver even if fewer "
                            "than --min-receivers joined (default: wait for all N)")
    serve.add_argument("--fec-overhead", type=percent, default=2.0, metavar="PCT",
                       help="proactive repair symbols to start with, percent of the data; "
                            "then it follows the loss receivers report (default 2)")
    serve.add_argument("--fixed-fec", action="store_true",
                       help="keep --fec-overhead all along instead of following the loss")
    serve.add_argument("--min-rate", default="1M", type=rate_argument,
                       help="the rate never adapts below this (default 1M)")
    serve.add_argument("--fixed-rate", action="store_true",
                       help="send at --rate all along instead of slowing down to what the "
                            "receivers take")
    serve.add_argument("--late-join-window", type=positive_float, metavar="SECONDS",
                       help="take receivers that boot late until SECONDS after the start, and "
                            "stay that long for them (default: while the transfer runs)")
    serve.add_argument("--receiver-timeout", type=positive_float, default=10.0,
                       metavar="SECONDS",
                       help="drop a receiver silent this long (default %(default)g)")
    serve.add_argument("--stall-timeout", type=positive_float, default=60.0, metavar="SECONDS",
                       help="drop a receiver that stores nothing this long while it is "
                            "served at the lowest rate (default %(default)g)")
    serve.add_argument("--block-size", type=size_argument, default=DEFAULT_BLOCK_SIZE,
                       metavar="BYTES", help="image block size: 1M, 4M (default 1M)")
    serve.add_argument("--ttl", type=ttl_value, default=1,
                       help="multicast TTL; 1 keeps it on this LAN (default 1)")
    serve.add_argument("--name", help="session name receivers can ask for with --session "
                                      "(default: the image's file name)")
    serve.add_argument("--all-blocks", action="store_true",
                       help="a raw disk or disk image: send every block, not only what its "
                            "filesystems use")
    serve.add_argument("--no-gso", action="store_true",
                       help="send datagram by datagram even if the kernel has UDP GSO")
    serve.add_argument("--key", type=Path, metavar="FILE",
                       help="private key that signs the session, created if missing "
                            f"(default: {_KEY_DEFAULT})")
    serve.add_argument("--encrypt", type=Path, metavar="FILE",
                       help="encrypt every datagram with the secret in FILE (created if "
                            "missing); laptops need the same file")
    serve.add_argument("--report", type=Path, metavar="DIR",
                       help="at the end, write what happened to each laptop to DIR (a CSV and "
                            f"a JSON file per session) and add the verified ones to "
                            f"DIR/{HISTORY_NAME}: which image went to which laptop, and when")
    serve.add_argument("--status", nargs="?", const=DEFAULT_ADDRESS, type=status_address,
                       metavar="[HOST:]PORT",
                       help="serve a live status page, /api/session and /metrics over HTTP "
                            f"(alone: {DEFAULT_ADDRESS}; a bare PORT is on 127.0.0.1). Beyond "
                            "loopback, its control actions need the token printed at start")
    keygen = sub.add_parser(
        "keygen",
        help="create the key that signs sessions, and print what receivers trust",
        description="Create an Ed25519 key that signs every session `mcastd serve` runs, and "
        "its public half FILE.pub, which receivers trust with --trust or as "
        f"{TRUST_FILE_NAME} on the boot stick.",
    )
    keygen.add_argument("--key", type=Path, metavar="FILE",
                        help=f"where to write the private key (default: {_KEY_DEFAULT})")
    keygen.add_argument("--secret", type=Path, metavar="FILE",
                        help="instead, write a new secret for --encrypt to FILE")
    keygen.add_argument("--force", action="store_true",
                        help="replace an existing key (receivers that trust it will refuse "
                             "the new one)")
    capture_cmd.add_parser(sub)
    image_cmd.add_parser(sub)
    stick_cmd.add_parser(sub)
    doctor_cmd.add_parser(sub)
    return parser


@dataclass(frozen=True)
class Serve:
    args: argparse.Namespace
    console: Console

    async def run(self) -> int:
        args = self.args
        ifname = args.interface or default_interface()
        if (slow := pure_path_warning()) is not None:
            self.console.message(slow, level=logging.WARNING)
        if args.report is not None:
            check_report_dir(args.report)  # now, not after an hour of imaging
        source = open_image(args.image, args.block_size)
        try:
            # Keys before the network and the long hash: a bad file fails at once.
            signer = self._signer()
            secret = self._secret()
            family = resolve_family(ifname, args.ipv6, (args.group, args.discovery_group))
            network = session_network(args, family, ifname)
            endpoint = open_sender(ifname, args.ttl, network.rate_bps,
                                   gso=False if args.no_gso else None,
                                   control_port=args.control_port, family=family)
            try:
                status = (await StatusServer.open(*args.status) if args.status is not None
                          else None)
                try:
                    return await self._serve(source, endpoint, ifname, network, signer, secret,
                                             status)
                finally:
                    if status is not None:
                        await status.aclose()
            finally:
                endpoint.close()
        finally:
            source.close()

    def _signer(self) -> Signer:
        path: Path = self.args.key or default_key_path()
        signer, created = load_or_create_key(path)
        if created:
            self.console.message(
                f"created a new signing key at {path} (fingerprint {signer.fingerprint}); "
                f"receivers trust it with --trust {signer.fingerprint} or its .pub file"
            )
        return signer

    def _secret(self) -> bytes | None:
        path: Path | None = self.args.encrypt
        if path is None:
            return None
        secret, created = load_or_create_secret(path)
        if created:
            self.console.message(
                f"created a new encryption secret at {path}: copy it to every boot stick as "
                f"{SECRET_FILE_NAME} next to mcast-receive (or pass mcast-receive --encrypt)"
            )
        return secret

    async def _serve(
        self, source: ImageSource | PreparedSource, endpoint: UdpEndpoint, ifname: str,
        network: SessionNetwork, signer: Signer, secret: bytes | None,
        status: StatusServer | None = None,
    ) -> int:
        args, console = self.args, self.console
        mtu = session_mtu(ifname, args.mtu, network.ipv6)
        prepared: dict[str, Any] = {}
        if isinstance(source, PreparedSource):
            # Its manifest root is its identity: nothing to hash, it serves at once.
            digest, manifest = source.manifest.root, source.manifest
            prepared = {"used_runs": source.used_runs, "min_size": source.min_size,
                        "unreadable": source.unreadable}
            used = sum(min(source.block_size, source.size - start * source.block_size)
                       for run in source.used_runs for start in range(*run))
            console.message(f"prepared image: {format_bytes(used)} of "
                            f"{format_bytes(source.size)} used")
            if source.unreadable:
                console.message(f"{format_bytes(source.unreadable)} of it could not be read "
                                "from the golden disk and are zeros (--skip-unreadable); the "
                                "laptops are told", level=logging.WARNING)
        else:
            if not args.all_blocks:
                prepared = await _find_used(source, console)
            digest, manifest = await hash_image(source, console)
        config = SenderConfig(
            image_size=source.size,
            image_sha256=digest,
            # An IPv6 link-local address without our interface's name: the laptops add theirs.
            control_addr=(endpoint.address[0].split("%")[0], endpoint.address[1]),
            name=args.name or _default_name(args.image),
            created=time.time(),
            discovery_addr=network.discovery,
            data_addr=network.data,
            block_size=source.block_size,
            rate_bps=network.rate_bps,
            fec_overhead=args.fec_overhead / 100.0,
            adapt_fec=not args.fixed_fec,
            adapt_rate=not args.fixed_rate,
            min_rate_bps=min(args.min_rate, network.rate_bps),
            min_receivers=args.min_receivers,
            max_wait=args.max_wait,
            late_join_window=args.late_join_window,
            receiver_timeout=args.receiver_timeout,
            stall_timeout=args.stall_timeout,
            # Sealed datagrams are longer: keep them within the same MTU.
            symbol_size=session_symbol_size(sealed=secret is not None,
                                            plain=symbol_size_for(mtu, network.ipv6)),
            **prepared,
        )
        rng = random.Random(secrets.randbits(64))
        sealer = Sealer(secret, random.SystemRandom()) if secret is not None else None
        session = SenderSession(config, rng, trio.current_time(), signer=signer,
                                manifest=manifest, sealer=sealer)
        gso = "on" if endpoint.gso else "off"
        sealed = ", encrypted" if sealer is not None else ""
        console.message(
            f"session {config.name!r} on {ifname} ({endpoint.address[0]}), group "
            f"{format_addr(network.data)}, control port {endpoint.address[1]}, {mtu}-byte "
            f"packets, GSO {gso}, signed by "
            f"{signer.fingerprint}{sealed}; "
            f"waiting for {args.min_receivers} receiver(s)"
        )
        if status is not None:
            console.message(f"status page: {status.url(endpoint.address[0])}")
        with _discovery_listener(network.discovery, ifname, console) as discovery:
            report = await SenderDaemon(
                session, source, endpoint, console,
                status=status.run if status is not None else None, discovery=discovery).run()
        if args.report is not None:
            save_session_report(args.report, SessionFacts(
                config.name, config.image_sha256, manifest.root if manifest else None,
                config.created), report, console)
        console.final(report)
        return EXIT_OK if report.ok else EXIT_FAILED


@dataclass(frozen=True)
class SessionNetwork:
    ipv6: bool
    discovery: Addr
    data: Addr
    rate_bps: float  # the ceiling: --rate, else DEFAULT_RATE or the link's speed if slower


def session_network(args: argparse.Namespace, family: int, ifname: str) -> SessionNetwork:
    """The discovery group of the session's family, its own data group (``--group``, else
    one drawn at random, so that concurrent sessions never share one) and its ceiling."""
    ipv6 = family == socket.AF_INET6
    discovery = discovery_addr(family, args.discovery_group, args.discovery_port)
    group = args.group
    if group is None:
        group = random_data_group(ipv6, random.Random(secrets.randbits(64)))
    check_group_family(group, family, "--group")
    rate: float = args.rate
    if rate is None:
        # A 100 Mbit/s NIC takes no more: a ceiling above it only overflows its queue.
        speed = interface_speed(ifname)
        rate = DEFAULT_RATE if speed is None else min(DEFAULT_RATE, speed)
    return SessionNetwork(ipv6, discovery, (group, args.port), rate)


@contextlib.contextmanager
def _discovery_listener(group: Addr, ifname: str, console: Console
                        ) -> Iterator[UdpEndpoint | None]:
    """The discovery group, where another session using our data group would be heard. Only
    a warning depends on it: a group that cannot be joined here is not a reason to stop."""
    try:
        listener = open_group_listener(group, ifname, gro=False, buffer=1 << 16)
    except NetworkError as exc:
        console.message(f"not listening for other sessions: {exc}", level=logging.DEBUG)
        yield None
        return
    try:
        yield listener
    finally:
        listener.close()


def save_session_report(directory: Path, facts: SessionFacts, report: FinalReport,
                        console: Console) -> None:
    """--report: before the final line, so a script that saw that line finds the files. A
    directory that cannot take them (a full disk) does not change the session's outcome: the
    laptops are imaged; the error says what is missing."""
    try:
        written = write_session_report(directory, facts, report, time.time())
    except OSError as exc:
        console.message(f"could not write the report in {directory}: {exc.strerror or exc}; "
                        "the laptops' results are in the summary below", level=logging.ERROR)
        return
    console.message(f"report: {written[0]} and {written[1].name}; verified laptops added to "
                    f"{directory / HISTORY_NAME}")


def session_mtu(ifname: str, wanted: int | None, ipv6: bool = False) -> int:
    """The packet size the session sends: ``--mtu``, else the interface's (at most a jumbo
    frame's). More than the interface takes is refused: the kernel would have to fragment."""
    least, family = (MIN_MTU6, "IPv6") if ipv6 else (MIN_MTU, "IPv4")
    link = interface_mtu(ifname)
    if wanted is None:
        return min(link, JUMBO_MTU)
    if wanted > link:
        raise NetworkError(f"--mtu {wanted} is more than {ifname} takes ({link}): pass at most "
                           f"--mtu {link}, or raise the link's (ip link set {ifname} mtu "
                           f"{wanted}) on every machine and switch of the room.")
    if wanted < least:
        raise NetworkError(f"--mtu {wanted} is too small: {family} links take {least} at least.")
    return wanted


async def hash_image(source: ImageSource, console: Console) -> tuple[bytes, Manifest]:
    """The image's SHA-256 (receivers verify against it) and the manifest of its blocks'
    (they check every block against it), with a progress line every few seconds: a 500 GB
    disk takes minutes. Cached for files, so a second serve starts at once."""
    done = [0]

    def progress(n: int) -> None:
        done[0] = n  # read by the trio task below; an int store is atomic

    async def report() -> None:
        while True:
            await trio.sleep(HASH_REPORT_INTERVAL)
            console.message(
                f"hashing {source.path}: {format_bytes(done[0])} of {format_bytes(source.size)}"
            )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(report)
        digest, blocks = await trio.to_thread.run_sync(source.hash, default_cache_dir(),
                                                       progress)
        nursery.cancel_scope.cancel()
    return digest, Manifest(blocks)


async def _find_used(source: ImageSource, console: Console) -> dict[str, Any]:
    """For a raw disk or disk image: what its partitions' filesystems use (partclone), so
    that only that is sent. Without a partition table, or where the map cannot be read (not
    root, no partclone), every block is sent, and the admin is told why."""
    disk = SourceDisk(source.path, source.size, source.is_device)
    try:
        use = await trio.to_thread.run_sync(plan, disk)
    except CaptureError as exc:
        console.message(f"sending every block: {exc}", level=logging.WARNING)
        return {}
    if use.table.label == "none":
        console.message("no partition table: sending every block")
        return {}
    console.message(f"sending only what the filesystems of {source.path} use "
                    "(--all-blocks sends everything)")
    for part in use.partitions:
        console.message(f"partition {part.partition.number}: {part.filesystem or 'unknown'}, "
                        f"{format_bytes(part.used_bytes)} used of "
                        f"{format_bytes(part.partition.size)}")
    source.skip_free(use)
    console.message(f"sending {format_bytes(use.used.total)} of {format_bytes(source.size)}")
    return {"used_runs": source.used_runs, "min_size": source.min_size}


def _default_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or "image"


def keygen(args: argparse.Namespace) -> int:
    if args.secret is not None:
        return keygen_secret(args.secret, args.force)
    path: Path = args.key or default_key_path()
    try:
        signer = generate_key(path, force=args.force)
    except KeyFileError as exc:
        print(f"mcastd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pub = public_key_path(path)
    print(f"created a signing key at {path}")
    print(f"fingerprint: {signer.fingerprint}")
    print(f"public key:  {pub}")
    print(f"Receivers trust it when {pub} is copied to the boot stick as {TRUST_FILE_NAME} "
          f"next to mcast-receive, or with `mcast-receive --trust {signer.fingerprint}`.")
    return EXIT_OK


def keygen_secret(path: Path, force: bool) -> int:
    try:
        generate_secret(path, force=force)
    except KeyFileError as exc:
        print(f"mcastd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"created an encryption secret at {path}")
    print(f"Serve with `mcastd serve --encrypt {path} IMAGE`; laptops open the sessions when "
          f"the same file is on the boot stick as {SECRET_FILE_NAME} next to mcast-receive, "
          f"or with `mcast-receive --encrypt FILE`. Keep it as private as the image.")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keygen":
        return keygen(args)
    if args.command == "capture":
        return capture_cmd.run(args)
    if args.command == "image":
        return image_cmd.run(args)
    if args.command == "stick":
        return stick_cmd.run(args)
    if args.command == "doctor":
        return doctor_cmd.run(args)
    level = verbosity(args)
    console = make_console(json_mode=args.json, verbosity=level)
    setup_logging(console, level)
    return run_program("mcastd", console, Serve(args, console).run,
                       (ImageError, NetworkError, KeyFileError, ReportDirError),
                       "receivers will notice within 10 s.")
