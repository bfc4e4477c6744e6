"""The laptop's network, the parts that need no real interface: the RFC 3927 link-local
addresses a MAC probes, and which interfaces of a fake sysfs tree are wired Ethernet."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from stick.agent.network import link_local_candidates, wired_interfaces

MACS = ["3c:52:82:1a:2b:3c", "52:54:00:12:34:56", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"]
FIRST, LAST = ipaddress.ip_address("169.254.1.0"), ipaddress.ip_address("169.254.254.255")


@pytest.mark.parametrize("mac", MACS)
def test_ten_distinct_link_local_addresses_in_the_rfc_3927_range(mac: str) -> None:
    addresses = [ipaddress.ip_address(a) for a in link_local_candidates(mac)]
    assert len(addresses) == 10
    assert len(set(addresses)) == 10
    assert all(FIRST <= a <= LAST for a in addresses)


def test_a_laptop_probes_the_same_addresses_at_every_boot() -> None:
    assert link_local_candidates(MACS[0]) == link_local_candidates(MACS[0])


def test_laptops_of_one_classroom_start_from_different_addresses() -> None:
    macs = [f"3c:52:82:1a:2b:{n:02x}" for n in range(30)]
    firsts = {link_local_candidates(mac)[0] for mac in macs}
    assert len(firsts) == 30


def add_interface(sysfs: Path, name: str, *, type_: str = "1", device: bool = True,
                  extra: tuple[str, ...] = ()) -> None:
    entry = sysfs / "class/net" / name
    entry.mkdir(parents=True)
    (entry / "type").write_text(type_ + "\n")
    if device:
        hardware = sysfs / "devices" / name
        hardware.mkdir(parents=True)
        (entry / "device").symlink_to(hardware)
    for name_ in extra:
        (entry / name_).mkdir()


def test_only_physical_ethernet_interfaces_are_wired(tmp_path: Path) -> None:
    add_interface(tmp_path, "enp0s31f6")
    add_interface(tmp_path, "enx00e04c680001")  # a USB Ethernet adapter of a dock
    add_interface(tmp_path, "wlp2s0", extra=("wireless", "phy80211"))
    add_interface(tmp_path, "wlan1", extra=("phy80211",))
    add_interface(tmp_path, "br0", device=False)  # virtual: no device behind it
    add_interface(tmp_path, "veth0", device=False)
    add_interface(tmp_path, "lo", type_="772", device=False)
    add_interface(tmp_path, "wwan0", type_="519")  # a modem: a device, but not Ethernet
    add_interface(tmp_path, "ib0", type_="32")
    assert wired_interfaces(tmp_path) == ["enp0s31f6", "enx00e04c680001"]


def test_a_dangling_device_link_is_no_device(tmp_path: Path) -> None:
    add_interface(tmp_path, "eth0", device=False)
    (tmp_path / "class/net/eth0/device").symlink_to(tmp_path / "gone")
    assert wired_interfaces(tmp_path) == []
