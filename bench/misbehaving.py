"""The misbehaving classroom, measured with the real programs in the kernel lab.

Three comparisons, each against the same classroom without the trouble:

* **dead**: one of three laptops is killed two seconds after the sender starts. The survivors' time
  against two laptops alone (target: within 5 %).
* **slow**: one laptop's link is 10 Mbit/s, the others' 100. The fast ones' time against a room
  of fast ones only, and the slow one's against its own link's best.
* **overdriven**: ``--rate 1G`` on 100 Mbit/s links, adaptive against ``--fixed-rate``, and both
  against ``--rate 100M`` (the best achievable: the sender told the truth).

    python -m bench.misbehaving [--size-mib 64]

Root only (network namespaces). Times are the receivers' own (first data to verified image).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.classroom import LabResult, format_table, run_classroom_lab
from netsim.images import write_image

from .lab_run import cannot_run

TIMEOUT = 300.0


def slowest(result: LabResult, indexes: Sequence[int]) -> float | None:
    """The slowest of these receivers' seconds; None if any failed."""
    rows = [result.receivers[i] for i in indexes]
    if not all(r.ok and r.seconds is not None for r in rows):
        return None
    return max(r.seconds or 0.0 for r in rows)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "-"


def secs(value: float | None) -> str:
    return "FAILED" if value is None else f"{value:.2f}"


def run(image: Path, receivers: int, **kwargs: Any) -> LabResult:
    """One classroom (the runner keeps the laptops' journals in its own directory)."""
    result = run_classroom_lab(image, receivers, timeout=TIMEOUT, **kwargs)
    print(format_table(result), file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.misbehaving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64, help="image size (default 64)")
    args = parser.parse_args(argv)
    if cannot_run():
        return 2
    started = time.monotonic()
    size = args.size_mib << 20
    megabits = size * 8 / 1e6
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="mcbench-") as tmp:
        work = Path(tmp)
        image = work / "random.img"
        write_image(image, size, seed=21, kind="random")

        alone = run(image, 2, rate_mbit=100)
        dead = run(image, 3, rate_mbit=100, kill={1: (2.0, None)})
        a, d = slowest(alone, [0, 1]), slowest(dead, [0, 2])
        rows.append(("dead: survivors of 3, one killed at 2 s", secs(d), secs(a), ratio(d, a)))

        fast = run(image, 3, rate_mbit=100)
        mixed = run(image, 3, rate_mbit=[100, 100, 10], sender_args=["--rate", "100M"])
        f, m = slowest(fast, [0, 1, 2]), slowest(mixed, [0, 1])
        rows.append(("slow: the 100 Mbit/s laptops, one at 10", secs(m), secs(f), ratio(m, f)))
        s = slowest(mixed, [2])
        own = megabits / 10
        rows.append(("slow: the 10 Mbit/s laptop vs its link's best", secs(s), f"{own:.2f}",
                     ratio(s, own)))

        told = run(image, 3, rate_mbit=[100, 100, 100], sender_args=["--rate", "100M"])
        over = run(image, 3, rate_mbit=[100, 100, 100], sender_args=["--rate", "1G"])
        fixed = run(image, 3, rate_mbit=[100, 100, 100],
                    sender_args=["--rate", "1G", "--fixed-rate"])
        t, o, x = (slowest(r, [0, 1, 2]) for r in (told, over, fixed))
        rows.append(("overdriven: --rate 1G on 100M links, adaptive", secs(o), secs(t),
                     ratio(o, t)))
        rows.append(("overdriven: --rate 1G on 100M links, --fixed-rate", secs(x), secs(t),
                     ratio(x, t)))

    print(f"# misbehaving classroom, kernel lab — {time.strftime('%Y-%m-%d')}, "
          f"{args.size_mib} MiB random image, one run each, "
          f"{(time.monotonic() - started) / 60:.1f} min\n")
    print("| case | seconds | baseline | ratio |")
    print("|---|---:|---:|---:|")
    for case, value, base, r in rows:
        print(f"| {case} | {value} | {base} | {r} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
