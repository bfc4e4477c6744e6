"""`mcastd serve --report DIR` in the kernel lab with the real programs: one row per laptop,
matching what each laptop says of itself in its own report (`mcast-receive --report`), the
laptop killed mid-way as dropped, and the history log naming the image and the laptops that
got it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lab.classroom import format_table, run_classroom_lab
from lab.net import lab_available
from mcastd.report_dir import HISTORY_NAME
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]
IDENTITY = ("mac", "hostname", "dmi_serial", "disk_model", "disk_serial")


def test_the_report_has_each_laptop_as_it_told_the_sender(tmp_path: Path) -> None:
    image = tmp_path / "golden.img"
    write_image(image, 16 << 20, seed=93, kind="random")
    reports = tmp_path / "reports"
    reports.mkdir()
    own = {i: tmp_path / f"r{i}.json" for i in range(3)}
    result = run_classroom_lab(
        image, 3, rate_mbit=30, timeout=120, kill={2: (1.5, None)},
        sender_args=["--report", str(reports), "--receiver-timeout", "3", "--name", "golden"],
        receiver_args_for={i: ["--report", str(path)] for i, path in own.items()})
    assert [r.ok for r in result.receivers] == [True, True, False], format_table(result)
    [json_path] = reports.glob("*-golden.json")
    [csv_path] = reports.glob("*-golden.csv")
    session = json.loads(json_path.read_text())
    by_ip = {laptop["ip"]: laptop for laptop in session["laptops"]}
    assert sorted(by_ip) == sorted(r.ip for r in result.receivers)
    for i, host in enumerate(result.receivers[:2]):
        mine = json.loads(own[i].read_text())  # what the laptop itself recorded
        row = by_ip[host.ip]
        assert {k: row[k] for k in IDENTITY} == {k: mine[k] for k in IDENTITY}
        assert row["mac"] and row["hostname"]  # the lab's veths have MACs; the host a name
        assert row["outcome"] == "verified" and row["reason"] is None
        assert row["bytes_verified"] == mine["bytes_verified"] == 16 << 20
        assert row["started"] <= row["ended"] and 0 < row["seconds"] < 60
    killed = by_ip[result.receivers[2].ip]
    assert killed["outcome"] == "dropped" and killed["reason"]
    assert killed["bytes_verified"] == 0 and killed["mac"]
    with open(csv_path, newline="") as f:
        table = {row["ip"]: row for row in csv.DictReader(f)}
    assert {ip: row["outcome"] for ip, row in table.items()} == {
        ip: laptop["outcome"] for ip, laptop in by_ip.items()}
    history = [json.loads(line) for line in (reports / HISTORY_NAME).read_text().splitlines()]
    assert sorted(h["mac"] for h in history) == sorted(
        by_ip[r.ip]["mac"] for r in result.receivers[:2])
    assert {(h["image"], h["manifest_root"]) for h in history} == {
        ("golden", session["manifest_root"])}
    assert session["manifest_root"] and len(session["manifest_root"]) == 64
