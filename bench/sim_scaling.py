"""Simulator scaling: does completion time stay flat from 1 to 1000 receivers?

Prints a table: receivers × loss → virtual completion time relative to the ideal (the encoded
image once at the sender's rate), data bytes sent / encoded image, NAKs the sender received, and
the wall-clock seconds the simulation took. Receivers beyond the first three count symbols
without decoding (see ReceiverNode): the protocol traffic is the same, the CPU is not spent.

    python -m bench.sim_scaling [--receivers 1,10,100,1000] [--size-mib 64] [--seed 1]
                                [--rate-mbit 900] [--symbol-size 1440]
"""

from __future__ import annotations

import argparse
import platform
import time

from netsim.classroom import run_classroom
from netsim.link import GilbertElliott, LinkSpec
from netsim.scenarios import Scenario

LOSSES: dict[str, LinkSpec] = {
    "0 %": LinkSpec(delay=0.0002),
    "1 %": LinkSpec(loss=0.01, delay=0.0002),
    "5 %": LinkSpec(loss=0.05, delay=0.0002),
    "20 % bursty": LinkSpec(burst_loss=GilbertElliott(0.0625, 0.25), delay=0.0002),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", default="1,10,100,1000")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rate-mbit", type=float, default=900.0)
    parser.add_argument("--kind", default="disklike", choices=["disklike", "random", "zeros"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--symbol-size", type=int, default=1440,
                        help="1440 fits a 1500-byte MTU; 8940 a 9000-byte jumbo frame")
    args = parser.parse_args()
    counts = [int(n) for n in args.receivers.split(",")]
    rate = args.rate_mbit * 1e6
    print(f"# sim_scaling {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
          f"{args.size_mib} MiB {args.kind} image, 1 MiB blocks, {args.symbol_size}-byte symbols, "
          f"sender at {args.rate_mbit:g} Mbit/s, seed {args.seed}")
    print("| receivers | loss | time / ideal | sent / encoded | NAKs | wall s | all verified |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for n in counts:
        for label, link in LOSSES.items():
            scenario = Scenario(
                f"scale-{n}-{label}", n, link, image_size=args.size_mib << 20,
                image_kind=args.kind, block_size=1 << 20, rate_bps=rate, time_limit=600.0,
            )
            r = run_classroom(scenario, args.seed, decode_sample=3, trace=False,
                              symbol_size=args.symbol_size)
            ideal = r.encoded_bytes * 8 / rate
            verified = all(x.ok for x in r.receivers) and all(
                x.image_matches is not False for x in r.receivers
            )
            print(f"| {n} | {label} | {r.finish_time / ideal:.3f} | {r.overhead:.3f} | "
                  f"{r.naks} | {r.wall:.1f} | {'yes' if verified else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
