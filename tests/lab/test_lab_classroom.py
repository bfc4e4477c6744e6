"""The classroom runner in a real lab: with stand-in programs, then with the real daemons."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from pyroute2 import netns

from lab import classroom as lab_classroom
from lab.classroom import format_table, run_classroom_lab
from lab.net import lab_available
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]

# Copies the image to its target (flipping a bit for r1) and reports success either way.
FAKE_RECEIVER = """
import json, sys
image, target = sys.argv[1:3]
print(json.dumps({"event": "progress", "percent": 0.0}))
data = bytearray(open(image, "rb").read())
if target.endswith("r1.img"):
    data[-1] ^= 1
open(target, "wb").write(data)
print(json.dumps({"event": "final", "role": "receiver", "ok": True, "message": "copied",
                  "seconds": 0.5, "image_size": len(data), "details": {}, "receivers": []}))
"""

FAKE_SENDER = """
import json, sys, time
time.sleep(float(sys.argv[2]))
print(json.dumps({"event": "final", "role": "sender", "ok": True, "seconds": 1.0,
                  "message": f"waited for {sys.argv[1]}", "image_size": 0, "details": {},
                  "receivers": []}))
"""


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.img"
    write_image(path, 1 << 20, seed=3)
    return path


def fake_programs(monkeypatch: pytest.MonkeyPatch, image: Path, sender_seconds: float) -> None:
    monkeypatch.setattr(lab_classroom, "receiver_argv", lambda target: [
        sys.executable, "-c", FAKE_RECEIVER, str(image), str(target)])
    monkeypatch.setattr(lab_classroom, "sender_argv", lambda path, n, rate: [
        sys.executable, "-c", FAKE_SENDER, str(n), str(sender_seconds)])


# Counts its runs in <target>.runs, sleeps as many seconds as its last extra argument says (none:
# 0), then copies the image and says which run it was. Killed asleep, it leaves no final report.
SLOW_RECEIVER = """
import json, os, sys, time
image, target = sys.argv[1:3]
seconds = float(sys.argv[-1]) if len(sys.argv) > 3 else 0.0
runs = target + ".runs"
run = (int(open(runs).read()) if os.path.exists(runs) else 0) + 1
open(runs, "w").write(str(run))
print(json.dumps({"event": "progress", "percent": 0.0}), flush=True)
time.sleep(seconds)
open(target, "wb").write(open(image, "rb").read())
print(json.dumps({"event": "final", "role": "receiver", "ok": True, "message": f"run {run}",
                  "seconds": 0.5, "image_size": 0, "details": {}, "receivers": []}))
"""

# Counts its runs in sender.runs (in the runner's work directory), sleeps argv[1] s, then says
# which run it was and with which extra arguments.
SLOW_SENDER = """
import json, os, sys, time
run = (int(open("sender.runs").read()) if os.path.exists("sender.runs") else 0) + 1
open("sender.runs", "w").write(str(run))
time.sleep(float(sys.argv[1]))
print(json.dumps({"event": "final", "role": "sender", "ok": True, "seconds": 1.0,
                  "message": " ".join([f"run {run}", *sys.argv[2:]]), "image_size": 0,
                  "details": {}, "receivers": []}))
"""


def slow_programs(
    monkeypatch: pytest.MonkeyPatch, image: Path, sender_seconds: float
) -> list[float | None]:
    """The fakes above; returns the rates the runner passes to sender_argv."""
    rates: list[float | None] = []

    def sender(path: Path, n: int, rate: float | None) -> list[str]:
        rates.append(rate)
        return [sys.executable, "-c", SLOW_SENDER, str(sender_seconds)]

    monkeypatch.setattr(lab_classroom, "receiver_argv", lambda target: [
        sys.executable, "-c", SLOW_RECEIVER, str(image), str(target)])
    monkeypatch.setattr(lab_classroom, "sender_argv", sender)
    return rates


def mclab_namespaces() -> set[str]:
    return {name for name in netns.listnetns() if name.startswith("mclab")}


def namespaces_left(before: set[str]) -> set[str]:
    """Lab namespaces that were not there ``before``, after up to 3 s for their removal to
    show (a busy machine lists a removed name for a moment)."""
    deadline = time.monotonic() + 3.0
    while (left := mclab_namespaces() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_runner_checks_every_copy_itself(monkeypatch: pytest.MonkeyPatch, image: Path) -> None:
    fake_programs(monkeypatch, image, sender_seconds=0.2)
    before = mclab_namespaces()
    result = run_classroom_lab(image, 3, loss_pct=1.0, late={2: 0.3}, timeout=20)
    assert [(r.name, r.ok, r.sha_match) for r in result.receivers] == [
        ("r0", True, True), ("r1", False, False), ("r2", True, True)]
    assert result.receivers[0].mb_per_s == pytest.approx((1 << 20) / 0.5 / 1e6)
    assert result.sender is not None and result.sender.message == "waited for 2"  # not late r2
    assert not result.ok
    assert "DIFFERS" in format_table(result)
    assert not namespaces_left(before)


def test_runner_stops_everyone_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    fake_programs(monkeypatch, image, sender_seconds=30)
    result = run_classroom_lab(image, 2, late={1: 60}, timeout=1.5)
    assert result.wall_seconds < 10
    assert result.receivers[0].ok
    assert result.receivers[1].message == "never started: the run timed out first"
    assert result.sender is not None
    assert result.sender.message == "stopped at the timeout, before its final report"
    assert not result.ok


def test_real_daemons_image_a_lossy_classroom(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    write_image(image, 4 << 20, seed=5, kind="random")
    # 20 Mbit/s stretch the transfer to ~2 s, so r1 joins a running session.
    result = run_classroom_lab(image, 2, rate_mbit=20, loss_pct=2.0, late={1: 0.3}, timeout=60)
    assert result.ok, format_table(result)


def test_sender_gone_stops_a_receiver_that_came_too_late(
    monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    fake_programs(monkeypatch, image, sender_seconds=0)
    monkeypatch.setattr(lab_classroom, "GRACE", 0.5)
    monkeypatch.setattr(lab_classroom, "receiver_argv", lambda target: ["sleep", "30"])
    result = run_classroom_lab(image, 1, timeout=20)
    assert result.wall_seconds < 10
    assert result.receivers[0].message == (
        "stopped 0.5 s after the sender finished, before its final report")


def test_a_receiver_killed_and_restarted_reports_its_last_run(
    monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    slow_programs(monkeypatch, image, sender_seconds=0.2)
    before = mclab_namespaces()
    result = run_classroom_lab(image, 2, timeout=20, receiver_args_for={1: ["1.5"]},
                               kill={1: (0.5, 1.0)})
    assert result.ok, format_table(result)
    assert [(r.name, r.message, r.sha_match) for r in result.receivers] == [
        ("r0", "run 1", True), ("r1", "run 2", True)]
    assert result.events == ["r1 killed at 0.5 s", "r1 restarted at 1.0 s"]
    assert 2.5 <= result.wall_seconds < 10  # waited for the restart, not GRACE
    assert format_table(result).splitlines()[-3:] == [
        "events:", "  r1 killed at 0.5 s", "  r1 restarted at 1.0 s"]
    assert not namespaces_left(before)


def test_a_receiver_killed_for_good_is_done_and_failed(
    monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    slow_programs(monkeypatch, image, sender_seconds=0.5)
    result = run_classroom_lab(image, 2, timeout=20, receiver_args=["30"],
                               receiver_args_for={1: ["0"]}, kill={0: (0.3, None)})
    assert result.wall_seconds < 5  # r0 killed, r1 and the sender done: no GRACE, no timeout
    r0, r1 = result.receivers
    assert (r0.ok, r0.message, r0.returncode) == (False, "killed at 0.3 s", -signal.SIGKILL)
    assert (r1.ok, r1.message) == (True, "run 1")  # its own "0" after everyone's "30"
    assert result.events == ["r0 killed at 0.3 s"]
    assert not result.ok


def test_the_sender_killed_and_restarted(monkeypatch: pytest.MonkeyPatch, image: Path) -> None:
    slow_programs(monkeypatch, image, sender_seconds=0.5)
    result = run_classroom_lab(image, 1, timeout=20, sender_args=["--rate", "7M"],
                               kill_sender=(0.3, 0.8))
    assert result.sender is not None
    assert (result.sender.ok, result.sender.message) == (True, "run 2 --rate 7M")
    assert result.events == ["sender killed at 0.3 s", "sender restarted at 0.8 s"]
    assert 1.3 <= result.wall_seconds < 10
    assert result.ok


def test_the_sender_killed_for_good_leaves_the_receivers_grace(
    monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    slow_programs(monkeypatch, image, sender_seconds=30)
    monkeypatch.setattr(lab_classroom, "GRACE", 0.5)
    result = run_classroom_lab(image, 1, timeout=20, receiver_args=["30"],
                               kill_sender=(0.3, None))
    assert result.wall_seconds < 10
    assert result.sender is not None
    assert (result.sender.ok, result.sender.message) == (False, "killed at 0.3 s")
    assert result.receivers[0].message == (
        "stopped 0.5 s after the sender finished, before its final report")


def test_kills_that_cannot_happen(monkeypatch: pytest.MonkeyPatch, image: Path) -> None:
    slow_programs(monkeypatch, image, sender_seconds=0.2)
    # r0 exits at once, r1 is killed but the run times out before its restart, r2 is late.
    result = run_classroom_lab(image, 3, timeout=4, late={2: 1.0},
                               receiver_args_for={1: ["30"], 2: ["30"]},
                               kill={0: (1.5, 1.6), 1: (0.3, 10.0), 2: (0.5, 0.6)})
    assert result.wall_seconds < 10
    assert [r.message for r in result.receivers] == [
        "run 1",
        "killed at 0.3 s, not restarted: the run ended at the timeout",
        "stopped at the timeout, before its final report",
    ]
    assert sorted(result.events) == sorted([
        "r0 exited before its kill at 1.5 s", "r1 killed at 0.3 s",
        "r2 not started yet at 0.5 s: not killed"])


def test_rates_per_receiver_give_the_sender_no_rate(
    monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    rates = slow_programs(monkeypatch, image, sender_seconds=0.1)
    result = run_classroom_lab(image, 3, rate_mbit=[100, None, 10], timeout=20)
    assert result.ok, format_table(result)
    assert rates == [None]
    assert result.rate_mbit == [100, None, 10]
    assert "links 100/line/10 Mbit/s" in format_table(result).splitlines()[0]
    result = run_classroom_lab(image, 1, rate_mbit=[10], timeout=20)
    assert rates == [None, None]
    assert "links 10 Mbit/s" in format_table(result).splitlines()[0]
    result = run_classroom_lab(image, 1, rate_mbit=10, timeout=20)
    assert rates == [None, None, 10]


def test_bad_kills(image: Path) -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        run_classroom_lab(image, 2, kill={2: (1.0, None)})
    with pytest.raises(ValueError, match="before its kill"):
        run_classroom_lab(image, 2, kill_sender=(2.0, 1.0))
    with pytest.raises(ValueError, match="0 s or later"):
        run_classroom_lab(image, 2, kill={0: (-1.0, None)})
    with pytest.raises(ValueError, match="receiver_args_for names a receiver outside"):
        run_classroom_lab(image, 2, receiver_args_for={5: ["x"]})
