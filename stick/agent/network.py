"""Bring up the laptop's wired network: DHCP if a server answers within seconds, else an IPv4
link-local address (RFC 3927), so a classroom switch with no DHCP server works too. Every link
also has the IPv6 link-local address the kernel makes itself, which is enough for a session on
an IPv6-only LAN: a link with that alone is a link too, never a reason to wait.

A link-local laptop also gets an on-link default route: the sender may have any address on
the same link, and ARP finds it there.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.resources import as_file, files
from pathlib import Path

from driver.family import DAD_WAIT, link_local_address

ARPHRD_ETHER = "1"
CARRIER_WAIT = 6.0  # seconds for links to come up after the drivers loaded
DHCP_TRIES = 3  # DISCOVERs one second apart: "a few seconds"


@dataclass(frozen=True, slots=True)
class Link:
    ifname: str
    mac: str
    address: str  # "10.0.0.12/24", "169.254.7.9/16" or (how "ipv6") "fe80::…"
    how: str  # "dhcp", "link-local" or "ipv6" (no IPv4 address: its IPv6 link-local one)
    ipv6: str = ""  # its IPv6 link-local address, "" if it has none (IPv6 disabled)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def wired_interfaces(sysfs: Path = Path("/sys")) -> list[str]:
    """Physical Ethernet interfaces: a device behind them, not Wi-Fi, not a bridge or tunnel."""
    found = []
    for entry in sorted((sysfs / "class/net").iterdir()):
        if (_read(entry / "type") == ARPHRD_ETHER and (entry / "device").exists()
                and not (entry / "wireless").exists() and not (entry / "phy80211").exists()):
            found.append(entry.name)
    return found


def link_local_candidates(mac: str) -> list[str]:
    """RFC 3927 addresses to probe, the first derived from the MAC so a laptop keeps its
    address across boots, in 169.254.1.0 - 169.254.254.255."""
    seed = hashlib.sha256(mac.encode()).digest()
    out = []
    for i in range(0, 20, 2):
        value = int.from_bytes(seed[i:i + 2], "big") % (254 * 256)
        out.append(f"169.254.{1 + value // 256}.{value % 256}")
    return out


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["busybox", "ip", *args], capture_output=True, text=True, check=False)


def _carrier(ifname: str, sysfs: Path) -> bool:
    return _read(sysfs / "class/net" / ifname / "carrier") == "1"


def bring_up(log: Callable[[str], None], sysfs: Path = Path("/sys")) -> list[Link]:
    """Every wired interface up; the ones with a cable get an address. Best first: a DHCP
    lease before a link-local address."""
    names = wired_interfaces(sysfs)
    for name in names:
        _ip("link", "set", name, "up")
    deadline = time.monotonic() + CARRIER_WAIT
    while time.monotonic() < deadline and not any(_carrier(n, sysfs) for n in names):
        time.sleep(0.2)
    time.sleep(0.5)  # a second port of a dock may come up a moment later
    links = []
    for name in names:
        if not _carrier(name, sysfs):
            log(f"{name}: no cable")
            continue
        mac = _read(sysfs / "class/net" / name / "address")
        link = with_ipv6(_dhcp(name, mac) or _link_local(name, mac, log), name, mac,
                         link_local_address(name, wait=DAD_WAIT) or "")
        if link is not None:
            log(f"{name} ({mac}): {link.address} by {link.how}")
            links.append(link)
    return sorted(links, key=lambda link: link.how != "dhcp")


def with_ipv6(link: Link | None, ifname: str, mac: str, ipv6: str) -> Link | None:
    """``link`` (its IPv4 address, None if it got none) with its IPv6 link-local address
    ``ipv6`` ("" if none); a link with only the IPv6 one is an IPv6 link."""
    if link is not None:
        return replace(link, ipv6=ipv6)
    return Link(ifname, mac, ipv6, "ipv6", ipv6) if ipv6 else None


def _dhcp(ifname: str, mac: str) -> Link | None:
    with as_file(files("stick.agent").joinpath("udhcpc.sh")) as script:
        done = subprocess.run(
            ["busybox", "udhcpc", "-i", ifname, "-n", "-q", "-f", "-t", str(DHCP_TRIES),
             "-T", "1", "-A", "1", "-s", str(script)],
            capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        return None
    return Link(ifname, mac, _address_of(ifname) or "?", "dhcp")


def _link_local(ifname: str, mac: str, log: Callable[[str], None]) -> Link | None:
    for address in link_local_candidates(mac):
        # Duplicate address detection: two ARP probes; exit 0 means nobody answered.
        probe = subprocess.run(["busybox", "arping", "-D", "-q", "-c", "2", "-w", "2", "-I",
                                ifname, address], capture_output=True, check=False)
        if probe.returncode != 0:
            log(f"{ifname}: {address} is taken on this network; trying another")
            continue
        _ip("addr", "add", f"{address}/16", "dev", ifname, "scope", "link")
        routes = _ip("route", "show").stdout.splitlines()  # busybox ip filters nothing
        if not any(line.startswith("default") for line in routes):
            _ip("route", "add", "default", "dev", ifname, "scope", "link")
        return Link(ifname, mac, f"{address}/16", "link-local")
    log(f"{ifname}: no free link-local address")
    return None


def _address_of(ifname: str) -> str:
    for line in _ip("-4", "-o", "addr", "show", "dev", ifname).stdout.splitlines():
        words = line.split()
        if "inet" in words:
            return words[words.index("inet") + 1]
    return ""
