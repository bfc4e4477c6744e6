"""A room of virtual laptops on the kernel lab's switch, and the sender that serves them.

The lab (lab/net.py) gives a switch namespace with a bridge and a sender namespace joined to
it. Each laptop's tap device is made in the switch namespace and put on the bridge; qemu runs
in that namespace, so no frame can leave the lab. There is no DHCP server: the laptops take
link-local addresses, and the sender has the on-link 169.254.0.0/16 route most Linux desktops
add on such a LAN, so it can answer them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.net import IFNAME, Lab, LabHost

from .qemu import Laptop


def _ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True)


class VmRoom:
    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        self.laptops: list[Laptop] = []
        _ip(lab.sender.netns, "route", "add", "169.254.0.0/16", "dev", IFNAME, "scope", "link")

    @property
    def sender(self) -> LabHost:
        return self.lab.sender

    def laptop(self, name: str, firmware: str, stick: Path | None, disks: list[Path]) -> Laptop:
        number = len(self.laptops)
        tap = f"tap{number}"
        _ip(self.lab.bridge_netns, "tuntap", "add", "dev", tap, "mode", "tap")
        _ip(self.lab.bridge_netns, "link", "set", tap, "master", "br0", "up")
        laptop = Laptop(name=name, firmware=firmware, workdir=self.workdir, disks=disks,
                        mac=f"52:54:00:4d:43:{number:02x}", tap=tap, stick=stick)
        self.laptops.append(laptop)
        return laptop

    def boot(self, laptop: Laptop, *, stick: bool = True) -> None:
        laptop.boot(self.lab.bridge_netns, stick=stick)

    def close(self) -> None:
        for laptop in self.laptops:
            laptop.power_cut()


@contextmanager
def vm_room(workdir: Path, ipv6_only: bool = False) -> Iterator[VmRoom]:
    """A lab with a sender and no lab receivers; laptops are added with :meth:`laptop`.
    ``ipv6_only``: the sender has no IPv4 address (an IPv6-only LAN; the laptops still take
    IPv4 link-local addresses, finding no DHCP server)."""
    with Lab(0, ipv6_only=ipv6_only) as lab:
        room = VmRoom(lab, workdir)
        try:
            yield room
        finally:
            room.close()
