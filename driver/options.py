"""Command-line pieces both programs share: network options, argument types that reject with
one sentence, verbosity and exit codes."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import sys
from collections.abc import Awaitable, Callable

import trio

from protocol.config import DISCOVERY_ADDR, DISCOVERY_ADDR6

from .console import Console
from .units import parse_rate, parse_size

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """Options both programs share."""
    parser.add_argument("-i", "--interface", metavar="IF",
                        help="network interface to use (default: the default route's)")
    parser.add_argument("--ipv6", action="store_true",
                        help="run over IPv6 (link-local addresses, link-scope multicast); "
                             "the default where the interface has no IPv4 address")
    parser.add_argument("--discovery-group", type=multicast_address,
                        help="multicast group where sessions are announced (default "
                             f"{DISCOVERY_ADDR[0]}, IPv6 {DISCOVERY_ADDR6[0]})")
    parser.add_argument("--discovery-port", default=DISCOVERY_ADDR[1], type=port_number,
                        help="UDP port of the discovery group (default %(default)s)")
    add_output_options(parser)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """-q, -v and --json: every command that shows progress takes them."""
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="only errors and the final summary")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail")
    parser.add_argument("--json", action="store_true",
                        help="JSON lines on stdout: progress, messages and the final report")


# --- argument types: each rejects with one sentence ----------------------------------------


def multicast_address(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None and address.is_multicast:
        return str(address)
    raise argparse.ArgumentTypeError(f"{text!r} is not a multicast address (IPv4 224-239.x.x.x, "
                                     "IPv6 ff00::/8)")


def port_number(text: str) -> int:
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a UDP port (1-65535)")


def positive_int(text: str) -> int:
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value > 0 and value != float("inf"):
        return value
    raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")


def percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        value = -1.0
    if 0 <= value <= 100:
        return value
    raise argparse.ArgumentTypeError(f"{text!r} is not a percentage between 0 and 100")


def ttl_value(text: str) -> int:
    if text.isdigit() and 1 <= int(text) <= 255:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a TTL (1-255)")


def rate_argument(text: str) -> float:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def size_argument(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 4096 <= size <= 64 << 20:
        raise argparse.ArgumentTypeError(f"--block-size wants 4K to 64M, not {text!r}")
    return size


def verbosity(args: argparse.Namespace) -> int:
    level: int = args.verbose - args.quiet
    return max(-1, min(1, level))


class _ToConsole(logging.Handler):
    """Log records become console messages, so they never tear the live view and appear in
    ``--json`` output as message lines."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.message(record.getMessage(), level=record.levelno)


def setup_logging(console: Console, level: int) -> None:
    root = logging.getLogger()
    root.handlers[:] = [_ToConsole(console)]
    root.setLevel({-1: logging.ERROR, 0: logging.WARNING, 1: logging.DEBUG}[level])


def run_program(
    prog: str, console: Console, main: Callable[[], Awaitable[int]],
    usage_errors: tuple[type[Exception], ...], interrupted: str,
) -> int:
    """Run a daemon's trio main: errors found before the transfer are one sentence and exit
    code 2; Ctrl-C is one sentence and 130."""
    # What the start created (modules, classes, the parser) lives until exit: kept out of the
    # collector's sight, so the data path's short-lived tuples are all it ever scans.
    gc.freeze()
    try:
        try:
            code: int = trio.run(main)
            return code
        except BaseExceptionGroup as group:
            # trio's nurseries wrap what their tasks raise: Ctrl-C inside a daemon arrives as
            # a group. Unwrap a lone kind we know; anything else stays a traceback (a bug).
            raise _sole_known(group, (KeyboardInterrupt, *usage_errors)) from None
    except usage_errors as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        console.close()


def _sole_known(
    group: BaseExceptionGroup[BaseException], known: tuple[type[BaseException], ...]
) -> BaseException:
    """The first of ``known`` in ``group`` if the group holds nothing else, else the group."""
    leaves: list[BaseException] = []

    def flatten(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                flatten(inner)
        else:
            leaves.append(exc)

    flatten(group)
    if leaves and all(isinstance(exc, known) for exc in leaves):
        interrupts = [exc for exc in leaves if isinstance(exc, KeyboardInterrupt)]
        return interrupts[0] if interrupts else leaves[0]
    return group
