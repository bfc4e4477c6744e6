"""`mcastd doctor` and `mcast-receive --doctor`, the real programs in the kernel lab: each
fault made on purpose (no querier, a firewall on the control ports, an MTU mismatch, a switch
that drops big packets, two sessions on one group), and the doctor names it; in a clean lab
every check says ok."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab.net import IFNAME, Lab, LabHost, lab_available

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]

REPO = Path(__file__).resolve().parents[2]
Finding = dict[str, Any]


def _env(tmp_path: Path) -> dict[str, str]:
    # The sender's key stays in the test's directory, never in the admin's own key file.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "MCASTD_KEY": str(tmp_path / "sender.key"),
            "PYTHONPATH": str(REPO)}


def start_responder(lab: Lab, tmp_path: Path, duration: float = 20,
                    rates: str = "10M,100M", ipv6: bool = False) -> subprocess.Popen[bytes]:
    """``rates``: two low ones unless the test is about rates, so that a busy test machine
    (a laptop process starved at 500 Mbit/s) does not add a loss finding of its own."""
    proc = lab.popen(lab.sender,
                     [sys.executable, "-m", "mcastd", "doctor", "--interface", IFNAME,
                      "--duration", str(duration), "--rates", rates, "--json",
                      *(["--ipv6"] if ipv6 else [])],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path),
                     cwd=REPO)
    time.sleep(0.5)  # its first announcement is out before the laptop listens
    return proc


def laptop_doctor(lab: Lab, tmp_path: Path, host: LabHost | None = None,
                  *args: str) -> tuple[int, list[Finding]]:
    result = lab.run(host or lab.receivers[0],
                     [sys.executable, "-m", "receiver", "--doctor", "--interface", IFNAME,
                      "--json", *args],
                     capture_output=True, env=_env(tmp_path), cwd=REPO, timeout=90)
    assert not result.stderr, result.stderr.decode()
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, list[Finding]]:
    out, err = proc.communicate(timeout=90)
    assert not err, err.decode()
    return proc.returncode, [json.loads(line) for line in out.splitlines()]


def of(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f["check"] == check]


def problems(findings: list[Finding]) -> list[str]:
    return [f["finding"] for f in findings if not f["ok"]]


def test_a_clean_lab_with_a_querier_is_all_ok(tmp_path: Path) -> None:
    with Lab(1, querier=True) as lab:
        responder = start_responder(lab, tmp_path, duration=12, rates="10M,100M,500M")
        code, findings = laptop_doctor(lab, tmp_path)
        assert code == 0 and not problems(findings), findings
        assert {f["check"] for f in findings} == {"querier", "sessions", "responder",
                                                  "control-port", "rtt", "loss", "mtu"}
        assert all(f["finding"].startswith("ok: ") for f in findings)
        assert len(of(findings, "loss")) == 3  # 10, 100 and 500 Mbit/s
        admin_code, admin = finish(responder)
    assert admin_code == 0, admin
    # The admin sees the laptop's findings as they come, each naming the laptop.
    laptop = [f for f in admin if f.get("laptop") == lab.receivers[0].ip]
    assert [f["finding"] for f in laptop] == [f["finding"] for f in findings]
    assert {f["check"] for f in admin if "laptop" not in f} == {"querier", "mtu", "sessions",
                                                                 "responder"}


def test_a_snooping_switch_without_a_querier_is_named_on_both_sides(tmp_path: Path) -> None:
    with Lab(1) as lab:  # the bridge snoops IGMP, and nothing queries
        responder = start_responder(lab, tmp_path, duration=12)
        code, findings = laptop_doctor(lab, tmp_path)
        admin_code, admin = finish(responder)
    assert code == 1 and admin_code == 1
    expected = ("no IGMP querier answered on lab0 within 3 s: a switch that snoops IGMP will "
                "cut laptops off after ~4 min; enable an IGMP querier on the switch or router")
    assert problems(findings) == [expected]
    assert [f["finding"] for f in admin if not f["ok"] and "laptop" not in f] == [expected]


@pytest.mark.parametrize("ipv6_only", [False, True], ids=["ipv4", "ipv6-only"])
def test_a_firewall_on_the_control_ports_is_named(tmp_path: Path, ipv6_only: bool) -> None:
    with Lab(1, querier=True, ipv6_only=ipv6_only) as lab:
        script = ("table inet doctorfw {\n chain input {\n"
                  "  type filter hook input priority filter; policy accept;\n"
                  "  udp dport 9772-9871 drop\n }\n}\n")
        lab.run(lab.sender, ["nft", "-f", "-"], input=script.encode(), check=True,
                capture_output=True, timeout=10)
        responder = start_responder(lab, tmp_path, duration=10)
        code, findings = laptop_doctor(lab, tmp_path)
        finish(responder)
    # A link-local sender is named in the laptop's own zone.
    sender = f"{lab.sender.ip}%{IFNAME}" if ipv6_only else lab.sender.ip
    assert code == 1
    assert problems(findings) == [
        f"udp port 9772 of the sender {sender} gets no answer while its multicast "
        "arrives: a firewall on the sender drops it; open udp 9772-9871"]


@pytest.mark.parametrize("ipv6_only", [False, True], ids=["ipv4", "ipv6-only"])
def test_a_laptop_link_smaller_than_the_senders_is_named(tmp_path: Path,
                                                         ipv6_only: bool) -> None:
    with Lab(1, querier=True, mtu=9000, ipv6_only=ipv6_only) as lab:
        laptop = lab.receivers[0]
        lab.run(laptop, ["ip", "link", "set", IFNAME, "mtu", "1500"], check=True, timeout=10)
        responder = start_responder(lab, tmp_path, duration=12)
        code, findings = laptop_doctor(lab, tmp_path)
        finish(responder)
    assert code == 1
    assert problems(findings) == [
        "the sender's link takes 9000-byte packets and this laptop's 1500: serve with --mtu "
        "1500, or give every link the same MTU"]


def test_a_switch_that_drops_big_packets_is_named(tmp_path: Path) -> None:
    with Lab(1, querier=True, mtu=9000) as lab:
        # The switch's port to the laptop takes 1500 bytes; both hosts' links take 9000.
        subprocess.run(["ip", "-n", lab.bridge_netns, "link", "set", "p-r0", "mtu", "1500"],
                       check=True, timeout=10)
        responder = start_responder(lab, tmp_path, duration=12)
        code, findings = laptop_doctor(lab, tmp_path)
        finish(responder)
    assert code == 1
    assert problems(findings) == [
        "8972-byte probes never arrived while 1472-byte ones did, though both links take "
        "9000-byte packets: the switch drops big packets; enable jumbo frames on it, or serve "
        "with --mtu 1500"]


def test_two_sessions_on_one_group_are_named(tmp_path: Path) -> None:
    image = tmp_path / "small.img"
    image.write_bytes(os.urandom(1 << 20))
    with Lab(1, extra_hosts=2, querier=True) as lab:
        for host, name in zip(lab.extras, ("a", "b"), strict=True):
            # Both on one group (by --group), announcing while they wait for a laptop that
            # never joins.
            lab.popen(host, [sys.executable, "-m", "mcastd", "serve", str(image), "--interface",
                             IFNAME, "--group", "239.255.77.2", "--name", name,
                             "--all-blocks", "--key",
                             str(tmp_path / f"{name}.key")],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(tmp_path),
                      cwd=REPO)
        time.sleep(3)  # hashed and announcing
        responder = start_responder(lab, tmp_path, duration=12)
        code, findings = laptop_doctor(lab, tmp_path)
        admin_code, admin = finish(responder)
    a, b = (host.ip for host in lab.extras)
    expected = (f"two sessions send to group 239.255.77.2:9771: 'a' from {a} and 'b' from {b}; "
                "their laptops receive both streams: restart one without --group so each picks "
                "its own")
    assert code == 1
    assert problems(findings) == [expected]
    assert admin_code == 1 and expected in problems(admin)


def test_without_a_responder_the_laptop_says_where_to_start_one(tmp_path: Path) -> None:
    with Lab(1, querier=True) as lab:
        code, findings = laptop_doctor(lab, tmp_path, None, "--timeout", "2")
    assert code == 1
    assert problems(findings) == [
        "no mcastd doctor answered on the discovery group within 2 s: start `mcastd doctor` "
        "on the sender machine (or the switch does not carry multicast from it)"]


def test_a_slow_laptop_link_shows_loss_above_its_speed(tmp_path: Path) -> None:
    with Lab(1, querier=True, rate_mbit=[50]) as lab:
        responder = start_responder(lab, tmp_path, duration=12, rates="10M,100M,500M")
        code, findings = laptop_doctor(lab, tmp_path)
        finish(responder)
    assert code == 1
    ten, hundred, five_hundred = of(findings, "loss")
    assert ten["ok"] and not hundred["ok"] and not five_hundred["ok"], findings
    assert hundred["finding"].startswith("at 100 Mbit/s ")
    assert hundred["finding"].endswith("the path carries less than 100 Mbit/s; serve with "
                                       "--rate 10M (it adapts, but starts there)")
    assert [f["check"] for f in findings if not f["ok"]] == ["loss", "loss"]


def test_two_laptops_at_once_each_get_their_bursts_and_the_admin_sees_both(
        tmp_path: Path) -> None:
    with Lab(2, querier=True) as lab:
        responder = start_responder(lab, tmp_path, duration=14)
        laptops = [lab.popen(host, [sys.executable, "-m", "receiver", "--doctor", "--interface",
                                    IFNAME, "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path),
                             cwd=REPO) for host in lab.receivers]
        results = [finish(proc) for proc in laptops]
        admin_code, admin = finish(responder)
    for code, findings in results:
        assert code == 0 and not problems(findings), findings
        assert len(of(findings, "loss")) == 2
    assert admin_code == 0
    assert {f["laptop"] for f in admin if "laptop" in f} == {h.ip for h in lab.receivers}
