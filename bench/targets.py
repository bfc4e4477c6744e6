"""The transfer's performance targets (against udpcast on the same links, the link rate, loss,
memory), checked against one benchmark run: a line each, met or missed, with the number that
decides it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .classroom import Result

RSS_LIMIT = 200 * 2**20


@dataclass(frozen=True)
class Cell:
    rate_mbit: float | None  # None: unshaped links
    receivers: int
    loss_pct: float
    image: str  # "random", "disklike", "sparse-4G"

    @property
    def link(self) -> str:
        return "unshaped" if self.rate_mbit is None else f"{self.rate_mbit:g} Mbit/s"

    def describe(self) -> str:
        return f"{self.link}, {self.image}, {self.receivers} rx, {self.loss_pct:g} % loss"


def check_targets(results: Sequence[Result], image_size: int) -> Iterator[str]:
    def find(tool: str, rate: float | None, rx: int, loss: float, image: str) -> Result | None:
        for r in results:
            c = r.cell
            if (r.tool.split("+")[0] == tool and c.rate_mbit == rate and c.receivers == rx
                    and c.loss_pct == loss and c.image == image):
                return r
        return None

    def seconds(r: Result | None) -> float | None:
        return None if r is None else r.median.seconds

    def line(met: bool | None, text: str) -> str:
        return f"- {'MET   ' if met else 'n/a   ' if met is None else 'MISSED'} {text}"

    ours, theirs = (seconds(find(t, None, 3, 0.0, "random")) for t in ("mcastd", "udpcast"))
    if ours and theirs:
        ratio = ours / theirs
        yield line(ratio <= 0.67, f"unshaped, 3 rx, random, 0 % loss: mcastd/udpcast = "
                   f"{ratio:.2f} (target <= 0.67; {ours:.2f} s vs {theirs:.2f} s)")
    else:
        yield line(None, "unshaped, 3 rx, random, 0 % loss: cell not run or timed out")

    ideal = image_size * 8 / 100e6
    clean = seconds(find("mcastd", 100.0, 3, 0.0, "random"))
    if clean:
        share = ideal / clean
        yield line(share >= 0.95, f"100 Mbit/s, 3 rx, random, 0 % loss: {share:.1%} of the "
                   f"link rate (target >= 95 %; {clean:.2f} s, ideal {ideal:.2f} s)")
    lossy = seconds(find("mcastd", 100.0, 3, 5.0, "random"))
    if lossy:
        bound = ideal / 0.95
        yield line(lossy <= 1.15 * bound, f"100 Mbit/s, 3 rx, random, 5 % loss: "
                   f"{lossy / bound:.2f} x image/(link x (1 - loss)) (target <= 1.15; "
                   f"{lossy:.2f} s vs {bound:.2f} s)")

    ratios = []
    for r in results:
        c = r.cell
        if r.tool == "mcastd" and c.image == "disklike" and c.rate_mbit == 100.0:
            other = seconds(find("udpcast", 100.0, c.receivers, c.loss_pct, "disklike"))
            if r.median.seconds and other:
                ratios.append((r.median.seconds / other, c))
    if ratios:
        worst, cell = max(ratios, key=lambda x: x[0])
        yield line(worst <= 0.4, f"disk-like image at 100 Mbit/s: mcastd/udpcast <= "
                   f"{worst:.2f} in all {len(ratios)} cells (target <= 0.4; worst: "
                   f"{cell.receivers} rx, {cell.loss_pct:g} % loss)")

    one, six = (seconds(find("mcastd", 100.0, n, 2.0, "random")) for n in (1, 6))
    if one and six:
        yield line(six <= 1.1 * one, f"100 Mbit/s, 2 % loss, random: 6 rx take "
                   f"{six / one:.2f} x the time of 1 rx (target <= 1.1; {six:.2f} s vs "
                   f"{one:.2f} s)")

    mine = [r for r in results if r.tool == "mcastd"]
    failed = [r.cell.describe() for r in mine if not r.verified_all]
    yield line(not failed, f"every mcastd receiver verified in every run: "
               f"{len(mine) - len(failed)}/{len(mine)} cells" +
               (f" (failed: {'; '.join(failed)})" if failed else ""))
    wrong = [f"{r.cell.describe()} ({r.median.verified}/{r.median.receivers})"
             for r in results if r.tool.startswith("udpcast") and not r.verified_all]
    yield line(None, f"udpcast cells with a wrong, missing or late copy: {len(wrong)}" +
               (f": {'; '.join(wrong)}" if wrong else ""))

    sparse = find("mcastd", None, 3, 0.0, "sparse-4G")
    if sparse is not None:
        m = sparse.median
        rx = max((c.peak_rss for c in m.laptops), default=0)
        yield line(max(rx, m.sender.peak_rss) <= RSS_LIMIT and sparse.verified_all,
                   f"4 GiB sparse image, 3 rx: peak RSS sender {m.sender.peak_rss / 2**20:.0f} "
                   f"MiB, receiver {rx / 2**20:.0f} MiB (target <= 200 MiB; "
                   f"{m.verified}/{m.receivers} verified)")
