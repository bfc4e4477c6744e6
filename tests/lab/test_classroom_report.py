"""The classroom runner's parsing, verdicts and table, from fake program output (no lab)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from lab.classroom import (
    LabResult,
    format_table,
    host_result,
    parse_final,
    sender_argv,
    sha256_prefix,
)
from lab.cli import parse_late
from lab.net import LabHost

R0 = LabHost("r0", "ns-r0", "lab0", "10.77.0.2")
SIZE = 8_000_000


def final(ok: bool = True, seconds: float = 2.0, message: str = "image verified") -> str:
    return json.dumps({"event": "final", "role": "receiver", "ok": ok, "message": message,
                       "seconds": seconds, "image_size": SIZE, "details": {}, "receivers": []})


def output(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_parse_final_takes_the_last_final_line() -> None:
    progress = json.dumps({"event": "progress", "percent": 50.0})
    assert parse_final(output(progress, final(seconds=3.0), "")) == json.loads(final(seconds=3.0))
    assert parse_final(output(progress, "Traceback (most recent call last):", "[1, 2]")) is None
    assert parse_final("") is None


def test_a_verified_receiver() -> None:
    r = host_result(R0, output(final()), "", 0, SIZE, sha_match=True)
    assert (r.ok, r.seconds, r.mb_per_s, r.message, r.stderr_tail) == (
        True, 2.0, 4.0, "image verified", "")


def test_a_receiver_whose_copy_differs_fails_whatever_it_says() -> None:
    r = host_result(R0, output(final()), "warn\n", 0, SIZE, sha_match=False)
    assert not r.ok
    assert r.message == "its copy differs from the image, yet it said: image verified"
    assert r.stderr_tail == "warn"


@pytest.mark.parametrize(("returncode", "stopped", "message"), [
    (None, "", "never started: the run timed out first"),
    (-15, "at the timeout", "stopped at the timeout, before its final report"),
    (1, "", "no final report: exit code 1"),
])
def test_no_final_report(returncode: int | None, stopped: str, message: str) -> None:
    stderr = "".join(f"line {i}\n" for i in range(30))
    r = host_result(R0, "", stderr, returncode, SIZE, sha_match=None, stopped=stopped)
    assert (r.ok, r.seconds, r.mb_per_s, r.message) == (False, None, None, message)
    assert r.stderr_tail.splitlines() == [f"line {i}" for i in range(20, 30)]


def test_table() -> None:
    sender = LabHost("sender", "ns-s", "lab0", "10.77.0.1")
    r1 = LabHost("r1", "ns-r1", "lab0", "10.77.0.3")
    result = LabResult(
        image="disk.img", image_size=SIZE, rate_mbit=100.0, loss_pct=[2.0, 2.0], late={1: 5.0},
        wall_seconds=12.34,
        receivers=[host_result(R0, output(final(seconds=1.6)), "", 0, SIZE, True),
                   host_result(r1, "", "Traceback\nBoom\n", 1, SIZE, False)],
        sender=host_result(sender, output(final(seconds=10.0, message="all done")), "", 0, SIZE,
                           None),
    )
    assert not result.ok
    lines = format_table(result).splitlines()
    assert lines[0] == ("image disk.img (8.0 MB), loss 2 %, 100 Mbit/s, r1 late by 5 s: "
                        "1/2 receivers verified in 12.3 s")
    assert lines[1].split() == ["host", "address", "result", "seconds", "MB/s", "sha256",
                                "message"]
    assert lines[2].split() == ["r0", "10.77.0.2", "ok", "1.60", "5.00", "match", "image",
                                "verified"]
    assert lines[3].split()[:6] == ["r1", "10.77.0.3", "FAILED", "-", "-", "DIFFERS"]
    assert lines[4].split()[:6] == ["sender", "10.77.0.1", "ok", "10.00", "0.80", "-"]
    # aligned: text columns start, number columns end, at one offset on every row
    cells = [[m.span() for m in re.finditer(r"\S+", line)] for line in lines[1:5]]
    assert len({row[1][0] for row in cells}) == 1
    assert len({row[4][1] for row in cells}) == 1
    assert lines[5:] == ["--- r1 stderr (last lines) ---", "Traceback", "Boom"]


def test_no_receivers_is_no_success() -> None:
    result = LabResult(image="x", image_size=1, rate_mbit=None, loss_pct=[], late={},
                       wall_seconds=0.0, receivers=[])
    assert not result.ok


def test_sender_rate_flag() -> None:
    assert sender_argv(Path("/i.img"), 3, 100.0)[-2:] == ["--rate", "100M"]
    assert "--rate" not in sender_argv(Path("/i.img"), 3, None)
    assert sender_argv(Path("/i.img"), 3, None)[-5:-1] == ["--min-receivers", "3", "--max-wait",
                                                           "30"]


def test_sha256_prefix(tmp_path: Path) -> None:
    (tmp_path / "disk").write_bytes(b"image" + b"rest of the disk")
    (tmp_path / "image").write_bytes(b"image")
    assert sha256_prefix(tmp_path / "disk", 5) == sha256_prefix(tmp_path / "image", 5)
    assert sha256_prefix(tmp_path / "image", 6) is None
    assert sha256_prefix(tmp_path / "missing", 5) is None


def test_parse_late() -> None:
    assert parse_late("2:5") == (2, 5.0)
    with pytest.raises(argparse.ArgumentTypeError, match="INDEX:SECONDS"):
        parse_late("2")
