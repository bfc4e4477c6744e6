"""The transfer's performance targets (against udpcast on the same links, the link rate, loss,
memory), checked against one benchmark run: a line each, met or missed, with the number that
decides it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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
    image: str  # "random", "disklike", "sparse-4G", "prepared"
    mtu: int = 1500  # of every link (9000: jumbo frames)

    @property
    def link(self) -> str:
        speed = "unshaped" if self.rate_mbit is None else f"{self.rate_mbit:g} Mbit/s"
        return speed if self.mtu == 1500 else f"{speed}, MTU {self.mtu}"

    def describe(self) -> str:
        return f"{self.link}, {self.image}, {self.receivers} rx, {self.loss_pct:g} % loss"


def _one_receiver_and_cpu(find: Callable[..., Result | None],
                          line: Callable[[bool | None, str], str],
                          image_size: int) -> Iterator[str]:
    """The speed issue's targets: one laptop, CPU per GiB on each side, and jumbo frames."""
    gib = image_size / 2**30
    ours, theirs = find("mcastd", None, 1, 0.0, "random"), find("udpcast", None, 1, 0.0, "random")
    if ours and theirs and ours.median.seconds and theirs.median.seconds:
        ratio = ours.median.seconds / theirs.median.seconds
        yield line(ratio <= 0.9, f"unshaped, 1 rx, random, 0 % loss: mcastd/udpcast = "
                   f"{ratio:.2f} (target <= 0.9; {ours.median.seconds:.2f} s vs "
                   f"{theirs.median.seconds:.2f} s)")
    ours, theirs = find("mcastd", None, 3, 0.0, "random"), find("udpcast", None, 3, 0.0, "random")
    if ours and theirs and ours.median.laptops and theirs.median.laptops:
        mine = max(c.cpu_seconds for c in ours.median.laptops) / gib
        other = max(c.cpu_seconds for c in theirs.median.laptops) / gib
        yield line(mine <= other, f"receiver CPU per GiB (unshaped, 3 rx, random): mcastd "
                   f"{mine:.2f} s, udpcast {other:.2f} s = {mine / other:.2f} x (target <= 1.0, "
                   f"although mcastd verifies every byte and udpcast none)")
        mine = ours.median.sender.cpu_seconds / gib
        other = theirs.median.sender.cpu_seconds / gib
        yield line(mine <= 0.7 * other, f"sender CPU per GiB (unshaped, 3 rx, random): mcastd "
                   f"{mine:.2f} s, udpcast {other:.2f} s = {mine / other:.2f} x (target <= 0.7)")
    jumbo = find("mcastd", None, 3, 0.0, "random", mtu=9000)
    if ours and jumbo:
        normal, big = ours.median.sender.cpu_seconds, jumbo.median.sender.cpu_seconds
        yield line(big * 4 <= normal, f"sender CPU per GiB at MTU 9000: {big / gib:.2f} s, "
                   f"{normal / max(big, 1e-9):.1f} x less than at MTU 1500 ({normal / gib:.2f} "
                   f"s; target >= 4 x)")


def check_targets(results: Sequence[Result], image_size: int) -> Iterator[str]:
    def find(tool: str, rate: float | None, rx: int, loss: float, image: str,
             mtu: int = 1500) -> Result | None:
        for r in results:
            c = r.cell
            if (r.tool.split("+")[0] == tool and c.rate_mbit == rate and c.receivers == rx
                    and c.loss_pct == loss and c.image == image and c.mtu == mtu):
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
    yield from _one_receiver_and_cpu(find, line, image_size)

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
