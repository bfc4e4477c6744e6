"""`mcastd serve --report DIR`: the per-laptop CSV and JSON, and the history log."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from driver.report import FinalReport, ReceiverRow
from mcastd.report_dir import (
    COLUMNS,
    HISTORY_NAME,
    ReportDirError,
    SessionFacts,
    check_report_dir,
    write_session_report,
)

START = 1_764_662_400.0  # 2025-12-02T08:00:00Z
FACTS = SessionFacts("golden 2025", b"\x11" * 32, b"\x22" * 32, START)


def rows(start: float = START) -> list[ReceiverRow]:
    return [
        ReceiverRow("10.0.0.2:40001", "done", 100.0, 0.0, 0.01, seconds=61.5,
                    verified_bytes=3 << 30,
                    host={"mac": "52:54:00:00:00:02", "hostname": "lab-02",
                          "dmi_serial": "PF2A", "disk_model": "WD SN740",
                          "disk_serial": "2231X"},
                    started_at=start + 5, finished_at=start + 66.5),
        ReceiverRow("fe80::3%lab0:40002", "failed", 40.0, 0.0, 0.0,
                    reason="the disk failed writing block 12 (EIO)",
                    host={"mac": "52:54:00:00:00:03", "hostname": "=cmd|' /C calc'!A0"},
                    started_at=start + 5),
    ]


def report(start: float = START) -> FinalReport:
    return FinalReport("sender", False, "1 of 2 receiver(s) did not verify the image.", 70.0,
                       3 << 30, receivers=rows(start))


def test_each_laptop_is_one_row_of_the_csv_and_the_json(tmp_path: Path) -> None:
    csv_path, json_path = write_session_report(tmp_path, FACTS, report(), START + 70)
    assert csv_path.name == "20251202T080000Z-golden_2025.csv"
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS
    ok, failed = table
    assert ok == {"mac": "52:54:00:00:00:02", "ip": "10.0.0.2", "hostname": "lab-02",
                  "dmi_serial": "PF2A", "disk_model": "WD SN740", "disk_serial": "2231X",
                  "started": "2025-12-02T08:00:05Z", "ended": "2025-12-02T08:01:06Z",
                  "seconds": "61.5", "bytes_verified": str(3 << 30), "outcome": "verified",
                  "reason": ""}
    assert failed["ip"] == "fe80::3%lab0" and failed["outcome"] == "failed"
    assert failed["reason"] == "the disk failed writing block 12 (EIO)"
    assert failed["ended"] == "" and failed["bytes_verified"] == "0"
    # What a laptop sent is text in a spreadsheet, never a formula.
    assert failed["hostname"] == "'=cmd|' /C calc'!A0"
    session = json.loads(json_path.read_text())
    assert session["manifest_root"] == "22" * 32 and session["image_sha256"] == "11" * 32
    assert session["ok"] is False and session["ended"] == "2025-12-02T08:01:10Z"
    assert session["laptops"][1]["hostname"] == "=cmd|' /C calc'!A0"  # JSON keeps it as sent
    assert session["laptops"][1]["ended"] is None


def test_the_history_log_gains_a_line_per_verified_laptop_per_session(tmp_path: Path) -> None:
    write_session_report(tmp_path, FACTS, report(), START + 70)
    later = SessionFacts("golden 2026", b"\x33" * 32, b"\x44" * 32, START + 86400)
    write_session_report(tmp_path, later, report(START + 86400), START + 86470)
    lines = [json.loads(line) for line in (tmp_path / HISTORY_NAME).read_text().splitlines()]
    assert [(h["image"], h["manifest_root"][:2], h["mac"], h["when"]) for h in lines] == [
        ("golden 2025", "22", "52:54:00:00:00:02", "2025-12-02T08:01:06Z"),
        ("golden 2026", "44", "52:54:00:00:00:02", "2025-12-03T08:01:06Z"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20251202T080000Z-golden_2025.csv", "20251202T080000Z-golden_2025.json",
        "20251203T080000Z-golden_2026.csv", "20251203T080000Z-golden_2026.json", HISTORY_NAME]


def test_a_directory_that_cannot_take_the_report_is_refused_before_the_session(
        tmp_path: Path) -> None:
    with pytest.raises(ReportDirError, match="is not a directory: create it first"):
        check_report_dir(tmp_path / "missing")
    check_report_dir(tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ReportDirError, match="not writable"):
            check_report_dir(locked)


def test_a_failed_write_leaves_no_half_file(tmp_path: Path) -> None:
    blocker = tmp_path / "20251202T080000Z-golden_2025.json"
    blocker.mkdir()  # os.replace onto a directory fails, as a full disk would
    with pytest.raises(OSError):
        write_session_report(tmp_path, FACTS, report(), START + 70)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
