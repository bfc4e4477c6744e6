"""The probe hears how large a disk the session needs, with the stick's own session name and
keys, from a real `mcastd serve` on loopback (multicast on ``lo`` only), and sends nothing."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stick.agent.probe import hear_session, needed_size
from stick.config import TRUST_NAME, StickConfig

MIB = 1 << 20


@pytest.fixture
def sender(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    image = tmp_path / "room.img"
    image.write_bytes(random.Random(7).randbytes(3 * MIB))
    port = random.Random().randrange(20000, 30000)
    argv = [sys.executable, "-m", "mcastd", "serve", str(image), "--interface", "lo",
            "--discovery-port", str(port), "--port", str(port + 1), "--name", "room-12",
            "--key", str(tmp_path / "sender.key"), "--max-wait", "60", "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port, tmp_path / "sender.key.pub"
    finally:
        proc.kill()
        proc.wait()


def test_the_announced_sessions_size_is_heard(sender: tuple[int, Path],
                                              tmp_path: Path) -> None:
    port, _ = sender
    config = StickConfig(session="room-12")
    assert needed_size(config, tmp_path, "lo", 20, [("239.255.77.1", port)]) == 3 * MIB


def test_another_session_name_is_not_heard(sender: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = sender
    config = StickConfig(session="room-13")
    assert needed_size(config, tmp_path, "lo", 3, [("239.255.77.1", port)]) is None


def test_a_session_signed_by_another_key_is_told_as_mcast_receive_tells_it(
        sender: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = sender
    stick = tmp_path / "stick"
    stick.mkdir()
    other = stick / "other.key"
    subprocess.run([sys.executable, "-m", "mcastd", "keygen", "--key", str(other)], check=True,
                   capture_output=True)
    (stick / TRUST_NAME).write_bytes((stick / "other.key.pub").read_bytes())
    told: list[str] = []
    heard = hear_session(StickConfig(trust=True), stick, "lo", 4, [("239.255.77.1", port)],
                         told.append)
    assert heard is None
    assert len(told) == 1 and told[0].startswith("ignored session 'room-12' from 127.0.0.1: ")
