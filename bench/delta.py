"""Re-imaging a room after an update, in the same kernel lab, in the same run.

The golden disk is built (lab/disks.py ``classroom_disk``) and captured; every laptop's disk
holds that capture, written by the receiver's own writer as last term's imaging left it. Then
the golden laptop is updated: regions of files in its ext4 root are rewritten with bytes of
other files until ``--changed`` of the disk's used blocks differ (its metadata and journal
count too), and it is captured again. Three laptops receive the new capture, on 100 Mbit/s
links and unshaped:

  fresh       mcastd, the prepared image, laptops that receive every used block
  delta       mcastd, the prepared image, ``mcast-receive --delta`` on the laptops holding the
              first capture
  clonezilla  Clonezilla's way (partclone | zstd -3 | udp-sender per partition): what a room
              is re-imaged with today, in full (no peer has a delta)

Columns: seconds (sender start → last laptop done), bytes on the sender's link, those against
the new image's size, and verified: laptops whose every partition passes fsck with the updated
golden disk's file tree. Target: the delta run puts at most 8 % of the image on the wire.

    python -m bench.delta [--scale 1.0] [--changed 0.05]

Root only. ``make bench-delta`` runs it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from disk.capture import capture
from lab.disks import classroom_disk, update_files
from receiver.export import export_image

from . import tools
from .disks import cannot_run_disk_bench, checker, clonezilla_tool
from .lab_run import Run, run_in_lab

MiB = 1 << 20
RECEIVERS = 3
TIMEOUT = 600.0
TARGET = 0.08  # of the image on the wire, at most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delta", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--changed", type=float, default=0.05)
    args = parser.parse_args(argv)
    if cannot_run_disk_bench():
        return 2
    with tempfile.TemporaryDirectory(prefix="mcastd-bench-delta-",
                                     dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        started = time.monotonic()
        golden = classroom_disk(work / "golden.img", scale=args.scale)
        first = capture(str(golden.path), str(work / "v1.mci"))
        last_term = work / "last-term.img"  # a laptop's disk after the first imaging
        export_image(first.image, str(last_term))
        changed = update_files(golden, golden.number_of("ext4"),
                               round(args.changed * first.blocks),
                               first.header.block_size)
        second = capture(str(golden.path), str(work / "v2.mci"))
        verify = checker(golden)

        def holds_last_term(target: Path) -> None:
            subprocess.run(["cp", "--sparse=always", str(last_term), str(target)], check=True)

        rows: list[tuple[float | None, str, Run]] = []
        for rate in (100.0, None):
            runs = {
                "fresh": (tools.mcastd(rate), Path(second.image), None),
                "delta": (tools.mcastd(rate, receiver_extra=("--delta",)), Path(second.image),
                          holds_last_term),
                "clonezilla": (clonezilla_tool(golden, work, rate), golden.path, None),
            }
            for name, (tool, source, prepare) in runs.items():
                run = run_in_lab(tool, source, RECEIVERS, rate, 0.0, TIMEOUT, verify=verify,
                                 prepare=prepare)
                rows.append((rate, name, run))
                print(f"  {name} at {rate or 'unshaped'}: {run.seconds} s", file=sys.stderr)
        print(report(changed, second.blocks, second.image_bytes, rows,
                     time.monotonic() - started))
    return 0


def report(changed: int, blocks: int, image_bytes: int,
           rows: list[tuple[float | None, str, Run]], wall: float) -> str:
    lines = [f"# Re-imaging after an update — {time.strftime('%Y-%m-%d')}, {RECEIVERS} "
             f"laptops, {changed} of {blocks} used blocks changed "
             f"({100 * changed / blocks:.1f} %), a {image_bytes / MiB:.0f} MiB image, "
             f"{wall / 60:.0f} min", "",
             "| link | tool | seconds | on the wire | wire / image | verified |",
             "|---|---|---:|---:|---:|---:|"]
    for rate, name, run in rows:
        seconds = f"{run.seconds:.2f}" if run.seconds is not None else "timeout"
        link = f"{rate:g} Mbit/s" if rate else "unshaped"
        lines.append(f"| {link} | {name} | {seconds} | {run.wire_bytes / MiB:.1f} MiB | "
                     f"{run.wire_bytes / image_bytes:.3f} | {run.verified}/{run.receivers} |")
    lines.append("")
    for rate, name, run in rows:
        if name == "delta":
            share = run.wire_bytes / image_bytes
            verdict = "MET   " if share <= TARGET and run.ok else "MISSED"
            link = f"{rate:g} Mbit/s" if rate else "unshaped"
            lines.append(f"- {verdict} delta at {link}: {share:.3f} of the image on the wire "
                         f"(limit {TARGET:.2f}), {run.verified}/{run.receivers} verified")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
