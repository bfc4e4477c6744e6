"""What trust and encryption cost on throughput, with the real programs in the kernel lab.

Three laptops, a random (incompressible) image, the same classroom three ways:

* **signed**: the default; every session is signed and carries its manifest, every block is
  checked against it; the laptops trust no key (they only warn).
* **trusted**: the laptops also insist on the admin's key (``--trust``).
* **encrypted**: and every datagram is sealed with AES-256-GCM (``--encrypt``), 32 bytes more
  each, so symbols are 32 bytes shorter.

Each on unshaped links (where the CPU is the limit) and on 100 Mbit/s links (where the network
is: the usual classroom), ``--reps`` runs each, the median reported.

    python -m bench.security [--size-mib 200] [--reps 2]

Root only (network namespaces). Times are the receivers' own (first data to verified image).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.classroom import format_table, run_classroom_lab
from netsim.images import write_image

from .lab_run import cannot_run

RECEIVERS = 3
TIMEOUT = 600.0


def slowest_laptop(image: Path, rate: float | None, sender: list[str],
                   receiver: list[str]) -> float | None:
    """The slowest laptop's seconds in one classroom; None if any failed."""
    result = run_classroom_lab(image, RECEIVERS, rate_mbit=rate, timeout=TIMEOUT,
                               sender_args=sender, receiver_args=receiver)
    print(format_table(result), file=sys.stderr, flush=True)
    if not all(r.ok and r.seconds is not None for r in result.receivers):
        return None
    return max(r.seconds or 0.0 for r in result.receivers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.security", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=200, help="image size (default 200)")
    parser.add_argument("--reps", type=int, default=2, help="runs of each case (default 2)")
    args = parser.parse_args(argv)
    if cannot_run():
        return 2
    started = time.monotonic()
    megabits = (args.size_mib << 20) * 8 / 1e6
    rows: list[tuple[str, str, float | None, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="mcbench-") as tmp:
        work = Path(tmp)
        image = work / "random.img"
        write_image(image, args.size_mib << 20, seed=41, kind="random")
        key, secret = work / "admin.key", work / "classroom.secret"
        for command in (["keygen", "--key", str(key)], ["keygen", "--secret", str(secret)]):
            subprocess.run([sys.executable, "-m", "mcastd", *command], check=True,
                           capture_output=True)
        cases = [
            ("signed", ["--key", str(key)], []),
            ("trusted", ["--key", str(key)], ["--trust", f"{key}.pub"]),
            ("encrypted", ["--key", str(key), "--encrypt", str(secret)],
             ["--trust", f"{key}.pub", "--encrypt", str(secret)]),
        ]
        for links, rate in (("unshaped", None), ("100 Mbit/s", 100.0)):
            base: float | None = None
            for name, sender, receiver in cases:
                times = [slowest_laptop(image, rate, sender, receiver)
                         for _ in range(args.reps)]
                done = [t for t in times if t is not None]
                median = statistics.median(done) if len(done) == len(times) else None
                base = median if name == "signed" else base
                rows.append((links, name, median, base))

    print(f"# trust and encryption on throughput, kernel lab — {time.strftime('%Y-%m-%d')}, "
          f"{args.size_mib} MiB random image, {RECEIVERS} laptops, median of {args.reps}, "
          f"{(time.monotonic() - started) / 60:.1f} min\n")
    print("| links | case | seconds | Mbit/s | vs signed |")
    print("|---|---|---:|---:|---:|")
    for links, name, seconds, base in rows:
        if seconds is None:
            print(f"| {links} | {name} | FAILED | - | - |")
            continue
        ratio = f"{seconds / base:.2f}×" if base else "-"
        print(f"| {links} | {name} | {seconds:.2f} | {megabits / seconds:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
