"""The doctor's findings on stdout: one line each, or (--json) one JSON object each."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from protocol.diagnosis import Finding


def finding_record(finding: Finding, laptop: str | None = None) -> dict[str, object]:
    record: dict[str, object] = {"type": "finding", "check": finding.check,
                                 "status": finding.status, "ok": not finding.problem,
                                 "finding": finding.text}
    if laptop is not None:
        record["laptop"] = laptop
    return record


def print_finding(finding: Finding, json_mode: bool, laptop: str | None = None,
                  out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if json_mode:
        print(json.dumps(finding_record(finding, laptop)), file=out, flush=True)
    else:
        print(finding.text if laptop is None else f"laptop {laptop}: {finding.text}", file=out,
              flush=True)
