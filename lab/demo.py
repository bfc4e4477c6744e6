"""`make demo`: the real job, in a private lab network (root; nothing leaves the lab).

1. A small golden laptop disk is built with real filesystems: GPT, an EFI FAT32 partition,
   an ext4 root, swap and an NTFS data partition with files copied from this system, and
   free space that still holds an earlier owner's data (lab/disks.py ``classroom_disk``).
2. ``mcastd capture`` turns it into a prepared image of what its filesystems use.
3. The real ``mcastd serve`` sends it to 4 lab laptops on 100 Mbit/s links that drop 2 % of
   what they receive; each laptop's disk is a larger loop device full of old data.
4. Every laptop's disk is checked here: the GPT (sgdisk -v), each filesystem's own fsck, and
   its file tree (every path and SHA-256) against the golden disk's.

    python -m lab.demo [--laptops 4] [--loss 2] [--rate 100] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from disk.capture import capture
from driver.units import format_bytes

from .classroom import format_table, run_classroom_lab
from .disks import (
    classroom_disk,
    disk_problems,
    disks_available,
    golden_trees,
    loop_device,
    write_old_data,
)
from .net import lab_available

MiB = 1 << 20
SCALE = 0.125  # a 256 MiB golden disk: the demo stays about a minute
LAPTOP_DISK = 320 * MiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laptops", type=int, default=4)
    parser.add_argument("--loss", type=float, default=2.0, help="%% of UDP each laptop drops")
    parser.add_argument("--rate", type=float, default=100.0, help="link speed, Mbit/s")
    parser.add_argument("--keep", type=Path, help="work in DIR and keep the disks there")
    args = parser.parse_args(argv)
    why = lab_available() or disks_available()
    if why is not None:
        print(f"lab.demo: {why}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="mcastd-demo-")))
        work.mkdir(parents=True, exist_ok=True)
        return demo(work, args.laptops, args.loss, args.rate)


def demo(work: Path, laptops: int, loss: float, rate: float) -> int:
    started = time.monotonic()
    golden = classroom_disk(work / "golden.img", scale=SCALE)
    kinds = [spec.fs for spec in golden.specs]
    print(f"golden disk: {format_bytes(golden.table.disk_size)}, partitions "
          + ", ".join(f"{p.number} {fs} {format_bytes(p.size)}"
                      for p, fs in zip(golden.table.partitions, kinds, strict=True)))
    trees = golden_trees(golden)

    image = capture(str(golden.path), str(work / "golden.mci"))
    disk_size = golden.table.disk_size
    print(f"captured in {image.seconds:.1f} s: {format_bytes(image.used_bytes)} in use, image "
          f"{format_bytes(image.image_bytes)} ({disk_size / image.image_bytes:.1f}x smaller "
          "than the disk)")

    backings = []
    with ExitStack() as loops:  # the loop devices go afterwards; their files stay for checks
        targets = {}
        for i in range(laptops):
            backing = work / f"laptop{i}.disk"
            with open(backing, "wb") as f:
                write_old_data(f, LAPTOP_DISK, seed=100 + i)  # an earlier owner's files
            backings.append(backing)
            targets[i] = Path(loops.enter_context(loop_device(backing)))
        result = run_classroom_lab(Path(image.image), laptops, rate_mbit=rate, loss_pct=loss,
                                   timeout=240, targets=targets)
    print(format_table(result))

    failures = 0
    for i, backing in enumerate(backings):
        problems = disk_problems(backing, LAPTOP_DISK, golden, trees)
        verdict = "; ".join(problems) or ("GPT right for a larger disk, every filesystem "
                                          "fsck-clean, every file identical")
        failures += bool(problems) or not result.receivers[i].ok
        print(f"laptop{i}: {verdict}")

    sent = int((result.sender.final or {}).get("details", {}).get("sent_bytes", 0)
               if result.sender else 0)
    print(f"on the wire: {format_bytes(sent)} of DATA for a {format_bytes(disk_size)} disk "
          f"({sent / disk_size:.2f} of the raw disk; "
          f"{sent / image.image_bytes:.2f} of the prepared image, repairs for {loss:g} % loss "
          "included)")
    print(f"{laptops - failures}/{laptops} laptops imaged and checked in "
          f"{time.monotonic() - started:.0f} s")
    return 0 if failures == 0 and result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
