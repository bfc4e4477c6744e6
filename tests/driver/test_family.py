"""Which family a session runs on, and the link-local addresses and groups it uses."""

from __future__ import annotations

import ipaddress
import random
import socket
from pathlib import Path

import pytest

from driver.family import (
    check_group_family,
    discovery_addr,
    link_local_address,
    scoped,
    session_family,
)
from driver.neterror import NetworkError
from protocol.config import (
    DATA_GROUPS,
    DATA_GROUPS6,
    DISCOVERY_ADDR,
    DISCOVERY_ADDR6,
    random_data_group,
)
from protocol.receiver import in_zone_of

LINK_LOCAL = "fe80000000000000b4a1c2fffed3e4f5"


def table(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "if_inet6"
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


def test_the_link_local_address_is_read_from_the_kernels_table(tmp_path: Path) -> None:
    path = table(tmp_path,
                 "fd000000000000000000000000000002 04 40 00 82     eth0",  # global: not it
                 f"{LINK_LOCAL} 05 40 20 80     lab0")
    assert link_local_address("lab0", path) == "fe80::b4a1:c2ff:fed3:e4f5"
    assert link_local_address("eth0", path) is None
    assert link_local_address("lab0", tmp_path / "no-ipv6-here") is None


def test_a_tentative_address_is_waited_for_then_given_up_on(tmp_path: Path) -> None:
    path = table(tmp_path, f"{LINK_LOCAL} 05 40 20 c0     lab0")  # 0x40: tentative
    assert link_local_address("lab0", path) is None
    assert link_local_address("lab0", path, wait=0.1) is None
    failed = table(tmp_path, f"{LINK_LOCAL} 05 40 20 88     lab0")  # 0x08: DAD failed
    assert link_local_address("lab0", failed, wait=5.0) is None  # not waited for


def test_loopback_with_ipv4_runs_ipv4_unless_ipv6_is_asked_for() -> None:
    assert session_family("lo", False) == socket.AF_INET
    # lo has no link-local address: IPv6 there is refused in one sentence.
    with pytest.raises(NetworkError, match="no usable IPv6 link-local address.*leave out"):
        session_family("lo", True)
    with pytest.raises(NetworkError, match="no network interface called 'nosuch0'"):
        session_family("nosuch0", False)


def test_groups_must_be_of_the_sessions_family() -> None:
    assert discovery_addr(socket.AF_INET, None, 9770) == DISCOVERY_ADDR
    assert discovery_addr(socket.AF_INET6, None, 9770) == DISCOVERY_ADDR6
    assert discovery_addr(socket.AF_INET6, "ff12::1", 9000) == ("ff12::1", 9000)
    with pytest.raises(NetworkError, match="--group 239.1.2.3 is not an IPv6"):
        check_group_family("239.1.2.3", socket.AF_INET6, "--group")
    with pytest.raises(NetworkError, match="pass a group of that family, or --ipv6"):
        check_group_family("ff12::1", socket.AF_INET, "--group")


def test_each_session_draws_its_own_data_group_from_the_admin_scoped_range() -> None:
    rng = random.Random(5)
    v4 = {random_data_group(False, rng) for _ in range(200)}
    v6 = {random_data_group(True, rng) for _ in range(200)}
    assert len(v4) > 190 and len(v6) > 190  # 32,768 to draw from
    assert all(ipaddress.ip_address(g) in DATA_GROUPS for g in v4)
    assert all(ipaddress.ip_address(g) in DATA_GROUPS6 for g in v6)
    assert DISCOVERY_ADDR[0] not in v4 and DISCOVERY_ADDR6[0] not in v6


def test_link_local_addresses_get_the_zone_of_the_interface_they_are_reached_by() -> None:
    assert scoped("fe80::1", "lab0") == "fe80::1%lab0"
    assert scoped("fe80::1%eth0", "lab0") == "fe80::1%eth0"
    assert scoped("10.0.0.1", "lab0") == "10.0.0.1"
    assert scoped("fd00::1", "lab0") == "fd00::1"  # a global address needs no zone
    # A laptop answers the sender's announced link-local host through its own interface.
    assert in_zone_of("fe80::1", "fe80::1%enp3s0") == "fe80::1%enp3s0"
    assert in_zone_of("", "10.0.0.1") == "10.0.0.1"
    assert in_zone_of("10.0.0.9", "10.0.0.1") == "10.0.0.9"
