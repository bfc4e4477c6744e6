"""The doctor on an IPv6-only LAN (no IPv4 address anywhere, link-local addresses only), the
real programs in the kernel lab: both find IPv6 by themselves, the querier check asks MLD, and
the faults of tests/lab/test_doctor_lab.py are named the same way (the firewall and the MTU
mismatch are tested there, on both families)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.net import IFNAME, Lab, lab_available
from tests.lab.test_doctor_lab import (
    REPO,
    _env,
    finish,
    laptop_doctor,
    of,
    problems,
    start_responder,
)

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]


def test_a_clean_ipv6_lab_with_a_querier_is_all_ok(tmp_path: Path) -> None:
    with Lab(1, querier=True, ipv6_only=True) as lab:
        responder = start_responder(lab, tmp_path, duration=12, rates="10M,100M,500M")
        code, findings = laptop_doctor(lab, tmp_path)
        admin_code, admin = finish(responder)
    assert code == 0 and not problems(findings), findings
    assert {f["check"] for f in findings} == {"querier", "sessions", "responder",
                                              "control-port", "rtt", "loss", "mtu"}
    assert of(findings, "querier")[0]["finding"].startswith("ok: an MLD querier answers on lab0")
    assert len(of(findings, "loss")) == 3
    # The sender is reached at its link-local address, in the laptop's own zone.
    sender = f"{lab.sender.ip}%{IFNAME}"
    assert of(findings, "control-port")[0]["finding"] == (
        f"ok: udp port 9772 of the sender {sender} answers (5 of 5 pings)")
    assert admin_code == 0, admin
    laptop = [f for f in admin if f.get("laptop") == lab.receivers[0].ip]
    assert [f["finding"] for f in laptop] == [f["finding"] for f in findings]
    assert {f["check"] for f in admin if "laptop" not in f} == {"querier", "mtu", "sessions",
                                                                 "responder"}


def test_a_snooping_switch_without_an_mld_querier_is_named(tmp_path: Path) -> None:
    with Lab(1, ipv6_only=True) as lab:
        responder = start_responder(lab, tmp_path, duration=12)
        code, findings = laptop_doctor(lab, tmp_path)
        admin_code, admin = finish(responder)
    assert code == 1 and admin_code == 1
    expected = ("no MLD querier answered on lab0 within 3 s: a switch that snoops MLD will "
                "cut laptops off after ~4 min; enable an MLD querier on the switch or router")
    assert problems(findings) == [expected]
    assert [f["finding"] for f in admin if not f["ok"] and "laptop" not in f] == [expected]


def test_a_switch_that_drops_big_packets_is_named_with_ipv6_sizes(tmp_path: Path) -> None:
    with Lab(1, querier=True, mtu=9000, ipv6_only=True) as lab:
        subprocess.run(["ip", "-n", lab.bridge_netns, "link", "set", "p-r0", "mtu", "1500"],
                       check=True, timeout=10)
        responder = start_responder(lab, tmp_path, duration=12)
        code, findings = laptop_doctor(lab, tmp_path)
        finish(responder)
    assert code == 1
    # 48 bytes of IPv6 and UDP headers: 8952 and 1452 bytes of probe in 9000 and 1500.
    assert problems(findings) == [
        "8952-byte probes never arrived while 1452-byte ones did, though both links take "
        "9000-byte packets: the switch drops big packets; enable jumbo frames on it, or serve "
        "with --mtu 1500"]


def test_ipv6_can_be_asked_for_where_ipv4_is_configured_too(tmp_path: Path) -> None:
    with Lab(1, querier=True) as lab:
        responder = start_responder(lab, tmp_path, duration=10, ipv6=True)
        code, findings = laptop_doctor(lab, tmp_path, None, "--ipv6")
        finish(responder)
    assert code == 0 and not problems(findings), findings
    assert of(findings, "querier")[0]["finding"].startswith("ok: an MLD querier answers")
    assert "fe80::" in of(findings, "responder")[0]["finding"]


def test_two_ipv6_sessions_on_one_group_are_named(tmp_path: Path) -> None:
    image = tmp_path / "small.img"
    image.write_bytes(os.urandom(1 << 20))
    with Lab(1, extra_hosts=2, querier=True, ipv6_only=True) as lab:
        for host, name in zip(lab.extras, ("a", "b"), strict=True):
            lab.popen(host, [sys.executable, "-m", "mcastd", "serve", str(image), "--interface",
                             IFNAME, "--group", "ff12::6d63:8002", "--name", name,
                             "--all-blocks", "--key", str(tmp_path / f"{name}.key")],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(tmp_path),
                      cwd=REPO)
        time.sleep(3)  # hashed and announcing
        responder = start_responder(lab, tmp_path, duration=12)
        code, findings = laptop_doctor(lab, tmp_path)
        admin_code, admin = finish(responder)
    # Named by their announced addresses, without a zone, in the order of those.
    named = " and ".join(f"{name!r} from {ip}" for ip, name in sorted(
        zip((host.ip for host in lab.extras), ("a", "b"), strict=True)))
    expected = (f"two sessions send to group ff12::6d63:8002:9771: {named}; their laptops "
                "receive both streams: restart one without --group so each picks its own")
    assert code == 1
    assert problems(findings) == [expected]
    assert admin_code == 1 and expected in problems(admin)
