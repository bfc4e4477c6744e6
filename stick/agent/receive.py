"""Run `mcast-receive` and follow its JSON lines: progress for the screen, messages for the
log, and the final report."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SECRET_NAME, TRUST_NAME, StickConfig


@dataclass(frozen=True, slots=True)
class Received:
    ok: bool
    message: str
    seconds: float
    final: dict[str, Any]


def receiver_argv(config: StickConfig, stick: Path, target: str, ifname: str,
                  journal_dir: Path, report: Path, ipv6: bool = False) -> list[str]:
    """``ipv6``: the session runs on IPv6, said outright: the link may have an IPv4
    link-local address too, which mcast-receive would otherwise prefer."""
    argv = ["mcast-receive", target, "--json", "--interface", ifname, "--state-dir",
            str(journal_dir), "--report", str(report)]
    if ipv6:
        argv.append("--ipv6")
    if config.session:
        argv += ["--session", config.session]
    if config.trust:
        argv += ["--trust", str(stick / TRUST_NAME)]
    if config.secret:
        argv += ["--encrypt", str(stick / SECRET_NAME)]
    return argv


def follow_program(argv: list[str], on_progress: Callable[[dict[str, Any]], None],
                   on_message: Callable[[str, str], None],
                   errors: Path) -> tuple[dict[str, Any] | None, int]:
    """Run one of our programs with ``--json`` and follow its lines: progress and messages
    to the callbacks; its final report (None if it gave none) and exit code back. ``errors``
    keeps its stderr: without a final report, its last lines (a traceback, a refusal) go to
    the log."""
    final: dict[str, Any] | None = None
    # errors="replace": a stray byte that is not UTF-8 must not stop the agent mid-transfer.
    with errors.open("w") as stderr, subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, text=True, errors="replace",
            bufsize=1) as process:  # closes the pipe, waits
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):  # not one of its JSON objects: a stray line
                if line.strip():
                    on_message("info", line.strip())
                continue
            kind = event.get("event")
            if kind == "progress":
                on_progress(event)
            elif kind == "message":
                on_message(str(event.get("level", "info")), str(event.get("text", "")))
            elif kind == "final":
                final = event
    if final is None:
        for line in errors.read_text(errors="replace").splitlines()[-30:]:
            on_message("error", line)
    return final, process.returncode


def run_receiver(argv: list[str], on_progress: Callable[[dict[str, Any]], None],
                 on_message: Callable[[str, str], None],
                 errors: Path = Path("/run/mcast-receive.stderr")) -> Received:
    final, code = follow_program(argv, on_progress, on_message, errors)
    if final is None:  # it crashed: its traceback is in the log
        return Received(False, f"mcast-receive stopped (exit {code}) without a report.", 0.0, {})
    return Received(bool(final.get("ok")) and code == 0, str(final.get("message", "")),
                    float(final.get("seconds") or 0.0), final)
