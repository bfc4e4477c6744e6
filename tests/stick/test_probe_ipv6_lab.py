"""The agent's probe in the kernel lab, against a real `mcastd serve`: on an IPv6-only LAN it
hears the session on the IPv6 discovery group (and its size there); on a LAN with IPv4 too it
tells which family the session was started on."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.net import IFNAME, Lab, lab_available

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]
REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20
PROBE = f"""
import json, sys
from pathlib import Path
from stick.agent.probe import announced_on_ipv6, needed_size
from stick.config import StickConfig
config, stick = StickConfig(session="room-12"), Path(sys.argv[1])
ipv6 = announced_on_ipv6(config, stick, "{IFNAME}", 20)
size = needed_size(config, stick, "{IFNAME}", 20)  # on both families
print(json.dumps([ipv6, size]))
"""


def heard(tmp_path: Path, ipv6_only: bool, serve_args: list[str]) -> list[object]:
    image = tmp_path / "room.img"
    image.write_bytes(random.Random(7).randbytes(3 * MIB))
    with Lab(1, ipv6_only=ipv6_only) as lab:
        lab.popen(lab.sender, [sys.executable, "-m", "mcastd", "serve", str(image),
                               "--interface", IFNAME, "--name", "room-12", "--key",
                               str(tmp_path / "sender.key"), "--max-wait", "60", "--quiet",
                               *serve_args],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        time.sleep(1)
        result = lab.run(lab.receivers[0], [sys.executable, "-c", PROBE, str(tmp_path)],
                         capture_output=True, cwd=REPO, timeout=60, check=True)
    answer: list[object] = json.loads(result.stdout)
    return answer


def test_an_ipv6_only_lan_is_heard_on_the_ipv6_discovery_group(tmp_path: Path) -> None:
    assert heard(tmp_path, True, []) == [True, 3 * MIB]


@pytest.mark.parametrize(("serve_args", "ipv6"), [([], False), (["--ipv6"], True)],
                         ids=["ipv4", "ipv6"])
def test_where_both_families_work_the_sessions_own_is_heard(
        tmp_path: Path, serve_args: list[str], ipv6: bool) -> None:
    assert heard(tmp_path, False, serve_args) == [ipv6, 3 * MIB]
