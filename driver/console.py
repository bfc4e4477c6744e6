"""What both daemons show the user: a rich live view, plain log lines, or JSON lines.

The daemons call a ``Console`` synchronously from a trio task a few times a second with the
latest ``SenderSnapshot`` / ``ReceiverSnapshot``; ``make_console`` picks the renderer:

* ``json_mode`` → ``JsonConsole``: stdout carries only JSON objects, one per line, flushed:
  ``{"event": "progress", "role": "sender"|"receiver", **snapshot}`` at most once per
  ``interval`` and whenever ``state`` changes; ``{"event": "message", "level":
  "debug"|"info"|"warning"|"error", "text": ...}`` for every message the verbosity lets through
  (info included — scripts filter on ``level``); and last, always, the ``FinalReport`` with
  ``"event": "final"``. Non-finite floats become ``null``. Warnings and errors are repeated on
  stderr as plain text so a person watching a redirected run still sees them.
* stdout is a terminal → ``RichConsole``: a live table/progress bar redrawn 4 times a second,
  messages printed above it, a summary table at the end.
* otherwise → ``PlainConsole``: one progress line per ``interval`` (and on state changes),
  messages as lines, a summary at the end.

Human output goes to stdout, warnings and errors to stderr (the rich view prints them above its
live area instead when stderr is that same terminal). The final summary is the run's result, so
it goes to stdout whatever the outcome; the exit status says whether it failed.

Verbosity: -1 (``-q``) shows no progress and only error messages, 0 adds progress and info
messages, 1 (``-v``) adds debug messages and the final report's details. The final report is
always shown, and nothing is shown after it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    import rich.console

from driver.report import (
    FinalReport,
    ReceiverRow,
    ReceiverSnapshot,
    SenderSnapshot,
    TaskSnapshot,
)
from driver.units import (
    format_byte_rate,
    format_bytes,
    format_bytes_of,
    format_duration,
    format_rate,
)

Snapshot = SenderSnapshot | ReceiverSnapshot | TaskSnapshot

# Receiver states that end a laptop's run without a verified image.
FAILED_STATES = frozenset({"failed", "dropped"})


class Console(Protocol):
    def update(self, snapshot: Snapshot) -> None: ...

    def message(self, text: str, *, level: int = logging.INFO) -> None: ...

    def final(self, report: FinalReport) -> None: ...

    def close(self) -> None: ...


def make_console(
    *,
    json_mode: bool,
    verbosity: int,
    stream: TextIO | None = None,
    err: TextIO | None = None,
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    terminal: rich.console.Console | None = None,
) -> Console:
    """The renderer for this run; ``terminal`` forces the rich view onto a given rich Console."""
    out = sys.stdout if stream is None else stream
    errs = sys.stderr if err is None else err
    if json_mode:
        return JsonConsole(out, errs, verbosity=verbosity, interval=interval, clock=clock)
    if terminal is None and is_terminal(out):
        import rich.console  # (only now: see driver/console_rich.py)

        terminal = rich.console.Console(file=out, highlight=False)
    if terminal is not None:
        from .console_rich import RichConsole

        return RichConsole(terminal, errs, verbosity=verbosity)
    return PlainConsole(out, errs, verbosity=verbosity, interval=interval, clock=clock)


def is_terminal(stream: TextIO) -> bool:
    """A terminal that can redraw in place (a dumb one, e.g. an editor's shell, gets lines)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False
    return tty and os.environ.get("TERM", "") not in ("dumb", "unknown")


# ---------------------------------------------------------------------------------------------
# Shared text


def threshold(verbosity: int) -> int:
    """The lowest message level shown at this verbosity."""
    if verbosity < 0:
        return logging.ERROR
    return logging.INFO if verbosity == 0 else logging.DEBUG


def level_name(level: int) -> str:
    if level >= logging.ERROR:
        return "error"
    if level >= logging.WARNING:
        return "warning"
    return "info" if level >= logging.INFO else "debug"


def prefixed(text: str, level: int) -> str:
    """Info is the plain sentence; other levels say what they are."""
    return text if logging.INFO <= level < logging.WARNING else f"{level_name(level)}: {text}"


def receiver_counts(rows: list[ReceiverRow]) -> str:
    done = sum(row.state == "done" for row in rows)
    failed = sum(row.state in FAILED_STATES for row in rows)
    return f"receivers {len(rows)} (done {done}, failed {failed})"


def eta_text(eta: float | None) -> str:
    return "ETA " + ("-:--" if eta is None else format_duration(eta))


def progress_line(snapshot: Snapshot) -> str:
    """One plain progress line, e.g. ``sending  42.0%  812.3 Mbit/s  ETA 0:12  receivers …``."""
    s = snapshot
    if isinstance(s, SenderSnapshot):
        return (f"{s.state}  {s.percent:.1f}%  {format_rate(s.rate_bps)}  {eta_text(s.eta)}"
                f"  {receiver_counts(s.receivers)}")
    if isinstance(s, TaskSnapshot):
        note = f"  {s.note}" if s.note else ""
        return (f"{s.state}  {s.percent:.1f}%  {format_bytes_of(s.done_bytes, s.total_bytes)}"
                f"  {format_byte_rate(s.rate_bps / 8)}  {eta_text(s.eta)}{note}")
    if s.image_size <= 0:  # still discovering: there is nothing to count yet
        return f"{s.state}  {format_duration(s.elapsed)}"
    return (f"{s.state}  {s.percent:.1f}%  {format_bytes_of(s.written_bytes, s.image_size)}"
            f"  {format_byte_rate(s.rate_bps / 8)}  {eta_text(s.eta)}  loss {s.loss * 100:.1f}%")


def outcome(row: ReceiverRow) -> tuple[bool, str]:
    """Whether a laptop ended with a verified image, and why not."""
    ok = row.state == "done"
    return ok, row.reason or ("" if ok else row.state)


def seconds_text(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"


def verified_text(row: ReceiverRow) -> str:
    return f"{format_bytes(row.verified_bytes)} verified" if row.verified_bytes else ""


def host_text(host: dict[str, str]) -> str:
    """Who a laptop is, in short: ``52:54:00:12:34:56 · serial ABC · disk QEMU NVMe Ctrl
    (NVME0001)``; what it did not say is left out."""
    parts = [host["mac"]] if "mac" in host else []
    if "dmi_serial" in host:
        parts.append(f"serial {host['dmi_serial']}")
    model, serial = host.get("disk_model", ""), host.get("disk_serial", "")
    if model or serial:
        parts.append("disk " + (f"{model} ({serial})" if model and serial else model or serial))
    return " · ".join(parts)


def host_short(host: dict[str, str]) -> str:
    """The one name for the live table: the serial on the laptop's sticker, else its MAC."""
    return host.get("dmi_serial") or host.get("mac", "")


def headline(report: FinalReport) -> str:
    return report.message if report.ok else f"FAILED: {report.message}"


def details_text(report: FinalReport) -> str:
    return "details: " + ", ".join(f"{key}={value}" for key, value in report.details.items())


def summary_lines(report: FinalReport, *, verbosity: int = 0) -> list[str]:
    """The plain final summary: a headline, then (sender) one line per receiver."""
    lines = [headline(report)]
    width = max((len(row.addr) for row in report.receivers), default=0)
    for row in report.receivers:
        ok, reason = outcome(row)
        secs = seconds_text(row.seconds) + (" s" if row.seconds is not None else "")
        cells = [f"{row.addr:<{width}}", f"{'ok' if ok else 'FAILED':<6}", f"{secs:>8}",
                 verified_text(row), host_text(row.host), reason]
        lines.append("  " + "  ".join(cell for cell in cells if cell).rstrip())
    if verbosity >= 1 and report.details:
        lines.append("  " + details_text(report))
    return lines


class _Lines:
    """Writes whole lines, flushed at once so logs and pipes see them as they happen.

    A reader that went away (closed pipe, dropped ssh session) silences the stream instead of
    raising: losing the progress display must never abort a classroom's imaging run.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.alive = True

    def write(self, line: str) -> None:
        if not self.alive:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except OSError:
            self.alive = False


class _Throttle:
    """Due at most once per ``interval``, and at once whenever the state changes."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._state: str | None = None

    def due(self, state: str) -> bool:
        now = self._clock()
        if self._last is not None and state == self._state and now - self._last < self._interval:
            return False
        self._last, self._state = now, state
        return True


# ---------------------------------------------------------------------------------------------
# Plain lines


class _LineConsole:
    """What the plain and JSON consoles share: two line streams, a throttle, a done flag."""

    def __init__(self, stream: TextIO, err: TextIO, *, verbosity: int, interval: float,
                 clock: Callable[[], float]) -> None:
        self._out = _Lines(stream)
        self._err = _Lines(err)
        self._verbosity = verbosity
        self._throttle = _Throttle(interval, clock)
        self._done = False


class PlainConsole(_LineConsole):
    """Line-oriented output for logs, pipes and serial consoles."""

    def update(self, snapshot: Snapshot) -> None:
        if not self._done and self._verbosity >= 0 and self._throttle.due(snapshot.state):
            self._out.write(progress_line(snapshot))

    def message(self, text: str, *, level: int = logging.INFO) -> None:
        if self._done or level < threshold(self._verbosity):
            return
        (self._err if level >= logging.WARNING else self._out).write(prefixed(text, level))

    def final(self, report: FinalReport) -> None:
        if self._done:
            return
        self._done = True
        for line in summary_lines(report, verbosity=self._verbosity):
            self._out.write(line)

    def close(self) -> None:
        self._done = True


# ---------------------------------------------------------------------------------------------
# JSON lines


def json_safe(value: Any) -> Any:
    """JSON has no NaN or Infinity; an unknown quantity is null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


class JsonConsole(_LineConsole):
    """One JSON object per line on stdout, for scripts; see the module docstring."""

    def _emit(self, obj: dict[str, Any]) -> None:
        # default=str: a detail such as a Path must not cost the run its final line.
        self._out.write(json.dumps(json_safe(obj), default=str))

    def update(self, snapshot: Snapshot) -> None:
        if self._done or self._verbosity < 0 or not self._throttle.due(snapshot.state):
            return
        role = ("sender" if isinstance(snapshot, SenderSnapshot) else
                "task" if isinstance(snapshot, TaskSnapshot) else "receiver")
        self._emit({"event": "progress", "role": role, **dataclasses.asdict(snapshot)})

    def message(self, text: str, *, level: int = logging.INFO) -> None:
        if self._done or level < threshold(self._verbosity):
            return
        self._emit({"event": "message", "level": level_name(level), "text": text})
        if level >= logging.WARNING:
            self._err.write(prefixed(text, level))

    def final(self, report: FinalReport) -> None:
        if not self._done:
            self._done = True
            self._emit(report.to_json())

    def close(self) -> None:
        self._done = True
