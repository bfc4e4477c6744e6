"""`mcastd capture SOURCE IMAGE`: the golden laptop's disk (or a raw disk image) becomes a
prepared image of what its filesystems use, with a progress bar, rate and ETA."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from disk.allocation import DiskUse
from disk.capture import DEFAULT_LEVEL, CaptureError, CaptureResult, capture
from disk.sourceread import unreadable_bytes
from driver.console import Console, make_console
from driver.keys import KeyFileError, default_key_path, load_or_create_key
from driver.options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_output_options,
    positive_int,
    setup_logging,
    size_argument,
    verbosity,
)
from driver.progress import TaskProgress
from driver.report import FinalReport
from driver.units import format_bytes


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "capture",
        help="capture a golden disk into a prepared image of its used blocks",
        description="Read SOURCE (the golden laptop's disk, /dev/nvme0n1, or a raw disk image "
        "file) and write IMAGE: the partition table and only the blocks its filesystems use "
        "(found by partclone), compressed. SOURCE is never written to, and must not be "
        "mounted read-write.")
    parser.add_argument("source", metavar="SOURCE", help="disk or raw disk image to capture")
    parser.add_argument("image", metavar="IMAGE", help="the prepared image file to write")
    parser.add_argument("--name", help="the image's name (default: SOURCE's file name)")
    parser.add_argument("--note", default="", help="a note kept in the image (what changed)")
    parser.add_argument("--level", type=zstd_level, default=DEFAULT_LEVEL,
                        help=f"zstd level, 1-19 (default {DEFAULT_LEVEL}: see the README)")
    parser.add_argument("--block-size", type=size_argument, default=1 << 20, metavar="BYTES",
                        help="image block: the unit of compression and sending (default 1M)")
    parser.add_argument("--threads", type=positive_int, default=2,
                        help="compression threads (default 2)")
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="take sectors that cannot be read as zeros and record them in the "
                             "image, instead of stopping (laptops are told how many bytes)")
    parser.add_argument("--sign", action="store_true",
                        help="sign the image with the admin's key (see --key)")
    parser.add_argument("--key", type=Path, metavar="FILE",
                        help="the key for --sign (default: $MCASTD_KEY, else "
                             "~/.config/mcastd/sender.key)")
    add_output_options(parser)


def zstd_level(text: str) -> int:
    if text.isdigit() and 1 <= int(text) <= 19:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a zstd level (1-19)")


def run(args: argparse.Namespace) -> int:
    level = verbosity(args)
    console = make_console(json_mode=args.json, verbosity=level)
    setup_logging(console, level)
    try:
        signer = None
        if args.sign or args.key is not None:
            signer, _created = load_or_create_key(args.key or default_key_path())
        progress = _Progress(console, f"capture {args.source} → {args.image}")
        result = capture(args.source, args.image, name=args.name or "", note=args.note,
                         level=args.level, block_size=args.block_size, threads=args.threads,
                         signer=signer, progress=progress.update, on_plan=progress.planned,
                         skip_unreadable=args.skip_unreadable)
    except (CaptureError, KeyFileError) as exc:
        console.close()
        print(f"mcastd: {exc}", file=sys.stderr)
        return EXIT_FAILED if getattr(exc, "started", False) else EXIT_USAGE
    except KeyboardInterrupt:
        console.close()
        print("mcastd: interrupted; no image was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    console.final(final_report(result))
    console.close()
    return EXIT_OK


def final_report(result: CaptureResult) -> FinalReport:
    disk = result.header.disk_size
    ratio = disk / max(1, result.image_bytes)
    bad = unreadable_bytes(result.meta)
    skipped = (f" {format_bytes(bad)} could not be read and are zeros in the image (their "
               "ranges are in its metadata)." if bad else "")
    return FinalReport(
        role="capture", ok=True, seconds=result.seconds, image_size=disk,
        message=(f"captured {format_bytes(disk)}: {format_bytes(result.used_bytes)} in use, "
                 f"written as {result.image} of {format_bytes(result.image_bytes)} "
                 f"({ratio:.1f}x smaller than the disk).{skipped}"),
        details={"image": result.image, "image_bytes": result.image_bytes,
                 "used_bytes": result.used_bytes, "blocks": result.blocks,
                 "zero_blocks": result.zero_blocks, "unreadable_bytes": bad,
                 "manifest_root": result.header.manifest_root.hex(),
                 "partitions": result.meta["partitions"]},
    )


class _Progress:
    """Turns the capture's callbacks into console updates."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.task = TaskProgress(console, title)

    def planned(self, use: DiskUse) -> None:
        table = use.table
        self.console.message(f"{table.label} partition table, {len(table.partitions)} "
                             f"partition(s) on {format_bytes(table.disk_size)}")
        for part in use.partitions:
            fs = part.filesystem or "unknown contents"
            how = {"partclone": "its allocation map", "whole": "kept whole",
                   "swap": "its signature only"}[part.method]
            self.console.message(
                f"partition {part.partition.number}: {fs}, {format_bytes(part.used_bytes)} "
                f"used of {format_bytes(part.partition.size)} ({how})")

    def update(self, done: int, total: int, written: int) -> None:
        self.task.update("capturing", done, total, note=f"image {format_bytes(written)}")
