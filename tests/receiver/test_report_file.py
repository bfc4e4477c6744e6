"""The boot stick's record of one laptop: its fields from the FinalReport, written atomically."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from driver.report import FinalReport
from receiver.report_file import report_record, write_report

HOST = {"mac": "52:54:00:12:34:56", "hostname": "lab-07", "dmi_serial": "PF2ABCDE",
        "disk_model": "QEMU NVMe Ctrl", "disk_serial": "NVME0001"}
WHEN = datetime(2025, 3, 4, 10, 20, 30, 123456, tzinfo=UTC)


def verified() -> FinalReport:
    return FinalReport("receiver", True, "the 3.0 MiB image is written and verified.", 12.34567,
                       3 << 20, {"session": "room12", "target": "/dev/nvme0n1",
                                 "image_sha256": "ab" * 32, "host": HOST,
                                 "verified_bytes": 3 << 20, "datagrams": 99})


def test_a_verified_laptop() -> None:
    assert report_record(verified(), WHEN) == {
        **HOST, "target": "/dev/nvme0n1", "session": "room12", "image_sha256": "ab" * 32,
        "seconds": 12.346, "result": "ok", "message": "the 3.0 MiB image is written and verified.",
        "bytes_verified": 3 << 20, "finished_at": "2025-03-04T10:20:30Z",
    }


def test_a_laptop_that_found_no_session_has_every_key_unknown_ones_null() -> None:
    report = FinalReport("receiver", False, "no session was announced within 5 s", 5.0, 0,
                         {"session": "", "target": "/tmp/t.img", "image_sha256": "",
                          "host": {"mac": HOST["mac"]}, "verified_bytes": 0})
    record = report_record(report, WHEN.astimezone(timezone(timedelta(hours=2))))
    assert record == {
        "mac": HOST["mac"], "hostname": None, "dmi_serial": None, "disk_model": None,
        "disk_serial": None,
        "target": "/tmp/t.img", "session": None, "image_sha256": None, "seconds": 5.0,
        "result": "failed", "message": "no session was announced within 5 s",
        "bytes_verified": 0, "finished_at": "2025-03-04T10:20:30Z",  # UTC, whatever the zone
    }


def test_a_failed_laptop_verified_nothing() -> None:
    report = verified()
    report.ok = False
    assert report_record(report, WHEN)["bytes_verified"] == 0


def test_the_record_replaces_the_old_one_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "52-54-00-12-34-56.json"
    path.write_text("an earlier run's record")
    record = report_record(verified(), WHEN)
    write_report(path, record)
    assert json.loads(path.read_text()) == record
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_record_that_cannot_be_written_raises_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        write_report(path, report_record(verified(), WHEN))
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    with pytest.raises(OSError):
        write_report(tmp_path / "no" / "such" / "dir.json", {})
