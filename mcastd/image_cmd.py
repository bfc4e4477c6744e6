"""`mcastd image info IMAGE` and `mcastd image verify IMAGE`: what a prepared image holds, and
whether every block of it is sound, without the network."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from disk.imagefile import ImageFormatError, PreparedImage
from disk.sourceread import unreadable_bytes
from disk.verify import verify_image
from driver.console import make_console
from driver.keys import KeyFileError, parse_trust
from driver.options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_output_options,
    positive_int,
    setup_logging,
    verbosity,
)
from driver.progress import TaskProgress
from driver.report import FinalReport
from driver.units import format_bytes
from protocol.trust import fingerprint

# GPT type GUIDs and MBR type bytes an admin will recognise.
PARTITION_TYPES = {
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI system",
    "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
    "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows recovery",
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
    "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
    "c": "FAT32 (LBA)", "b": "FAT32", "7": "NTFS/exFAT", "83": "Linux", "82": "Linux swap",
    "ef": "EFI system",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("image", help="look into or check a prepared image",
                            description="Tools for prepared images made by `mcastd capture`.")
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL")
    info = tools.add_parser("info", help="its metadata, partitions and sizes",
                            description="Print what IMAGE holds: where it came from, its "
                            "partitions and how much of each is used, its size.")
    info.add_argument("image", metavar="IMAGE")
    info.add_argument("--json", action="store_true", help="one JSON object on stdout")
    check = tools.add_parser("verify", help="decode and check every block",
                             description="Decode every block of IMAGE and check it against "
                             "its SHA-256, the manifest root and the signature. Exit 0 only "
                             "if all hold.")
    check.add_argument("image", metavar="IMAGE")
    check.add_argument("--trust", action="append", metavar="FILE|FINGERPRINT",
                       help="also require a signature by this key (repeatable)")
    check.add_argument("--threads", type=positive_int, default=2)
    add_output_options(check)
    export = tools.add_parser(
        "export", help="write it to a raw disk image or a disk, without the network",
        description="Write IMAGE to OUT (a raw disk image file, created, or a disk) with the "
        "receiver's own writer: the same checks, discards, read-back verification and GPT "
        "fixing as a laptop (it runs `mcast-receive OUT --from-image IMAGE`).")
    export.add_argument("image", metavar="IMAGE")
    export.add_argument("out", metavar="OUT")
    export.add_argument("--grow", action="store_true",
                        help="grow the last partition and filesystem to the end of OUT")
    add_output_options(export)


def run(args: argparse.Namespace) -> int:
    if args.tool == "info":
        return info(args)
    if args.tool == "export":
        return export(args)
    return verify(args)


def export(args: argparse.Namespace) -> int:
    """The receiver program writes it: its target checks and writer are the laptops' own."""
    argv = [sys.executable, "-m", "receiver", args.out, "--from-image", args.image,
            *(["--grow"] if args.grow else []), *(["--json"] if args.json else []),
            *(["-q"] * args.quiet), *(["-v"] * args.verbose)]
    try:
        return subprocess.run(argv, check=False).returncode
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def describe(image: PreparedImage) -> dict[str, Any]:
    """Everything `image info` shows, as plain values."""
    header, meta = image.header, image.meta
    signature = image.signature()
    used = sum(min(header.block_size, header.disk_size - e.index * header.block_size)
               for e in image.entries)
    return {
        "image": image.path,
        "name": meta.get("name", ""),
        "note": meta.get("note", ""),
        "created": meta.get("created"),
        "source": meta.get("source", {}),
        "disk_size": header.disk_size,
        "block_size": header.block_size,
        "blocks": header.nblocks,
        "used_blocks": header.used_blocks,
        "used_bytes": used,
        "image_bytes": header.file_size,
        "level": meta.get("level"),
        "table": meta.get("table", {}),
        "partitions": meta.get("partitions", []),
        "manifest_root": header.manifest_root.hex(),
        "signed_by": fingerprint(signature[0]) if signature else "",
        "unreadable": meta.get("unreadable", []),
        "unreadable_bytes": unreadable_bytes(meta),
    }


def info_lines(d: dict[str, Any]) -> list[str]:
    created = ""
    if d["created"]:
        created = datetime.fromtimestamp(d["created"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    source = d["source"]
    origin = " ".join(x for x in (source.get("model", ""), source.get("serial", "")) if x)
    lines = [
        f"image      {d['image']}",
        f"name       {d['name']}" + (f"  ({d['note']})" if d["note"] else ""),
        f"created    {created}",
        f"source     {source.get('path', '?')}, {format_bytes(d['disk_size'])}"
        + (f" ({origin})" if origin else ""),
        f"used       {format_bytes(d['used_bytes'])} of {format_bytes(d['disk_size'])} "
        f"({d['used_blocks']} of {d['blocks']} blocks of {format_bytes(d['block_size'])})",
        f"image size {format_bytes(d['image_bytes'])} "
        f"({d['disk_size'] / max(1, d['image_bytes']):.1f}x smaller than the disk; zstd "
        f"level {d['level']})",
        f"signed by  {d['signed_by'] or 'nobody (not signed)'}",
        *([f"unreadable {format_bytes(d['unreadable_bytes'])} of the golden disk could not be "
           f"read and are zeros ({len(d['unreadable'])} range(s), --skip-unreadable)"]
          if d["unreadable_bytes"] else []),
        f"manifest   {d['manifest_root']}",
        f"table      {d['table'].get('label', '?')}, "
        f"{len(d['table'].get('partitions', []))} partition(s)",
    ]
    uses = {p["number"]: p for p in d["partitions"]}
    for part in d["table"].get("partitions", []):
        use = uses.get(part["number"], {})
        kind = PARTITION_TYPES.get(part["type"], part["type"])
        fs = use.get("filesystem") or "unknown"
        lines.append(f"  {part['number']:>2}  {format_bytes(part['size']):>10}  {kind:<22} "
                     f"{fs:<8} {format_bytes(use.get('used_bytes', 0))} used"
                     + (f"  {part['name']}" if part.get("name") else ""))
    return lines


def info(args: argparse.Namespace) -> int:
    try:
        with PreparedImage(args.image) as image:
            d = describe(image)
    except ImageFormatError as exc:
        print(f"mcastd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(d))
    else:
        print("\n".join(info_lines(d)))
    return EXIT_OK


def verify(args: argparse.Namespace) -> int:
    level = verbosity(args)
    console = make_console(json_mode=args.json, verbosity=level)
    setup_logging(console, level)
    started = time.monotonic()
    task = TaskProgress(console, f"verify {args.image}")

    def progress(done: int, total: int) -> None:
        task.update("verifying", done, total)

    try:
        trusted = frozenset().union(*(parse_trust(t) for t in args.trust)) if args.trust \
            else None
        verdict = verify_image(args.image, threads=args.threads, trusted=trusted,
                               progress=progress)
    except (ImageFormatError, KeyFileError) as exc:
        console.close()
        print(f"mcastd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.close()
        print("mcastd: interrupted; the image was not fully checked.", file=sys.stderr)
        return EXIT_INTERRUPTED
    signed = f", signed by {verdict.signer}" if verdict.signer else ", not signed"
    message = (f"all {verdict.blocks} blocks ({format_bytes(verdict.raw_bytes)}) decode and "
               f"match; the manifest root holds{signed}." if verdict.ok else
               "; ".join(verdict.problems))
    console.final(FinalReport(role="verify", ok=verdict.ok, message=message,
                              seconds=time.monotonic() - started, image_size=verdict.raw_bytes,
                              details={"problems": list(verdict.problems),
                                       "signed_by": verdict.signer}))
    console.close()
    return EXIT_OK if verdict.ok else EXIT_FAILED
