"""The doctor's findings on stdout: one line each, or (--json) one JSON object each; and how
both doctors run."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

import trio

from protocol.diagnosis import Finding

from .options import EXIT_INTERRUPTED, EXIT_USAGE
from .udp import NetworkError


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


def run_doctor(prog: str, main: Callable[[], Awaitable[int]]) -> int:
    """Run a doctor's trio main: a network that cannot be set up is one sentence and exit 2,
    Ctrl-C one sentence and 130 (trio's nurseries wrap them in groups: unwrapped here)."""
    try:
        try:
            return trio.run(main)
        except BaseExceptionGroup as group:
            raise _sole(group) from None
    except NetworkError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one NetworkError or KeyboardInterrupt ``group`` holds, else the group (a bug)."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    for kind in (KeyboardInterrupt, NetworkError):
        if leaves and all(isinstance(exc, kind) for exc in leaves):
            return leaves[0]
    return group
