"""The three renderers: plain lines, JSON lines and the rich live view."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import rich.console

from driver.console import (
    JsonConsole,
    PlainConsole,
    host_text,
    make_console,
    progress_line,
)
from driver.console_rich import RichConsole
from driver.report import FinalReport, ReceiverRow, ReceiverSnapshot, SenderSnapshot

MiB = 1 << 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class BrokenPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


def rows() -> list[ReceiverRow]:
    return [
        ReceiverRow("10.77.0.2:41234", "receiving", 42.0, 900e6, 0.021),
        ReceiverRow("10.77.0.3:41234", "done", 100.0, 0.0, 0.0, seconds=23.1),
        ReceiverRow("10.77.0.4:41234", "failed", 12.5, 0.0, 0.1, "disk write error"),
        ReceiverRow("10.77.0.5:41234", "dropped", 50.0, 0.0, 0.0, "silent for 10 s"),
    ]


HOST = {"mac": "52:54:00:12:34:56", "dmi_serial": "PF2ABCDE", "disk_model": "QEMU NVMe Ctrl",
        "disk_serial": "NVME0001"}
WHO = "52:54:00:12:34:56 · serial PF2ABCDE · disk QEMU NVMe Ctrl (NVME0001)"


def named_rows() -> list[ReceiverRow]:
    """Laptops that said who they are: one verified, one failed."""
    return [
        ReceiverRow("10.77.0.6:41234", "done", 100.0, 0.0, 0.0, seconds=20.5,
                    verified_bytes=256 * MiB, host=HOST),
        ReceiverRow("10.77.0.7:41234", "failed", 10.0, 0.0, 0.0, "disk write error",
                    host={"mac": "52:54:00:00:00:07"}),
    ]


def sender(state: str = "sending", percent: float = 42.0, eta: float | None = 12.0,
           receivers: list[ReceiverRow] | None = None) -> SenderSnapshot:
    return SenderSnapshot("room.img", 256 * MiB, 5.0, state, percent, 812.3e6, eta, 300 * MiB,
                          4 * MiB, rows() if receivers is None else receivers)


def receiver(state: str = "receiving") -> ReceiverSnapshot:
    return ReceiverSnapshot("room.img", 256 * MiB, 5.0, state, 42.0, 107 * MiB, 11.2e6 * 8,
                            13.0, 0.021)


def sender_report() -> FinalReport:
    return FinalReport("sender", False, "2 of 4 laptops imaged in 0:23", 23.0, 256 * MiB,
                       {"sent_bytes": 300 * MiB}, rows())


def receiver_report() -> FinalReport:
    return FinalReport("receiver", True, "image verified in 0:23", 23.0, 256 * MiB)


# --- plain lines ------------------------------------------------------------------------------


def plain(verbosity: int = 0) -> tuple[PlainConsole, io.StringIO, io.StringIO, FakeClock]:
    out, err, clock = io.StringIO(), io.StringIO(), FakeClock()
    console = make_console(json_mode=False, verbosity=verbosity, stream=out, err=err,
                           interval=2.0, clock=clock)
    assert isinstance(console, PlainConsole)
    return console, out, err, clock


def test_progress_lines_read_as_documented() -> None:
    assert progress_line(sender()) == (
        "sending  42.0%  812.3 Mbit/s  ETA 0:12  receivers 4 (done 1, failed 2)")
    assert progress_line(receiver()) == (
        "receiving  42.0%  107.0/256.0 MiB  11.2 MB/s  ETA 0:13  loss 2.1%")
    assert "ETA -:--" in progress_line(sender(eta=None))
    discovering = ReceiverSnapshot("", 0, 3.0, "discovering", 0.0, 0, 0.0, None, 0.0)
    assert progress_line(discovering) == "discovering  0:03"


def test_plain_rate_limits_and_state_change_forces_a_line() -> None:
    console, out, _, clock = plain()
    console.update(sender(percent=10))  # the first snapshot always shows
    clock.now += 1.0
    console.update(sender(percent=20))  # within the interval: skipped
    clock.now += 1.0
    console.update(sender(percent=30))  # 2 s after the last line
    clock.now += 0.1
    console.update(sender(state="complete", percent=100))  # state change: at once
    clock.now += 0.1
    console.update(sender(state="complete", percent=100))
    lines = out.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["sending", "10.0%"], ["sending", "30.0%"], ["complete", "100.0%"]]


def test_plain_messages_by_level_and_verbosity() -> None:
    console, out, err, _ = plain()
    console.message("laptop 10.77.0.3 joined")
    console.message("hidden detail", level=logging.DEBUG)
    console.message("laptop slow", level=logging.WARNING)
    console.message("disk gone", level=logging.ERROR)
    assert out.getvalue() == "laptop 10.77.0.3 joined\n"
    assert err.getvalue() == "warning: laptop slow\nerror: disk gone\n"

    console, out, _, _ = plain(verbosity=1)
    console.message("hidden detail", level=logging.DEBUG)
    assert out.getvalue() == "debug: hidden detail\n"


def test_plain_quiet_shows_only_errors_and_final() -> None:
    console, out, err, _ = plain(verbosity=-1)
    console.update(sender())
    console.message("laptop joined")
    console.message("laptop slow", level=logging.WARNING)
    console.message("disk gone", level=logging.ERROR)
    console.final(receiver_report())
    assert out.getvalue() == "image verified in 0:23\n"
    assert err.getvalue() == "error: disk gone\n"


def test_plain_final_summary_lists_every_receiver() -> None:
    console, out, _, _ = plain()
    console.final(sender_report())
    console.message("after the end")  # the final summary is the last output
    console.update(sender())
    lines = out.getvalue().splitlines()
    assert lines[0] == "FAILED: 2 of 4 laptops imaged in 0:23"
    assert len(lines) == 5
    by_addr = {line.split()[0]: line.split(maxsplit=2)[1:] for line in lines[1:]}
    assert by_addr["10.77.0.2:41234"] == ["FAILED", "-  receiving"]
    assert by_addr["10.77.0.3:41234"] == ["ok", "23.1 s"]
    assert by_addr["10.77.0.4:41234"] == ["FAILED", "-  disk write error"]
    assert by_addr["10.77.0.5:41234"] == ["FAILED", "-  silent for 10 s"]


def test_host_text_leaves_out_what_a_laptop_did_not_say() -> None:
    assert host_text(HOST) == WHO
    assert host_text({"mac": "m", "disk_serial": "S1"}) == "m · disk S1"
    assert host_text({"disk_model": "M"}) == "disk M"
    assert host_text({}) == ""


def test_plain_final_summary_names_each_laptop_and_what_it_verified() -> None:
    console, out, _, _ = plain()
    console.final(FinalReport("sender", False, "1 of 2 did not verify", 21.0, 256 * MiB,
                              receivers=named_rows()))
    assert out.getvalue().splitlines()[1:] == [
        f"  10.77.0.6:41234  ok        20.5 s  256.0 MiB verified  {WHO}",
        "  10.77.0.7:41234  FAILED         -  52:54:00:00:00:07  disk write error",
    ]


def test_plain_final_details_only_when_verbose() -> None:
    console, out, _, _ = plain(verbosity=1)
    console.final(sender_report())
    assert out.getvalue().splitlines()[-1] == f"  details: sent_bytes={300 * MiB}"


def test_a_vanished_reader_does_not_stop_the_run() -> None:
    console = make_console(json_mode=False, verbosity=0, stream=BrokenPipe(), err=BrokenPipe())
    console.update(sender())
    console.message("still imaging", level=logging.ERROR)
    console.final(sender_report())
    console.close()


# --- JSON lines -------------------------------------------------------------------------------


def json_run(verbosity: int = 0) -> tuple[list[dict[str, object]], str]:
    out, err, clock = io.StringIO(), io.StringIO(), FakeClock()
    console = make_console(json_mode=True, verbosity=verbosity, stream=out, err=err, clock=clock)
    assert isinstance(console, JsonConsole)
    console.message("laptop 10.77.0.3 joined")
    console.update(sender(percent=10))
    clock.now += 0.5
    console.update(sender(percent=11))  # rate-limited
    console.message("laptop slow", level=logging.WARNING)
    console.message("debug detail", level=logging.DEBUG)
    clock.now += 0.1
    console.update(sender(state="complete", percent=100, eta=float("nan")))
    console.final(sender_report())
    console.message("too late", level=logging.ERROR)
    console.update(sender())
    console.close()
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()], err.getvalue()


def test_json_every_line_is_json_and_final_is_last() -> None:
    events, err = json_run()
    assert [(e["event"], e.get("level") or e.get("percent")) for e in events] == [
        ("message", "info"), ("progress", 10.0), ("message", "warning"), ("progress", 100.0),
        ("final", None)]
    progress = events[1]
    assert progress["role"] == "sender" and progress["name"] == "room.img"
    assert isinstance(progress["receivers"], list) and len(progress["receivers"]) == 4
    assert events[3]["eta"] is None  # NaN is not JSON
    final = events[-1]
    assert final["ok"] is False and final["role"] == "sender"
    assert final == json.loads(json.dumps(sender_report().to_json()))
    # Warnings are repeated for a person on stderr; stdout stays pure JSON.
    assert err == "warning: laptop slow\n"


def test_json_final_carries_who_each_laptop_is() -> None:
    out = io.StringIO()
    console = make_console(json_mode=True, verbosity=0, stream=out, err=io.StringIO())
    console.final(FinalReport("sender", False, "1 of 2", 21.0, 256 * MiB, receivers=named_rows()))
    rows = json.loads(out.getvalue())["receivers"]
    assert [(r["host"], r["verified_bytes"]) for r in rows] == [
        (HOST, 256 * MiB), ({"mac": "52:54:00:00:00:07"}, 0)]


def test_json_verbose_adds_debug_and_quiet_keeps_final() -> None:
    events, _ = json_run(verbosity=1)
    assert {"event": "message", "level": "debug", "text": "debug detail"} in events
    events, _ = json_run(verbosity=-1)
    assert [e["event"] for e in events] == ["final"]


def test_json_receiver_progress() -> None:
    out = io.StringIO()
    console = make_console(json_mode=True, verbosity=0, stream=out, err=io.StringIO())
    console.update(receiver())
    console.final(receiver_report())
    first, last = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["role"] == "receiver" and first["written_bytes"] == 107 * MiB
    assert last["event"] == "final" and last["ok"] is True


def test_json_mode_ignores_a_terminal() -> None:
    console = make_console(json_mode=True, verbosity=0, stream=FakeTTY(), err=io.StringIO())
    assert isinstance(console, JsonConsole)


# --- rich live view ---------------------------------------------------------------------------


def rich_run(width: int, snapshot: SenderSnapshot | ReceiverSnapshot, report: FinalReport, *,
             terminal: bool = True, height: int = 25) -> str:
    buf = io.StringIO()
    term = rich.console.Console(file=buf, force_terminal=terminal, width=width, height=height,
                                color_system="standard" if terminal else None)
    console = make_console(json_mode=False, verbosity=0, err=io.StringIO(), terminal=term)
    assert isinstance(console, RichConsole)
    console.message("laptop 10.77.0.3 joined")
    console.update(snapshot)
    console.message("laptop slow", level=logging.WARNING)
    console.final(report)
    console.close()
    return ANSI.sub("", buf.getvalue())


def test_rich_sender_view_shows_every_receiver_and_summary() -> None:
    text = rich_run(100, sender(), sender_report())
    for row in rows():
        assert row.addr in text
    for state in ("receiving", "done", "failed", "dropped", "disk write error"):
        assert state in text
    assert "812.3 Mbit/s" in text and "ETA 0:12" in text
    assert "laptop 10.77.0.3 joined" in text and "warning: laptop slow" in text
    summary = text[text.index("FAILED: 2 of 4 laptops"):]
    assert all(row.addr in summary for row in rows()) and "23.1" in summary


def test_rich_names_each_laptop_live_and_in_the_summary() -> None:
    report = FinalReport("sender", False, "1 of 2 did not verify", 21.0, 256 * MiB,
                         receivers=named_rows())
    text = rich_run(160, sender(receivers=named_rows()), report, terminal=False)
    live, summary = text.split("FAILED: 1 of 2 did not verify")
    assert "laptop" in live and "PF2ABCDE" in live and "52:54:00:00:00:07" in live
    assert WHO in summary and "256.0 MiB" in summary and "disk write error" in summary


def test_rich_receiver_view() -> None:
    text = rich_run(100, receiver(), receiver_report())
    assert "107.0/256.0 MiB" in text and "11.2 MB/s" in text and "loss 2.1%" in text
    assert text.rstrip().endswith("image verified in 0:23")


@pytest.mark.parametrize("width", [20, 30, 40, 60, 80])
def test_rich_fits_narrow_terminals(width: int) -> None:
    long_reason = ReceiverRow("[fe80::1234:5678:9abc:def0]:41234", "failed", 3.0, 1e6, 0.5,
                              "the disk went away in the middle of block 123456 " * 2)
    named = FinalReport("sender", False, "1 of 2", 21.0, 256 * MiB, receivers=named_rows())
    for snapshot, report in ((sender(receivers=[*rows(), long_reason]), sender_report()),
                             (sender(receivers=[*rows(), *named_rows()]), named),
                             (receiver(), receiver_report())):
        text = rich_run(width, snapshot, report, terminal=False)
        lines = text.splitlines()
        assert all(len(line) <= width for line in lines), text
        assert "receiving" in text


def test_rich_keeps_a_large_room_on_screen() -> None:
    room = [ReceiverRow(f"10.77.{i // 250}.{i % 250}:41234", "receiving", i / 10, 1e8, 0.0)
            for i in range(1000)]
    room[500].state, room[500].reason = "failed", "checksum mismatch"
    text = rich_run(100, sender(receivers=room), receiver_report(), terminal=False, height=30)
    live = text[:text.index("image verified")]
    assert len(live.splitlines()) <= 30
    assert "checksum mismatch" in live  # failures sort first
    assert "10.77.0.0:41234" in live  # then the slowest
    assert re.search(r"… and \d+ more", live)


def test_rich_does_not_parse_markup_in_text() -> None:
    odd = ReceiverRow("[bold]10.0.0.1[/bold]:1", "failed", 0.0, 0.0, 0.0, "[red]x[/red]")
    text = rich_run(100, sender(receivers=[odd]), sender_report())
    assert "[bold]10.0.0.1[/bold]:1" in text and "[red]x[/red]" in text


def test_make_console_picks_rich_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    tty = FakeTTY()
    console = make_console(json_mode=False, verbosity=0, stream=tty, err=io.StringIO())
    assert isinstance(console, RichConsole)
    console.update(sender())
    console.final(sender_report())
    assert "10.77.0.4:41234" in tty.getvalue()
    monkeypatch.setenv("TERM", "dumb")  # cannot redraw in place: lines instead
    assert isinstance(make_console(json_mode=False, verbosity=0, stream=FakeTTY()), PlainConsole)


def test_rich_warnings_reach_a_redirected_stderr() -> None:
    err = io.StringIO()
    term = rich.console.Console(file=io.StringIO(), force_terminal=True, width=80)
    console = make_console(json_mode=False, verbosity=0, err=err, terminal=term)
    console.update(receiver())
    console.message("laptop slow", level=logging.WARNING)
    console.message("fine", level=logging.INFO)
    console.close()
    assert err.getvalue() == "warning: laptop slow\n"


def test_rate_meter_samples_at_most_every_interval_and_smooths() -> None:
    from driver.report import RateMeter

    meter = RateMeter(0.0, 0, interval=1.0, weight=0.5)
    assert meter.update(0.5, 1000) == 0.0  # too soon: no sample yet
    assert meter.update(1.0, 1000) == 4000.0  # 8000 bit/s, half of it
    assert meter.update(2.0, 2000) == 6000.0
    assert RateMeter(0.0, 0, interval=1.0, weight=1.0).update(2.0, 500) == 2000.0


def test_programs_that_show_no_terminal_never_import_rich() -> None:
    """--json runs (the boot stick's agent, the lab) start without rich: ~50 ms each."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import io, sys\nimport mcastd.cli, receiver.cli\n"
            "from driver.console import make_console\n"
            "make_console(json_mode=True, verbosity=0, stream=io.StringIO())\n"
            "make_console(json_mode=False, verbosity=0, stream=io.StringIO())\n"
            "print('rich' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, cwd=Path(__file__).parents[2])
    assert done.stdout.strip() == "False"
