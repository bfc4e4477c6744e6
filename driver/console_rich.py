"""The rich live view of both daemons on a terminal (driver/console.py picks it): the
progress of the sender and its laptops, or of one laptop, redrawn in place, and the summary.

A module of its own so that a run that never shows a terminal (``--json``, the boot stick's
agent, a log file) does not import rich: ~50 ms of every start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO

import rich.console
from rich import box
from rich.console import ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from driver.console import (
    FAILED_STATES,
    Snapshot,
    _Lines,
    details_text,
    eta_text,
    headline,
    host_short,
    host_text,
    is_terminal,
    level_name,
    outcome,
    prefixed,
    receiver_counts,
    seconds_text,
    threshold,
    verified_text,
)
from driver.report import FinalReport, ReceiverRow, ReceiverSnapshot, SenderSnapshot, TaskSnapshot
from driver.units import (
    format_byte_rate,
    format_bytes,
    format_bytes_of,
    format_duration,
    format_rate,
)

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

