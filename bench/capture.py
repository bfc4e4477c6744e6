"""Capture against Clonezilla's way, on the same realistic golden disk, in the same run.

The disk (lab/disks.py ``classroom_disk``): 2 GiB GPT, an ESP, an ext4 root with ~600 MiB of
this system's files, swap, an NTFS data partition with ~220 MiB, free space full of old
data. Rows: ``mcastd capture`` at several zstd levels, and per partition ``partclone.<fs> -c |
zstd -3 -T0`` (what Clonezilla runs; swap skipped, as Clonezilla re-makes it). Columns: wall
seconds, CPU seconds, bytes written, and the speed ratio against partclone | zstd -3.

    python -m bench.capture [--levels 1,3,4,5,6] [--scale 1.0]

Root only (loop devices). ``make bench-capture`` runs it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from disk.allocation import PARTCLONE, detect_filesystem
from disk.capture import capture
from lab.disks import classroom_disk, disks_available, loop_device

MiB = 1 << 20


@dataclass(frozen=True)
class Row:
    tool: str
    seconds: float
    cpu: float
    written: int


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def partclone_zstd(disk: Path, out: Path) -> Row:
    """Every partition through partclone's image format and zstd -3, as Clonezilla does."""
    from disk.table import read_table

    table = read_table(str(disk), disk.stat().st_size)
    started, cpu = time.monotonic(), children_cpu()
    written = 0
    for part in table.partitions:
        with loop_device(disk, part, read_only=True) as device:
            fs = detect_filesystem(device)
            if fs == "swap":
                continue
            tool = PARTCLONE.get(fs, "partclone.dd")
            target = out / f"part{part.number}.{fs}-ptcl-img.zst"
            with open(target, "wb") as sink:
                clone = subprocess.Popen([tool, "-c", "-s", device, "-o", "-", "-q"],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                assert clone.stdout is not None
                zstd = subprocess.run(["zstd", "-3", "-T0", "-q", "-c"], stdin=clone.stdout,
                                      stdout=sink, check=True)
                clone.stdout.close()
                if clone.wait() != 0 or zstd.returncode != 0:
                    raise RuntimeError(f"{tool} | zstd failed on partition {part.number}")
            written += target.stat().st_size
    return Row("partclone | zstd -3", time.monotonic() - started, children_cpu() - cpu,
               written)


def mcastd_capture(disk: Path, out: Path, level: int) -> Row:
    image = out / f"golden-{level}.mci"
    started, cpu, children = time.monotonic(), self_cpu(), children_cpu()
    result = capture(str(disk), str(image), level=level)
    spent = (self_cpu() - cpu) + (children_cpu() - children)
    row = Row(f"mcastd capture --level {level}", time.monotonic() - started, spent,
              result.image_bytes)
    image.unlink()
    return row


def table(rows: list[Row], disk_size: int) -> str:
    base = next(r for r in rows if r.tool.startswith("partclone"))
    lines = ["| tool | seconds | CPU s | written | disk / written | speed vs partclone |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.tool} | {r.seconds:.1f} | {r.cpu:.1f} | {r.written / MiB:.1f} MiB "
                     f"| {disk_size / r.written:.2f} | {base.seconds / r.seconds:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,3,4,5,6")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    why = disks_available()
    if why is not None:
        print(f"bench.capture: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mcastd-bench-capture-",
                                     dir=os.environ.get("BENCH_DIR")) as tmp:
        out = Path(tmp)
        disk = classroom_disk(out / "golden.img", scale=args.scale).path
        subprocess.run(["sync"], check=True)
        rows = [partclone_zstd(disk, out)]
        rows += [mcastd_capture(disk, out, int(level)) for level in args.levels.split(",")]
        rows.append(partclone_zstd(disk, out))  # again: the machine's noise, in the table
        print(table(rows, disk.stat().st_size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
