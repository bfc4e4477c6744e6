"""`make sim-demo`: the demo's classroom in the simulator, receiving a disk-like image.

Four laptops at 2 % loss on 100 Mbit/s links and one late joiner, through the real protocol
sessions in the simulator; every copy is compared byte for byte with the source.
"""

from __future__ import annotations

import sys

from .classroom import run_classroom
from .link import LinkSpec
from .scenarios import Scenario

MiB = 1 << 20


def main() -> int:
    link = LinkSpec(loss=0.02, delay=0.0002, rate_bps=100e6, queue_bytes=1 * MiB)
    scenario = Scenario(
        "demo", 5, link, late_joins={4: 0.8}, image_size=64 * MiB, image_kind="disklike",
        block_size=1 * MiB, rate_bps=95e6, time_limit=120.0,
    )
    print("Simulating a classroom: 64 MiB disk-like image, 4 laptops at 2 % loss on 100 Mbit/s")
    print("links, a 5th laptop booting 0.8 s late ...")
    result = run_classroom(scenario, seed=1)
    print(f"\n{'laptop':>8} {'joined':>8} {'verified':>9} {'result':>8} {'MB/s':>7}")
    for r in result.receivers:
        took = (r.verified_at or result.end) - max(r.joined_at, result.started_at or 0.0)
        state = "ok" if r.ok and r.image_matches else "FAILED"
        rate = result.image_size / took / 1e6 if took > 0 else 0.0
        print(f"{r.address[0]:>8} {r.joined_at:7.2f}s {r.verified_at or 0:8.2f}s {state:>8}"
              f" {rate:7.1f}")
    print(
        f"\nimage {result.image_size / MiB:.0f} MiB, encoded {result.encoded_bytes / MiB:.1f} MiB;"
        f" sent {result.data_bytes / MiB:.1f} MiB ({result.overhead:.2f}× the encoded image)"
        f" with {result.naks} NAKs; {result.end:.2f} s virtual, {result.wall:.1f} s wall."
    )
    ok = result.all_verified and result.complete is not None
    print("every laptop verified its image byte for byte" if ok else "SOME LAPTOPS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
