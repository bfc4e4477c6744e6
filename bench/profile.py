"""Where the time goes: one mcastd transfer in the kernel lab with py-spy sampling the sender and
one receiver, and each one's hottest functions by their own (self) time.

    python -m bench.profile [--rate 100] [--receivers 3] [--mtu 9000] [--top 15]

The issue asks for a profile before and after each speed step; this prints it as a table. py-spy
samples from outside (no instrumentation, so the program runs at its own speed); ``--native``
also names C functions (zstd, zfec, our fast path).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import sys
import tempfile
from pathlib import Path

from netsim.images import write_image

from . import tools
from .lab_run import Tool, cannot_run, run_in_lab

IMAGE_SIZE = 200 * 1024 * 1024
_LINE = re.compile(r":\d+\)$")


def profiled(tool: Tool, out: Path, native: bool) -> Tool:
    """``tool`` with its sender and its receivers run under ``py-spy record``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    # Native stacks need the program paused while they are read; Python ones do not.
    extra = ["--native"] if native else ["--nonblocking"]

    def wrap(argv: list[str], name: str) -> list[str]:
        return [spy, "record", "--format", "raw", "--rate", "250", *extra,
                "-o", str(out / name), "--", *argv]

    return Tool(tool.name, wrap(list(tool.sender), "sender.txt"),
                wrap(list(tool.receiver), "receiver-{target.stem}.txt"))


def self_times(collapsed: Path) -> tuple[collections.Counter[str], int]:
    """Samples per innermost frame of a py-spy raw (collapsed stacks) file, and the total."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        leaf = stack.split(";")[-1]
        if leaf.startswith("<") and ";" in stack:  # a native frame without a name
            leaf = stack.split(";")[-2]
        counts[_LINE.sub(")", leaf)] += int(n)  # by function, not by line
        total += int(n)
    return counts, total


def table(title: str, collapsed: Path, top: int) -> str:
    counts, total = self_times(collapsed)
    lines = [f"\n{title}: {total} samples", f"{'self %':>7}  function (file)"]
    for leaf, n in counts.most_common(top):
        lines.append(f"{100 * n / max(total, 1):6.1f}%  {leaf}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=None, help="link Mbit/s (default: none)")
    parser.add_argument("--receivers", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--native", action="store_true", help="name C functions too")
    parser.add_argument("--keep", type=Path, help="keep the raw profiles in this directory")
    args = parser.parse_args(argv)
    if cannot_run():
        return 2
    with tempfile.TemporaryDirectory(prefix="mcprofile-") as tmp:
        work = Path(tmp)
        out = args.keep or work / "profiles"
        out.mkdir(parents=True, exist_ok=True)
        image = work / "random.img"
        write_image(image, IMAGE_SIZE, seed=1, kind="random")
        tool = profiled(tools.mcastd(args.rate), out, args.native)
        run = run_in_lab(tool, image, args.receivers, args.rate, 0.0, timeout=300, logs=out)
        print(f"{run.verified}/{run.receivers} verified in {run.seconds} s; sender "
              f"{run.sender.cpu_seconds:.2f} CPU-s (py-spy's own included)")
        if not (out / "sender.txt").exists():
            print(f"py-spy wrote no profile: see the programs' output in {out}", file=sys.stderr)
            return 1
        print(table("sender", out / "sender.txt", args.top))
        first = sorted(out.glob("receiver-*.txt"))
        if first:
            print(table(f"receiver ({first[0].stem})", first[0], args.top))
    return 0 if run.verified == run.receivers else 1


if __name__ == "__main__":
    sys.exit(main())
