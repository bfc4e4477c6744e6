"""The benchmark's verdicts and table, from made-up runs (the runs themselves are lab work)."""

from __future__ import annotations

from bench.classroom import Result, format_table
from bench.lab_run import ProcessCost, Run
from bench.targets import Cell, check_targets

SIZE = 200 * 2**20
COST = ProcessCost(0, 1.0, 0.2, 50 * 2**20)


def result(tool: str, cell: Cell, seconds: float | None, verified: int | None = None,
           cpu: tuple[float, float] = (1.0, 1.0)) -> Result:
    """``cpu``: the sender's and each receiver's CPU seconds."""
    rx = cell.receivers
    sender, laptop = (ProcessCost(0, c, 0.2, 50 * 2**20) for c in cpu)
    run = Run(tool, seconds, rx if verified is None else verified, rx, sender, [laptop] * rx,
              int(SIZE * 1.05))
    return Result(cell, tool, run, [seconds])


def test_each_target_is_met_or_missed_with_its_number() -> None:
    ideal = SIZE * 8 / 100e6  # 16.78 s
    results = [
        result("mcastd", Cell(None, 3, 0.0, "random"), 2.0),
        result("udpcast+fec", Cell(None, 3, 0.0, "random"), 4.0),
        result("mcastd", Cell(100.0, 3, 0.0, "random"), ideal / 0.90),
        result("mcastd", Cell(100.0, 3, 5.0, "random"), ideal / 0.95 * 1.10),
        result("mcastd", Cell(100.0, 3, 0.0, "disklike"), 8.0),
        result("udpcast", Cell(100.0, 3, 0.0, "disklike"), 18.0, verified=2),
        result("mcastd", Cell(100.0, 1, 2.0, "random"), 18.0),
        result("mcastd", Cell(100.0, 6, 2.0, "random"), 20.0),
    ]
    lines = list(check_targets(results, SIZE))
    text = "\n".join(lines)
    assert "MET    unshaped, 3 rx, random, 0 % loss: mcastd/udpcast = 0.50" in text
    assert "MISSED 100 Mbit/s, 3 rx, random, 0 % loss: 90.0% of the link rate" in text
    assert "MET    100 Mbit/s, 3 rx, random, 5 % loss: 1.10 x" in text
    assert "MISSED disk-like image at 100 Mbit/s: mcastd/udpcast <= 0.44" in text
    assert "MISSED 100 Mbit/s, 2 % loss, random: 6 rx take 1.11 x" in text
    assert "MET    every mcastd receiver verified in every run: 6/6 cells" in text
    assert "udpcast cells with a wrong, missing or late copy: 1: 100 Mbit/s, disklike" in text


def test_a_failed_mcastd_run_is_named() -> None:
    results = [result("mcastd", Cell(100.0, 6, 5.0, "random"), 30.0, verified=5),
               result("mcastd", Cell(None, 1, 0.0, "random"), None)]
    text = "\n".join(check_targets(results, SIZE))
    assert "MISSED every mcastd receiver verified in every run: 0/2 cells" in text
    assert "100 Mbit/s, random, 6 rx, 5 % loss" in text
    assert "unshaped, 3 rx, random, 0 % loss: cell not run or timed out" in text


def test_the_table_pairs_each_cell_with_its_ratio() -> None:
    cell = Cell(100.0, 3, 2.0, "disklike")
    table = format_table([result("mcastd", cell, 7.0), result("udpcast+fec", cell, 20.0)],
                         {"disklike": SIZE})
    rows = [row.split("|")[1:-1] for row in table.splitlines()]
    assert [c.strip() for c in rows[2]][:9] == [
        "100 Mbit/s", "disklike", "3", "2 %", "mcastd", "7.00", "30.0", "0.35", "3/3"]
    assert [c.strip() for c in rows[3]][4:8] == ["udpcast+fec", "20.00", "10.5", "-"]


def test_the_speed_targets_read_cpu_per_gib_and_the_jumbo_cell() -> None:
    gib = SIZE / 2**30
    results = [
        result("mcastd", Cell(None, 1, 0.0, "random"), 1.7),
        result("udpcast", Cell(None, 1, 0.0, "random"), 2.0),
        result("mcastd", Cell(None, 3, 0.0, "random"), 2.0, cpu=(0.6, 0.3)),
        result("udpcast", Cell(None, 3, 0.0, "random"), 4.0, cpu=(0.8, 0.4)),
        result("mcastd", Cell(None, 3, 0.0, "random", mtu=9000), 1.5, cpu=(0.1, 0.2)),
    ]
    text = "\n".join(check_targets(results, SIZE))
    assert "MET    unshaped, 1 rx, random, 0 % loss: mcastd/udpcast = 0.85" in text
    assert (f"MET    receiver CPU per GiB (unshaped, 3 rx, random): mcastd {0.3 / gib:.2f} s, "
            f"udpcast {0.4 / gib:.2f} s = 0.75 x") in text
    assert (f"MISSED sender CPU per GiB (unshaped, 3 rx, random): mcastd {0.6 / gib:.2f} s, "
            f"udpcast {0.8 / gib:.2f} s = 0.75 x (target <= 0.7)") in text
    assert f"MET    sender CPU per GiB at MTU 9000: {0.1 / gib:.2f} s, 6.0 x less" in text
    assert Cell(None, 3, 0.0, "random", mtu=9000).link == "unshaped, MTU 9000"
