"""``python -m lab classroom ...``: image a lab classroom with the real programs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .classroom import format_table, run_classroom_lab
from .net import LabError


def parse_late(text: str) -> tuple[int, float]:
    """``"2:5"`` -> receiver 2 starts 5 s after the sender."""
    index, _, seconds = text.partition(":")
    try:
        return int(index), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use INDEX:SECONDS, e.g. 2:5") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab",
                                     description="Kernel network lab (needs root).")
    commands = parser.add_subparsers(dest="command", required=True)
    room = commands.add_parser("classroom", help="run mcastd serve and N receivers in a lab",
                               description="Exits 0 only if every receiver verified its copy.")
    room.add_argument("--image", type=Path, required=True, help="image file to send")
    room.add_argument("--receivers", type=int, default=4)
    room.add_argument("--loss", type=float, default=0.0, help="%% of UDP each receiver drops")
    room.add_argument("--rate", type=float, default=None, help="link speed, Mbit/s")
    room.add_argument("--late", type=parse_late, action="append", default=[],
                      metavar="INDEX:SECONDS", help="start a receiver after the sender")
    room.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    room.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    try:
        result = run_classroom_lab(args.image, args.receivers, rate_mbit=args.rate,
                                   loss_pct=args.loss, late=dict(args.late),
                                   timeout=args.timeout)
    except (LabError, ValueError, OSError) as e:
        print(f"lab: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the lab is already gone: Lab.__exit__ ran
        return 130
    if args.json:
        print(json.dumps(dataclasses.asdict(result) | {"ok": result.ok}))
    else:
        print(format_table(result))
    return 0 if result.ok else 1
