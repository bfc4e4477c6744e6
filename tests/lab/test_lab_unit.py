"""What the lab decides before touching the kernel (no root needed)."""

from __future__ import annotations

import os

import pytest

from lab.net import Lab, LabError, lab_available


def test_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert lab_available() == "the kernel lab needs root"
    with pytest.raises(LabError, match=r"needs root: run it as root \(sudo\)"), Lab(1):
        pass


def test_addresses_names_and_losses() -> None:
    lab = Lab(2, extra_hosts=1, loss_pct=[1.0, 2.0], subnet="10.9.0.0/29", prefix="mcunit")
    assert [(h.name, h.ip) for h in lab.hosts] == [
        ("sender", "10.9.0.1"), ("r0", "10.9.0.2"), ("r1", "10.9.0.3"), ("x0", "10.9.0.4")]
    assert {h.netns for h in lab.hosts} == {"mcunit-sender", "mcunit-r0", "mcunit-r1", "mcunit-x0"}
    assert all(h.ifname == "lab0" for h in lab.hosts)


def test_each_lab_gets_its_own_prefix() -> None:
    assert Lab(1).prefix != Lab(1).prefix


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="1 loss values for 2 receivers"):
        Lab(2, loss_pct=[1.0])
    with pytest.raises(ValueError, match="too small"):
        Lab(10, subnet="10.9.0.0/29")
    with pytest.raises(ValueError, match="1 rate values for 2 receivers"):
        Lab(2, rate_mbit=[10.0])
    with pytest.raises(ValueError, match="rates must be > 0"):
        Lab(2, rate_mbit=[10.0, 0.0])
    with pytest.raises(ValueError, match="rates must be > 0"):
        Lab(1, rate_mbit=-1)
    with pytest.raises(ValueError, match="igmp_forget_after"):
        Lab(1, igmp_forget_after=0)


def test_rates_per_receiver_leave_the_others_at_line_speed() -> None:
    lab = Lab(3, rate_mbit=[100, None, 10], extra_hosts=1)
    assert lab.rate_mbit == [100, None, 10]
    assert [lab.rate_of(h) for h in lab.hosts] == [None, 100, None, 10, None]
    lab = Lab(2, rate_mbit=50, extra_hosts=1)
    assert [lab.rate_of(h) for h in lab.hosts] == [50, 50, 50, 50]
