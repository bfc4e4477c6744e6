"""`mcast-receive --report FILE`: this laptop's result as one JSON object, for the boot stick
(reports/<mac>.json), made from the receiver's FinalReport (receiver/daemon.py).

The stick is FAT and may be pulled, or the laptop switched off, at any moment: the record goes
to FILE.tmp, reaches the medium (fsync), then replaces FILE, so FILE is the old record or the
new one, never part of one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driver.atomic_file import write_atomically
from driver.report import FinalReport

IDENTITY = ("mac", "hostname", "dmi_serial", "disk_model", "disk_serial")  # identity.py


def report_record(report: FinalReport, finished_at: datetime) -> dict[str, Any]:
    """The record: every key always there, null when unknown (no MAC, no session yet)."""
    details = report.details
    host = details.get("host") or {}
    return {
        **{key: host.get(key) for key in IDENTITY},
        "target": details.get("target"),
        "session": details.get("session") or None,
        "image_sha256": details.get("image_sha256") or None,
        "seconds": round(report.seconds, 3),
        "result": "ok" if report.ok else "failed",
        "message": report.message,
        "bytes_verified": int(details.get("verified_bytes") or 0) if report.ok else 0,
        "finished_at": finished_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_report(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (see the module docstring); OSError if not."""
    write_atomically(path, (json.dumps(record, indent=2) + "\n").encode())
