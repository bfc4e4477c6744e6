"""The agent and mcast-receive: the command line each mcastd.conf gives (checked against the
receiver's own parser), and following a real child program that talks like
`mcast-receive --json`: progress, messages, noise, the final report and the exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from receiver.cli import build_parser
from stick.agent.receive import Received, receiver_argv, run_receiver
from stick.config import StickConfig

STICK = Path("/stick")
JOURNAL = STICK / "journals/3c-52-82-1a-2b-3c-S64ANS0T123456"
REPORT = STICK / "reports/3c-52-82-1a-2b-3c.json"
BASE = ["mcast-receive", "/dev/nvme0n1", "--json", "--interface", "enp0s31f6", "--state-dir",
        str(JOURNAL), "--report", str(REPORT)]


def argv_for(config: StickConfig) -> list[str]:
    return receiver_argv(config, STICK, "/dev/nvme0n1", "enp0s31f6", JOURNAL, REPORT)


@pytest.mark.parametrize(("config", "extra"), [
    (StickConfig(), []),
    (StickConfig(session="win11"), ["--session", "win11"]),
    (StickConfig(trust=True), ["--trust", "/stick/trust.pub"]),
    (StickConfig(secret=True), ["--encrypt", "/stick/secret.key"]),
    (StickConfig(session="lab", trust=True, secret=True, then="wait", target="/dev/sda"),
     ["--session", "lab", "--trust", "/stick/trust.pub", "--encrypt", "/stick/secret.key"]),
], ids=["defaults", "session", "trust", "secret", "everything"])
def test_the_receiver_command_line_of_each_setting(config: StickConfig,
                                                   extra: list[str]) -> None:
    argv = argv_for(config)
    assert argv == BASE + extra
    args = build_parser().parse_args(argv[1:])  # mcast-receive itself accepts every word
    assert args.session == (config.session or None)
    assert args.state_dir == JOURNAL and args.report == REPORT


def test_an_ipv6_session_is_said_outright() -> None:
    # The link may have an IPv4 link-local address too, which mcast-receive would prefer.
    argv = receiver_argv(StickConfig(session="lab"), STICK, "/dev/nvme0n1", "enp0s31f6",
                         JOURNAL, REPORT, ipv6=True)
    assert argv == [*BASE, "--ipv6", "--session", "lab"]
    args = build_parser().parse_args(argv[1:])
    assert args.ipv6 and args.session == "lab"


def fake_receiver(tmp_path: Path, lines: list[str | dict[str, Any]], exit_code: int) -> list[str]:
    """A child program printing ``lines`` on stdout (dicts as JSON, one a line, flushed as
    the real one does), noise on stderr, then exiting with ``exit_code``."""
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    script = tmp_path / "mcast-receive.py"
    script.write_text(
        "import sys\n"
        f"for line in {text!r}:\n"
        "    print(line, flush=True)\n"
        "print('Traceback (most recent call last): on stderr, never read', file=sys.stderr)\n"
        f"sys.exit({exit_code})\n")
    return [sys.executable, str(script)]


def follow(argv: list[str], errors: Path) -> tuple[Received, list[dict[str, Any]],
                                                   list[tuple[str, str]]]:
    progress: list[dict[str, Any]] = []
    messages: list[tuple[str, str]] = []
    received = run_receiver(argv, progress.append, lambda level, text:
                            messages.append((level, text)), errors)
    return received, progress, messages


FINAL_OK = {"event": "final", "ok": True, "seconds": 81.5, "image_size": 1 << 30,
            "message": "the 1.0 GiB image is written and verified.", "details": {},
            "receivers": []}


def test_a_verified_transfer_reports_progress_messages_and_the_final_sentence(
        tmp_path: Path) -> None:
    lines: list[str | dict[str, Any]] = [
        {"event": "message", "level": "info", "text": "joined session win11.img"},
        {"event": "progress", "state": "receiving", "percent": 10.0, "rate_bps": 9e8},
        "not JSON at all",
        "",
        "42",
        {"event": "message", "level": "warning", "text": "loss is 3 %"},
        {"event": "progress", "state": "verifying", "percent": 100.0, "rate_bps": 0},
        {"event": "something-new", "x": 1},
        {"event": "message", "text": "no level"},
        FINAL_OK,
    ]
    received, progress, messages = follow(fake_receiver(tmp_path, lines, 0), tmp_path / "stderr")
    assert received == Received(True, "the 1.0 GiB image is written and verified.", 81.5,
                                FINAL_OK)
    assert [(p["state"], p["percent"]) for p in progress] == [("receiving", 10.0),
                                                              ("verifying", 100.0)]
    assert messages == [("info", "joined session win11.img"), ("info", "not JSON at all"),
                        ("info", "42"), ("warning", "loss is 3 %"), ("info", "no level")]


def test_a_failed_transfer_is_not_ok_with_its_sentence(tmp_path: Path) -> None:
    final = {"event": "final", "ok": False, "seconds": 12.0,
             "message": "the disk (128.0 GiB) is smaller than the image (256.0 GiB)."}
    received, _, _ = follow(fake_receiver(tmp_path, [final], 1), tmp_path / "stderr")
    assert received == Received(False, final["message"], 12.0, final)  # type: ignore[arg-type]


def test_a_final_ok_with_a_failing_exit_code_is_not_ok(tmp_path: Path) -> None:
    received, _, _ = follow(fake_receiver(tmp_path, [FINAL_OK], 3), tmp_path / "stderr")
    assert not received.ok
    assert received.message == FINAL_OK["message"]


def test_a_final_report_without_seconds_or_message_still_gives_a_result(
        tmp_path: Path) -> None:
    received, _, _ = follow(fake_receiver(tmp_path, [{"event": "final", "ok": True,
                                                      "seconds": None}], 0),
                            tmp_path / "stderr")
    assert received == Received(True, "", 0.0, {"event": "final", "ok": True, "seconds": None})


@pytest.mark.parametrize("code", [0, 2, 130])
def test_a_receiver_that_stops_without_a_final_report_failed(tmp_path: Path,
                                                             code: int) -> None:
    lines: list[str | dict[str, Any]] = [
        {"event": "progress", "state": "receiving", "percent": 40.0, "rate_bps": 1e8}]
    received, progress, _ = follow(fake_receiver(tmp_path, lines, code), tmp_path / "stderr")
    assert received == Received(False, f"mcast-receive stopped (exit {code}) without a report.",
                                0.0, {})
    assert len(progress) == 1


def test_a_crashed_receivers_traceback_reaches_the_log(tmp_path: Path) -> None:
    script = tmp_path / "mcast-receive.py"
    script.write_text("raise OSError(101, 'Network is unreachable')\n")
    received, _, messages = follow([sys.executable, str(script)], tmp_path / "stderr")
    assert not received.ok
    assert messages[-1] == ("error", "OSError: [Errno 101] Network is unreachable")


def test_bytes_that_are_not_utf8_are_noise_not_a_crash(tmp_path: Path) -> None:
    script = tmp_path / "mcast-receive.py"
    script.write_text("import json, sys\n"
                      "sys.stdout.buffer.write(b'\\xff\\xfe partclone says hi\\n')\n"
                      f"print(json.dumps({FINAL_OK!r}))\n")
    received, _, messages = follow([sys.executable, str(script)], tmp_path / "stderr")
    assert received.ok
    assert messages == [("info", "\ufffd\ufffd partclone says hi")]
