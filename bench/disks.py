"""Imaging a real laptop disk four ways, in the same kernel lab, in the same run.

The golden disk is built here (lab/disks.py ``classroom_disk``: 2 GiB GPT, an ESP with files,
an ext4 root with ~600 MiB and an NTFS data partition with ~220 MiB of this system's files,
swap, old data in every free byte). Three laptops receive it, on 100 Mbit/s links and
unshaped:

  (a) mcastd, the raw disk, ``--all-blocks``
  (b) mcastd, the prepared image (``mcastd capture``)
  (c) Clonezilla's way: the table with sgdisk, then per partition partclone | zstd -3 |
      udp-sender, and udp-receiver | zstd -d | partclone -r
  (d) udpcast, the raw disk

Columns: seconds (sender start → last laptop done), bytes on the sender's link, and verified:
laptops whose every partition passes its fsck with the golden disk's file tree (paths and
SHA-256 of every file). Then capture against partclone | zstd -3, and the targets.

    python -m bench.disks [--scale 1.0] [--reps 1]

Root only. ``make bench-disks`` runs it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard

from disk.allocation import PARTCLONE
from disk.capture import CaptureResult, capture
from lab.disks import GoldenDisk, classroom_disk, disk_problems, disks_available, golden_trees

from . import tools
from .capture import partclone_zstd
from .lab_run import Run, Tool, cannot_run, run_in_lab

MiB = 1 << 20
RECEIVERS = 3
TIMEOUT = 600.0


@dataclass(frozen=True)
class Cell:
    rate_mbit: float | None
    tool: str
    run: Run


def used_zstd3(disk: Path, result: CaptureResult) -> int:
    """The used bytes alone, one zstd -3 stream: the least a tool that sends them can send."""
    cctx = zstandard.ZstdCompressor(level=3)
    total = 0
    with open(disk, "rb") as f:
        compressor = cctx.compressobj()
        for start, end in result.use.used:
            f.seek(start)
            left = end - start
            while left:
                chunk = f.read(min(left, 4 * MiB))
                total += len(compressor.compress(chunk))
                left -= len(chunk)
        total += len(compressor.flush())
    return total


def checker(golden: GoldenDisk) -> Callable[[Path], bool]:
    trees = golden_trees(golden)
    size = golden.table.disk_size

    def verify(target: Path) -> bool:
        return not disk_problems(target, max(size, target.stat().st_size), golden, trees)

    return verify


def cannot_run_disk_bench() -> bool:
    """True, after saying why, unless the lab, golden disks and udpcast can all be had here."""
    return cannot_run(disks_available()
                      or (None if shutil.which("udp-sender") else "udpcast is not installed"))


def clonezilla_tool(golden: GoldenDisk, work: Path, rate: float | None) -> Tool:
    table = work / "golden.sgdisk"
    subprocess.run(["sgdisk", f"--backup={table}", str(golden.path)], check=True,
                   capture_output=True)
    parts = []
    for part, spec in zip(golden.table.partitions, golden.specs, strict=True):
        program = "swap" if spec.fs == "swap" else PARTCLONE[spec.fs]
        parts.append((part.start, part.size, program))
    return tools.clonezilla(table, parts, golden.table.disk_size, rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.disks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)
    if cannot_run_disk_bench():
        return 2
    with tempfile.TemporaryDirectory(prefix="mcastd-bench-disks-",
                                     dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        started = time.monotonic()
        golden = classroom_disk(work / "golden.img", scale=args.scale)
        verify = checker(golden)
        partclone_row = partclone_zstd(golden.path, work)
        image = capture(str(golden.path), str(work / "golden.mci"))
        least = used_zstd3(golden.path, image)
        cells = []
        for rate in (100.0, None):
            runs = {
                "(a) mcastd raw --all-blocks": (tools.mcastd(rate, ("--all-blocks",)),
                                                golden.path),
                "(b) mcastd prepared": (tools.mcastd(rate), Path(image.image)),
                "(c) clonezilla": (clonezilla_tool(golden, work, rate), golden.path),
                "(d) udpcast raw": (tools.udpcast(rate, fec=False), golden.path),
            }
            for name, (tool, source) in runs.items():
                reps = [run_in_lab(tool, source, RECEIVERS, rate, 0.0, TIMEOUT, verify=verify)
                        for _ in range(args.reps)]
                done = [r for r in reps if r.seconds is not None]
                median = sorted(done, key=lambda r: r.seconds or 0)[len(done) // 2] if done \
                    else reps[0]
                cells.append(Cell(rate, name, median))
                print(f"  {name} at {rate or 'unshaped'}: {median.seconds} s", file=sys.stderr)
        print(report(golden, image, least, partclone_row.seconds, partclone_row.written, cells,
                     time.monotonic() - started))
    return 0


def report(golden: GoldenDisk, image: CaptureResult, least: int, partclone_seconds: float,
           partclone_bytes: int, cells: list[Cell], wall: float) -> str:
    disk = golden.table.disk_size
    lines = [f"# Real disk, four ways — {time.strftime('%Y-%m-%d')}, {RECEIVERS} laptops, "
             f"a {disk / MiB:.0f} MiB disk, {image.used_bytes / MiB:.0f} MiB used, "
             f"{wall / 60:.0f} min", "",
             "| link | tool | seconds | on the wire | wire / used zstd-3 | verified |",
             "|---|---|---:|---:|---:|---:|"]
    for c in cells:
        seconds = f"{c.run.seconds:.2f}" if c.run.seconds is not None else "timeout"
        link = f"{c.rate_mbit:g} Mbit/s" if c.rate_mbit else "unshaped"
        lines.append(f"| {link} | {c.tool} | {seconds} | {c.run.wire_bytes / MiB:.1f} MiB | "
                     f"{c.run.wire_bytes / least:.2f} | {c.run.verified}/{c.run.receivers} |")
    lines += ["", f"capture: mcastd {image.seconds:.1f} s, {image.image_bytes / MiB:.1f} MiB; "
              f"partclone | zstd -3 {partclone_seconds:.1f} s, {partclone_bytes / MiB:.1f} MiB; "
              f"the used bytes alone in one zstd -3 stream: {least / MiB:.1f} MiB", ""]

    def time_of(rate: float | None, prefix: str) -> float | None:
        return next((c.run.seconds for c in cells
                     if c.rate_mbit == rate and c.tool.startswith(prefix)), None)

    b_wire = next(c.run.wire_bytes for c in cells
                  if c.rate_mbit == 100.0 and c.tool.startswith("(b)"))
    lines.append(_target("(b) bytes on the wire <= 1.10 x the used data in zstd -3",
                         b_wire / least, 1.10))
    b, a, cz = time_of(100.0, "(b)"), time_of(100.0, "(a)"), time_of(100.0, "(c)")
    if b is not None and cz:
        lines.append(_target("(b) time <= 0.8 x (c)'s at 100 Mbit/s", b / cz, 0.8))
    if b is not None and a:
        lines.append(_target("(b) time <= 0.25 x (a)'s at 100 Mbit/s", b / a, 0.25))
    lines.append(_target("capture at least 0.9 x as fast as partclone | zstd -3",
                         image.seconds / partclone_seconds, 1 / 0.9))
    return "\n".join(lines)


def _target(what: str, value: float, limit: float) -> str:
    return f"- {'MET   ' if value <= limit else 'MISSED'} {what}: {value:.2f} (limit {limit:.2f})"


if __name__ == "__main__":
    raise SystemExit(main())
