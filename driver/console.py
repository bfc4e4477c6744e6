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

import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TextIO

import rich.console
from rich import box
from rich.console import ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

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
        terminal = rich.console.Console(file=out, highlight=False)
    if terminal is not None:
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


# ---------------------------------------------------------------------------------------------
# Rich live view

STATE_STYLES = {"done": "green", "complete": "green", "finished": "green", "failed": "bold red",
                "dropped": "red", "lagging": "yellow", "verifying": "cyan", "reporting": "cyan",
                "joining": "dim", "waiting": "dim", "discovering": "dim"}
LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}


def _cell(text: str, style: str = "") -> Text:
    # Always Text, never a str: an address like "[fe80::1]:5000" must not parse as markup.
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _state(state: str) -> Text:
    return _cell(state, STATE_STYLES.get(state, ""))


class BarStyle(NamedTuple):
    colored: bool  # without colour the unfilled part must be blank to be told apart
    ascii: bool

    @classmethod
    def of(cls, console: rich.console.Console, options: ConsoleOptions) -> BarStyle:
        return cls(not console.no_color and console.color_system is not None,
                   options.ascii_only or options.legacy_windows)


def _bar(percent: float, width: int, style: BarStyle) -> Text:
    """A progress bar as styled text, drawn like rich's ProgressBar: a ProgressBar in a nested
    grid per table cell costs several times more, and rich renders from a thread that shares
    the sender's GIL."""
    halves = int(max(0.0, min(100.0, percent)) / 100 * width * 2)
    full, half = divmod(halves, 2)
    done = "bar.finished" if percent >= 100 else "bar.complete"
    line, half_right = ("-", " ") if style.ascii else ("━", "╸")
    rest = line * (width - full - half) if style.colored else " " * (width - full - half)
    return Text.assemble((line * full + half_right * half, done), (rest, "bar.back"),
                         no_wrap=True)


def _bar_line(state: str, percent: float, fields: list[tuple[int, str]], width: int,
              style: BarStyle) -> Text:
    """``state ━━━━╸━━━ 42.0%  field  field`` fitted to ``width``.

    ``fields`` are (priority, text) in display order; the least important go first when the
    line is too wide, then the bar shrinks and finally disappears.
    """
    pct = f"{percent:5.1f}%"
    kept = list(fields)

    def used() -> int:  # state, percent and fields, two spaces apart, plus the bar's gaps
        return len(state) + len(pct) + sum(len(text) + 2 for _, text in kept) + 2

    while kept and width - used() < 8:
        kept.remove(min(kept, key=lambda field: field[0]))
    bar_width = min(40, width - used())
    line = _state(state) + " "
    if bar_width >= 5:
        line += _bar(percent, bar_width, style) + " "
    line += "  ".join([pct, *(text for _, text in kept)])
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def _row_order(row: ReceiverRow) -> tuple[int, float]:
    """Failures first (someone must look at them), then the slowest laptops, then finished."""
    if row.state in FAILED_STATES:
        return 0, 0.0
    return (2, 0.0) if row.state == "done" else (1, row.percent)


class _SenderView:
    """Laid out at render time, so a resized terminal gets a fitting table on the next frame."""

    def __init__(self, snapshot: SenderSnapshot) -> None:
        self.snapshot = snapshot

    def __rich_console__(self, console: rich.console.Console,
                         options: ConsoleOptions) -> RenderResult:
        s = self.snapshot
        width, style = options.max_width, BarStyle.of(console, options)
        repair = s.repair_bytes / s.sent_bytes * 100 if s.sent_bytes else 0.0
        yield _cell(f"{s.name}  {format_bytes(s.image_size)}  elapsed {format_duration(s.elapsed)}"
                    f"  sent {format_bytes(s.sent_bytes)} (repair {repair:.1f}%)", "bold")
        yield _bar_line(s.state, s.percent, [(2, format_rate(s.rate_bps)), (4, eta_text(s.eta)),
                                              (3, receiver_counts(s.receivers))], width, style)
        if not s.receivers:
            return
        # Header lines, the table's head and rule, and a spare line keep the view on screen.
        budget = max(3, options.size.height - 8)
        rows = sorted(s.receivers, key=_row_order)
        hidden = rows[budget - 1:] if len(rows) > budget else []
        rows = rows[:budget - 1] if hidden else rows
        yield _receiver_table(rows, hidden, width, style)


LAPTOP_WIDTH = 20  # a longer serial ends in an ellipsis in the live table (the summary has it all)


def _receiver_columns(rows: list[ReceiverRow], width: int) -> tuple[list[str], int, int]:
    """The columns that fit ``width``, the bar width inside "done" (0: no bar) and the room
    left for the reason.

    A narrow terminal loses the bar, then the laptop's name, rate, loss and reason — never
    address, done or state.
    """
    sizes = {
        "receiver": max(len("receiver"), *(len(row.addr) for row in rows)),
        "laptop": min(LAPTOP_WIDTH, max(len("laptop"),
                                        *(len(host_short(row.host)) for row in rows))),
        "done": 17,  # 10-cell bar, a space, "100.0%"
        "rate": max(len(format_rate(row.rate_bps)) for row in rows),
        "loss": 6,
        "state": max(len("state"), *(len(row.state) for row in rows)),
        "reason": 12,  # at least this much, or the column is not worth showing
    }
    columns = ["receiver", "done", "rate", "loss", "state"]
    if any(row.host for row in rows):
        columns.insert(1, "laptop")
    if any(row.reason for row in rows):
        columns.append("reason")

    def fits() -> bool:
        return sum(sizes[name] for name in columns) + 2 * (len(columns) - 1) <= width

    if not fits():
        sizes["done"] = 6
    for name in ("laptop", "rate", "loss", "reason"):
        if not fits() and name in columns:
            columns.remove(name)
    used = sum(sizes[name] for name in columns if name != "reason") + 2 * (len(columns) - 1)
    return columns, 10 if sizes["done"] == 17 else 0, max(1, width - used)


def _receiver_table(rows: list[ReceiverRow], hidden: list[ReceiverRow], width: int,
                    style: BarStyle) -> RenderableType:
    columns, bar_width, reason_width = _receiver_columns(rows, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for name in columns:
        justify: Any = "right" if name in ("rate", "loss") or (name == "done" and not bar_width) \
            else "left"
        # Rich squeezes "wrappable" columns first, so reason and then address give way
        # before done and state; their cells still end in an ellipsis rather than wrap.
        table.add_column(name, justify=justify, no_wrap=name not in ("receiver", "reason"),
                         max_width=(reason_width if name == "reason" else
                                    LAPTOP_WIDTH if name == "laptop" else None))
    for row in rows:
        values: dict[str, RenderableType] = {
            "receiver": _cell(row.addr),
            "laptop": _cell(host_short(row.host)),
            "done": _percent_cell(row.percent, bar_width, style),
            "rate": _cell(format_rate(row.rate_bps)),
            "loss": _cell(f"{row.loss * 100:.1f}%"),
            "state": _state(row.state),
            "reason": _cell(row.reason, "red" if row.state in FAILED_STATES else ""),
        }
        table.add_row(*(values[name] for name in columns))
    if not hidden:
        return table
    done = sum(row.state == "done" for row in hidden)
    return Group(table, _cell(f"… and {len(hidden)} more ({done} done)", "dim"))


def _percent_cell(percent: float, bar_width: int, style: BarStyle) -> Text:
    pct = _cell(f"{percent:5.1f}%")
    return _bar(percent, bar_width, style) + " " + pct if bar_width else pct


class _ReceiverView:
    def __init__(self, snapshot: ReceiverSnapshot) -> None:
        self.snapshot = snapshot

    def __rich_console__(self, console: rich.console.Console,
                         options: ConsoleOptions) -> RenderResult:
        s = self.snapshot
        session = f"session {s.session}" if s.session else "no session yet"
        yield _cell(f"{session}  elapsed {format_duration(s.elapsed)}", "bold")
        if s.image_size <= 0:
            yield _state(s.state)
            return
        fields = [(2, format_bytes_of(s.written_bytes, s.image_size)),
                  (3, format_byte_rate(s.rate_bps / 8)), (4, eta_text(s.eta)),
                  (1, f"loss {s.loss * 100:.1f}%")]
        yield _bar_line(s.state, s.percent, fields, options.max_width,
                        BarStyle.of(console, options))


class _TaskView:
    def __init__(self, snapshot: TaskSnapshot) -> None:
        self.snapshot = snapshot

    def __rich_console__(self, console: rich.console.Console,
                         options: ConsoleOptions) -> RenderResult:
        s = self.snapshot
        yield _cell(f"{s.title}  elapsed {format_duration(s.elapsed)}", "bold")
        fields = [(2, format_bytes_of(s.done_bytes, s.total_bytes)),
                  (3, format_byte_rate(s.rate_bps / 8)), (4, eta_text(s.eta))]
        if s.note:
            fields.append((1, s.note))
        yield _bar_line(s.state, s.percent, fields, options.max_width,
                        BarStyle.of(console, options))


def _summary(report: FinalReport, verbosity: int, width: int) -> RenderableType:
    title = Text(headline(report), style="bold green" if report.ok else "bold red")
    parts: list[RenderableType] = [title]
    rows = report.receivers
    addr_width = max((len(row.addr) for row in rows), default=0)
    # The narrowest the columns may be (the laptop's column folds its text), with padding.
    need = (addr_width + 6 + 7 + 12 + 9 + (12 if any(row.verified_bytes for row in rows) else 0)
            + (27 if any(row.host for row in rows) else 0))
    if rows and need > width:
        # Too narrow for columns: the plain lines, wrapped, still say everything.
        for row in report.receivers:
            ok, reason = outcome(row)
            rest = [seconds_text(row.seconds), verified_text(row), host_text(row.host), reason]
            parts.append(Text.assemble(row.addr, " ", ("ok", "green") if ok else ("FAILED", "red"),
                                       "".join(f" {cell}" for cell in rest if cell)))
    elif report.receivers:
        parts.append(_summary_table(report.receivers))
    if verbosity >= 1 and report.details:
        parts.append(Text(details_text(report), style="dim"))
    return Group(*parts)


def _summary_table(rows: list[ReceiverRow]) -> Table:
    """One row per laptop; the verified and laptop columns only when some row has them."""
    verified, hosts = any(row.verified_bytes for row in rows), any(row.host for row in rows)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("receiver", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    if verified:
        table.add_column("verified", justify="right", no_wrap=True)
    if hosts:
        table.add_column("laptop", overflow="fold")
    table.add_column("reason", overflow="fold")  # the reason matters more than tidiness
    for row in rows:
        ok, reason = outcome(row)
        cells = [Text(row.addr), Text("ok", "green") if ok else Text("FAILED", "red"),
                 Text(seconds_text(row.seconds))]
        if verified:
            cells.append(Text(format_bytes(row.verified_bytes) if row.verified_bytes else "-"))
        if hosts:
            cells.append(Text(host_text(row.host)))
        table.add_row(*cells, Text(reason))
    return table


def _copy(snapshot: Snapshot) -> Snapshot:
    """Rich draws from its own thread, so it gets rows the daemon cannot change under it."""
    if isinstance(snapshot, SenderSnapshot):
        return dataclasses.replace(
            snapshot, receivers=[dataclasses.replace(row) for row in snapshot.receivers])
    return dataclasses.replace(snapshot)


class RichConsole:
    """A live view on a terminal, redrawn 4 times a second by rich's refresh thread."""

    def __init__(self, terminal: rich.console.Console, err: TextIO, *, verbosity: int) -> None:
        self._term = terminal
        self._err = _Lines(err)
        # When stderr is that same screen, writing to it would tear the live area.
        self._err_elsewhere = not is_terminal(err)
        self._verbosity = verbosity
        self._live: Live | None = None
        self._done = False

    def update(self, snapshot: Snapshot) -> None:
        if self._done or self._verbosity < 0:
            return
        copied = _copy(snapshot)
        view: _SenderView | _ReceiverView | _TaskView
        if isinstance(copied, SenderSnapshot):
            view = _SenderView(copied)
        elif isinstance(copied, TaskSnapshot):
            view = _TaskView(copied)
        else:
            view = _ReceiverView(copied)
        if self._live is None:
            self._live = Live(view, console=self._term, refresh_per_second=4, transient=False)
            self._guard(self._live.start)
        else:
            self._live.update(view)

    def message(self, text: str, *, level: int = logging.INFO) -> None:
        if self._done or level < threshold(self._verbosity):
            return
        # While live, rich prints this above the live area.
        line = Text(prefixed(text, level), style=LEVEL_STYLES[level_name(level)])
        self._guard(lambda: self._term.print(line))
        if level >= logging.WARNING and self._err_elsewhere:
            self._err.write(prefixed(text, level))

    def final(self, report: FinalReport) -> None:
        if self._done:
            return
        self._stop()
        self._done = True
        summary = _summary(report, self._verbosity, self._term.width)
        self._guard(lambda: self._term.print(summary))

    def close(self) -> None:
        self._stop()
        self._done = True

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            self._guard(live.stop)  # the last frame stays on screen (transient=False)
            if not self._term.is_terminal:  # rich ends the frame's line only on a terminal
                self._guard(self._term.line)

    @staticmethod
    def _guard(action: Callable[[], object]) -> None:
        # See _Lines: a vanished terminal must not abort the run.
        with contextlib.suppress(OSError):
            action()

