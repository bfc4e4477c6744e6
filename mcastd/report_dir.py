"""`mcastd serve --report DIR`: what happened to each laptop, for the admin's records.

At the end of a session, whatever its outcome, DIR gets two files named after the session and
its start, one row per laptop: ``<when>-<name>.csv`` (for a spreadsheet) and ``.json`` (for
scripts, with the session's own details). Each laptop's identity is what it sent in its JOIN
and DONE (MAC, host name, DMI serial, disk model and serial); the times are the sender's clock,
which an admin's machine keeps right (a laptop booted from a stick may not).

``history.log`` in DIR gains one JSON line per laptop that verified the image: which image
(name, manifest root, SHA-256) went to which laptop, and when. It is only ever appended to, so
a year of sessions is one file to grep: ``grep 5C:26:0A history.log``.

Each file is written whole to a temporary name and renamed (the history line is one append):
a crash or a full disk leaves the old files, never half of a new one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driver.atomic_file import write_atomically
from driver.report import FinalReport, ReceiverRow

HISTORY_NAME = "history.log"
COLUMNS = ("mac", "ip", "hostname", "dmi_serial", "disk_model", "disk_serial", "started",
           "ended", "seconds", "bytes_verified", "outcome", "reason")
_IDENTITY = ("mac", "hostname", "dmi_serial", "disk_model", "disk_serial")
_OUTCOMES = {"done": "verified"}  # the table's state → the report's outcome
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ReportDirError(Exception):
    """DIR cannot take the report: one plain sentence."""


@dataclass(frozen=True)
class SessionFacts:
    """What the report says about the session itself."""

    name: str
    image_sha256: bytes
    manifest_root: bytes | None  # None: an image without a manifest
    started: float  # the sender's start, seconds since the epoch


def check_report_dir(path: Path) -> None:
    """Refuse at once, before the transfer, a DIR that cannot take the report."""
    if not path.is_dir():
        raise ReportDirError(f"{path} (for --report) is not a directory: create it first.")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ReportDirError(f"{path} (for --report) is not writable by this user.")


def laptop_record(row: ReceiverRow) -> dict[str, Any]:
    """One laptop, every column always there (None where unknown)."""
    host = row.host
    return {
        **{key: host.get(key) or None for key in _IDENTITY},
        "ip": row.addr.rsplit(":", 1)[0],
        "started": _iso(row.started_at),
        "ended": _iso(row.finished_at),
        "seconds": None if row.seconds is None else round(row.seconds, 3),
        "bytes_verified": row.verified_bytes,
        "outcome": _OUTCOMES.get(row.state, row.state),
        "reason": row.reason or None,
    }


def write_session_report(directory: Path, facts: SessionFacts, report: FinalReport,
                         ended: float) -> list[Path]:
    """The CSV, the JSON and the history lines; returns the two files written."""
    laptops = [laptop_record(row) for row in report.receivers]
    stem = f"{_stamp(facts.started)}-{_UNSAFE_NAME.sub('_', facts.name)[:64] or 'session'}"
    csv_path, json_path = directory / f"{stem}.csv", directory / f"{stem}.json"
    write_atomically(csv_path, _csv_text(laptops).encode())
    session = {
        "session": facts.name,
        "image_sha256": facts.image_sha256.hex(),
        "manifest_root": facts.manifest_root.hex() if facts.manifest_root else None,
        "started": _iso(facts.started),
        "ended": _iso(ended),
        "ok": report.ok,
        "message": report.message,
        "laptops": laptops,
    }
    write_atomically(json_path, (json.dumps(session, indent=2) + "\n").encode())
    _append_history(directory / HISTORY_NAME, facts, laptops)
    return [csv_path, json_path]


def _csv_text(laptops: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for laptop in laptops:
        writer.writerow([_cell(laptop[column]) for column in COLUMNS])
    return out.getvalue()


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: what a laptop sent (its host name, a disk's
    model) could otherwise start a formula ("=HYPERLINK(...)")."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _append_history(path: Path, facts: SessionFacts, laptops: Sequence[dict[str, Any]]) -> None:
    lines = "".join(
        json.dumps({
            "when": laptop["ended"],
            "image": facts.name,
            "manifest_root": facts.manifest_root.hex() if facts.manifest_root else None,
            "image_sha256": facts.image_sha256.hex(),
            **{key: laptop[key] for key in ("mac", "hostname", "dmi_serial", "disk_serial",
                                            "ip")},
        }) + "\n"
        for laptop in laptops if laptop["outcome"] == "verified"
    )
    if not lines:
        return
    # One write of whole lines with O_APPEND: two sessions ending at once never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, lines.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
