"""The classroom runner in a real lab: with stand-in programs, then with the real daemons."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pyroute2 import netns

from netsim import lab_classroom
from netsim.images import write_image
from netsim.lab import lab_available
from netsim.lab_classroom import format_table, run_classroom_lab

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


def mclab_namespaces() -> set[str]:
    return {name for name in netns.listnetns() if name.startswith("mclab")}


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
    assert mclab_namespaces() == before


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
