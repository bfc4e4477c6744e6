"""The boot stick on an IPv6-only LAN, end to end on one virtual laptop (make vm-test): the
sender has no IPv4 address and serves over IPv6 by itself; the laptop finds no DHCP server,
takes an IPv4 link-local address as on any such LAN, hears the session on the IPv6 discovery
group, follows it there and writes the golden disk."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.vm.room import VmRoom, vm_room
from stick.build.system import System

from .conftest import PHASES, Golden
from .stickcopy import build_stick, empty_disk, report
from .test_stick_vm import (
    _SENDERS,
    BOOT_TIMEOUT,
    DEPLOY_TIMEOUT,
    DISK_SIZE,
    LOGS,
    final_of,
    holds_the_golden_disk,
    serve,
)

pytestmark = pytest.mark.vm


@pytest.fixture
def room6(request: pytest.FixtureRequest) -> Iterator[VmRoom]:
    """As test_stick_vm.py's room, on a LAN with no IPv4 address but the laptops' own."""
    workdir = LOGS / request.node.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with vm_room(workdir, ipv6_only=True) as r:
        yield r
    while _SENDERS:
        _SENDERS.pop().communicate()
    call = request.node.stash.get(PHASES, {}).get("call")
    if call is not None and call.passed:
        for image in workdir.glob("*.img"):
            image.unlink()


def test_a_laptop_on_an_ipv6_only_lan_is_imaged_over_ipv6(
        room6: VmRoom, golden: Golden, stick_system: System, cache: Path) -> None:
    stick = build_stick(room6.workdir / "stick.img", cache, "--trust", str(golden.trust),
                        "--then", "poweroff")
    laptop = room6.laptop("v6", "uefi", stick,
                          [empty_disk(room6.workdir / "nvme.img", DISK_SIZE)])
    sender = serve(room6, golden, 1)
    room6.boot(laptop)
    laptop.wait_for(r"mcastd-stick: the session is announced on IPv6", BOOT_TIMEOUT)
    laptop.wait_for(r"mcastd-stick: joined; receiving", BOOT_TIMEOUT)
    laptop.wait_for(r"mcastd-stick: OK: ", DEPLOY_TIMEOUT)
    laptop.wait_off(120)
    final = final_of(sender, 60)
    assert final["ok"], final["message"]
    assert final["details"]["data_group"][0].startswith("ff12::")
    (row,) = final["receivers"]
    assert row["state"] == "done" and row["addr"].startswith("fe80::"), row["addr"]
    assert report(stick, laptop.mac)["result"] == "ok"
    assert holds_the_golden_disk(laptop.disks[0], golden)
