"""Which IP family a session runs on, and the addresses of that family an interface has.

IPv4 where the interface has an IPv4 address; IPv6 with ``--ipv6``, or by itself on a LAN
without IPv4 (a classroom switch with no DHCP, or an IPv6-only network). IPv6 sessions use
link-local addresses and link-scope multicast (ff12::/16), which every IPv6 interface has with
no configuration at all: the image never needs to leave the LAN.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import socket
import struct
import time
from pathlib import Path

from protocol.config import Addr, discovery_addr_for

from .neterror import NetworkError

IF_INET6 = Path("/proc/net/if_inet6")
_SIOCGIFADDR = 0x8915
_IFA_F_TENTATIVE = 0x40  # still in duplicate address detection: not usable yet
_IFA_F_DADFAILED = 0x08
_LINK_SCOPE = 0x20
DAD_WAIT = 3.0  # duplicate address detection takes about a second (1 probe, 1 s apart)


def ipv4_address(ifname: str) -> str | None:
    """The interface's IPv4 address (SIOCGIFADDR), None if it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            req = struct.pack("256s", ifname.encode()[:15])
            res = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, req)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise NetworkError(f"there is no network interface called {ifname!r}: pick one "
                                  "from `ip link`.") from None
            return None
    return socket.inet_ntoa(res[20:24])


def link_local_address(ifname: str, table: Path = IF_INET6, wait: float = 0.0) -> str | None:
    """The interface's usable IPv6 link-local address, None if it has none. ``wait``: how long
    to wait for one still in duplicate address detection (tentative for about a second after
    the link comes up: a laptop that just booted)."""
    deadline = time.monotonic() + wait
    while True:
        usable, tentative = _link_local(ifname, table)
        if usable is not None or not tentative or time.monotonic() >= deadline:
            return usable
        time.sleep(0.05)


def _link_local(ifname: str, table: Path) -> tuple[str | None, bool]:
    """(the usable link-local address or None, whether one is still tentative)."""
    try:
        lines = table.read_text().splitlines()
    except OSError:  # no IPv6 in this kernel
        return None, False
    tentative = False
    for line in lines:
        fields = line.split()
        if len(fields) != 6 or fields[5] != ifname or int(fields[3], 16) != _LINK_SCOPE:
            continue
        flags = int(fields[4], 16)
        if flags & _IFA_F_DADFAILED:
            continue
        if flags & _IFA_F_TENTATIVE:
            tentative = True
            continue
        return str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))), False
    return None, tentative


def session_family(ifname: str, ipv6: bool) -> int:
    """AF_INET6 if asked for or if ``ifname`` has no IPv4 address; else AF_INET."""
    has_ipv4 = ipv4_address(ifname) is not None
    if not ipv6 and has_ipv4:
        return socket.AF_INET
    if link_local_address(ifname, wait=DAD_WAIT) is None:
        if has_ipv4:
            raise NetworkError(f"interface {ifname} has no usable IPv6 link-local address "
                               "(is IPv6 disabled on it?): leave out --ipv6 to use IPv4.")
        raise NetworkError(
            f"interface {ifname} has no IPv4 address and no usable IPv6 link-local one: "
            f"bring it up (ip link set {ifname} up), or pick another with --interface.")
    return socket.AF_INET6


def resolve_family(ifname: str, ipv6: bool, groups: tuple[str | None, ...]
                   ) -> int:
    """The session's family: IPv6 if asked for, if a group given is IPv6, or if ``ifname``
    has no IPv4 address."""
    return session_family(ifname, ipv6 or any(g is not None and is_ipv6(g) for g in groups))


def is_ipv6(host: str) -> bool:
    return ":" in host


def discovery_addr(family: int, group: str | None, port: int) -> Addr:
    """The discovery group of ``family`` (``group``: the admin's choice, which must match)."""
    if group is None:
        return discovery_addr_for(family == socket.AF_INET6)[0], port
    check_group_family(group, family, "--discovery-group")
    return group, port


def check_group_family(group: str, family: int, option: str) -> None:
    if is_ipv6(group) != (family == socket.AF_INET6):
        want = "IPv6 (ff12::...)" if family == socket.AF_INET6 else "IPv4 (239.x.x.x)"
        raise NetworkError(f"{option} {group} is not an {want} group, which this session runs "
                          "on: pass a group of that family, or --ipv6 for an IPv6 one.")


def scoped(host: str, ifname: str) -> str:
    """``host`` with the interface as its zone where the address needs one (link-local)."""
    if is_ipv6(host) and "%" not in host and ipaddress.IPv6Address(host).is_link_local:
        return f"{host}%{ifname}"
    return host
