"""mcastd against udpcast in the kernel lab: same images, same links, same run.

For every cell (link × receivers × loss × image) each tool runs ``--reps`` times in a fresh lab;
the table shows medians: seconds from the sender's start to the last receiver's exit, MB/s of
image per receiver, the ratio mcastd/udpcast, copies verified (the runner hashes each), CPU
seconds and peak RSS of the sender and of the busiest receiver, and the bytes the sender's link
carried per image byte. udpcast runs once with and once without ``--fec``; the better of the
two gets the remaining repetitions.
Then one line per performance target (bench/targets.py), met or missed, with its number.

    python -m bench.classroom [--reps 3] [--quick] [--json results.json]

Root only (network namespaces). Needs udpcast (``apt-get install udpcast``); ``make bench``
installs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from disk.capture import capture
from lab.disks import classroom_disk, disks_available
from netsim.images import write_image

from . import tools
from .disks import checker
from .lab_run import Run, Tool, cannot_run, run_in_lab
from .targets import Cell, check_targets

IMAGE_SIZE = 200 * 1024 * 1024
MEMORY_IMAGE_SIZE = 4 * 1024**3
RUN_TIMEOUT = 150.0  # seconds per transfer before it counts as failed (udpcast needs ~25 s)


@dataclass(frozen=True)
class Result:
    """The median run of one tool in one cell, and every repetition's seconds."""

    cell: Cell
    tool: str
    median: Run
    seconds: list[float | None]

    @property
    def verified_all(self) -> bool:
        return all(s is not None for s in self.seconds) and self.median.ok


def images(directory: Path) -> dict[str, Path]:
    """The benchmark's images, written once (deterministic: same seed, same bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {"random": (IMAGE_SIZE, "random"), "disklike": (IMAGE_SIZE, "disklike"),
              "sparse-4G": (MEMORY_IMAGE_SIZE, "zeros")}
    paths = {}
    for name, (size, kind) in wanted.items():
        path = directory / f"{name}.img"
        if not path.exists() or path.stat().st_size != size:
            if kind == "zeros":
                with open(path, "wb") as f:
                    f.truncate(size)  # a sparse file: nothing on disk
            else:
                write_image(path, size, seed=1, kind=kind)
        paths[name] = path
    return paths


@dataclass(frozen=True)
class Golden:
    """The prepared cell's golden laptop disk and its capture."""

    disk: Path
    image: Path  # the prepared image (mcastd capture)
    verify: Callable[[Path], bool]  # a laptop's disk is fsck-clean with the golden file trees


def prepared_image(directory: Path) -> Golden | None:
    """A 1 GiB classroom disk (ESP, ext4 root, swap, NTFS; old data in free space) and its
    capture; None where real filesystems cannot be made here (not root, a tool missing)."""
    if disks_available() is not None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    golden = classroom_disk(directory / "golden.img", scale=0.5)
    image = directory / "golden.mci"
    image.unlink(missing_ok=True)
    capture(str(golden.path), str(image))
    return Golden(golden.path, image, checker(golden))


def cells(quick: bool) -> list[Cell]:
    # The speed targets' cells: 1 and 3 laptops unshaped, the link's share at 100 Mbit/s, and
    # the same room on a jumbo-frame LAN.
    speed = [Cell(None, 1, 0.0, "random"), Cell(None, 3, 0.0, "random"),
             Cell(100.0, 3, 0.0, "random"), Cell(None, 3, 0.0, "random", mtu=9000)]
    if quick:
        return speed
    out = [speed[-1]]
    for rate in (None, 100.0):
        for image in ("random", "disklike"):
            for receivers in (1, 3, 6):
                for loss in (0.0, 2.0, 5.0):
                    out.append(Cell(rate, receivers, loss, image))
    return out


def run_cell(cell: Cell, image: Path, reps: int, log: Path,
             golden: Golden | None = None) -> list[Result]:
    """``golden``: for the prepared cell, the disk udpcast sends whole (mcastd sends ``image``,
    its capture) and the check of a laptop's disk."""
    contenders: list[Tool] = [tools.mcastd(cell.rate_mbit)]
    if cell.image != "sparse-4G":
        contenders += [tools.udpcast(cell.rate_mbit, fec=False),
                       tools.udpcast(cell.rate_mbit, fec=True)]
    runs: dict[str, list[Run]] = {t.name: [] for t in contenders}

    def run(tool: Tool) -> None:
        served, verify = image, None
        if golden is not None:
            served = image if tool.name == "mcastd" else golden.disk
            verify = golden.verify
        runs[tool.name].append(run_in_lab(tool, served, cell.receivers, cell.rate_mbit,
                                          cell.loss_pct, RUN_TIMEOUT, log, verify=verify,
                                          mtu=cell.mtu))

    for rep in range(reps):
        for tool in contenders:  # interleaved, so a slow spell of the machine hits all
            run(tool)
        if rep == 0 and len(contenders) == 3:
            # udpcast's two variants had one try each: the worse one is dropped (a run that
            # left a wrong copy counts as worse), the better one gets the other repetitions.
            first = {t.name: runs[t.name][0] for t in contenders[1:]}
            worse = max(contenders[1:], key=lambda t: (not first[t.name].ok,
                                                       _seconds(first[t.name])))
            contenders.remove(worse)
            del runs[worse.name]
    return [_median(cell, name, rs) for name, rs in runs.items()]


def _seconds(run: Run) -> float:
    return run.seconds if run.seconds is not None else float("inf")


def _median(cell: Cell, name: str, runs: list[Run]) -> Result:
    ordered = sorted(runs, key=_seconds)
    return Result(cell, name, ordered[len(ordered) // 2], [r.seconds for r in runs])


def format_table(results: list[Result], sizes: dict[str, int]) -> str:
    """``sizes``: each image's size (MB/s and wire/image are of it; a prepared image's is the
    disk it makes)."""
    head = ["link", "image", "rx", "loss", "tool", "seconds", "MB/s", "ratio", "verified",
            "tx cpu", "rx cpu", "tx RSS", "rx RSS", "wire/image"]
    rows = [head]
    by_cell: dict[Cell, dict[str, Result]] = {}
    for r in results:
        by_cell.setdefault(r.cell, {})[r.tool.split("+")[0]] = r
    for cell, pair in by_cell.items():
        udp = pair.get("udpcast")
        for r in sorted(pair.values(), key=lambda r: r.tool != "mcastd"):
            m = r.median
            size = sizes[cell.image]
            ratio = "-"
            if r.tool == "mcastd" and udp is not None and m.seconds and udp.median.seconds:
                ratio = f"{m.seconds / udp.median.seconds:.2f}"
            rows.append([
                cell.link, cell.image, str(cell.receivers), f"{cell.loss_pct:g} %", r.tool,
                f"{m.seconds:.2f}" if m.seconds is not None else "timeout",
                f"{size / m.seconds / 1e6:.1f}" if m.seconds else "-", ratio,
                f"{m.verified}/{m.receivers}",
                f"{m.sender.cpu_seconds:.2f}",
                f"{max(c.cpu_seconds for c in m.laptops):.2f}" if m.laptops else "-",
                f"{m.sender.peak_rss / 2**20:.0f} MiB",
                f"{max(c.peak_rss for c in m.laptops) / 2**20:.0f} MiB" if m.laptops else "-",
                f"{m.wire_bytes / size:.3f}",
            ])
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.classroom", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="two cells only (unshaped and 100 Mbit/s, 3 receivers, 0 %% loss)")
    parser.add_argument("--images", type=Path, default=Path(".bench-images"),
                        help="where the images are written (default .bench-images)")
    parser.add_argument("--json", type=Path, help="also write every median run as JSON here")
    parser.add_argument("--logs", type=Path, default=Path(".bench-logs"),
                        help="each program's output, last run (default .bench-logs)")
    args = parser.parse_args(argv)
    if cannot_run(None if shutil.which("udp-sender") else
                  "udpcast is not installed: apt-get install udpcast (make bench does)"):
        return 2
    args.logs.mkdir(parents=True, exist_ok=True)
    paths = images(args.images)
    sizes = {name: path.stat().st_size for name, path in paths.items()}
    plan = cells(args.quick) + [Cell(None, 3, 0.0, "sparse-4G")]
    golden = None if args.quick else prepared_image(args.images / "prepared")
    if golden is not None:
        plan += [Cell(None, 3, 0.0, "prepared"), Cell(100.0, 3, 0.0, "prepared")]
        paths["prepared"] = golden.image
        sizes["prepared"] = golden.disk.stat().st_size
    elif not args.quick:
        print("note: no prepared-image cell (real filesystems need root and mkfs tools)",
              file=sys.stderr)
    started = time.monotonic()
    results: list[Result] = []
    for n, cell in enumerate(plan, 1):
        print(f"[{n}/{len(plan)}] {cell.describe()} …", file=sys.stderr, flush=True)
        results += run_cell(cell, paths[cell.image], args.reps, args.logs,
                            golden if cell.image == "prepared" else None)
    print(f"# mcastd vs udpcast, kernel lab — {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
          f"Python {platform.python_version()}, median of {args.reps}, "
          f"{(time.monotonic() - started) / 60:.0f} min\n")
    print(format_table(results, sizes))
    print()
    for line in check_targets(results, IMAGE_SIZE):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
