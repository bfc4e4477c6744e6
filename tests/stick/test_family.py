"""Which family the agent runs the session on, from the link it got and what the probe hears
(the listening itself: tests/stick/test_probe_ipv6_lab.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stick.agent import main, probe
from stick.agent.network import Link, with_ipv6
from stick.agent.stickfs import Stick
from stick.config import StickConfig

MAC = "52:54:00:12:34:56"
LL6 = "fe80::5054:ff:fe12:3456"
DHCP = Link("eth0", MAC, "10.0.0.12/24", "dhcp", LL6)
IPV4LL = Link("eth0", MAC, "169.254.7.9/16", "link-local", LL6)


def test_a_link_with_only_its_ipv6_link_local_address_is_a_link() -> None:
    assert with_ipv6(None, "eth0", MAC, LL6) == Link("eth0", MAC, LL6, "ipv6", LL6)
    assert with_ipv6(None, "eth0", MAC, "") is None  # nothing at all: no link yet
    ipv4 = Link("eth0", MAC, "169.254.7.9/16", "link-local")
    assert with_ipv6(ipv4, "eth0", MAC, LL6) == IPV4LL
    assert with_ipv6(ipv4, "eth0", MAC, "") == ipv4


class Screen:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, line: str) -> None:
        self.lines.append(line)


def family(link: Link, heard: list[bool | None], monkeypatch: pytest.MonkeyPatch
           ) -> tuple[bool, list[str], int]:
    """(the agent's choice, what it logged, how often it listened)."""
    calls = 0

    def announced_on_ipv6(config: StickConfig, stick: Path, ifname: str, timeout: float,
                          on_ignored: Callable[[str], None] | None = None) -> bool | None:
        nonlocal calls
        calls += 1
        return heard.pop(0)

    monkeypatch.setattr(probe, "announced_on_ipv6", announced_on_ipv6)
    screen = Screen()
    agent = main.Agent(screen)  # type: ignore[arg-type]
    chosen = agent._family(StickConfig(), Stick("/dev/sdb2", "sdb", Path("/stick")), link)
    return chosen, screen.lines, calls


def test_an_ipv6_only_link_runs_on_ipv6_without_listening_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert family(Link("eth0", MAC, LL6, "ipv6", LL6), [], monkeypatch) == (True, [], 0)


def test_a_link_without_ipv6_runs_on_ipv4(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link("eth0", MAC, "10.0.0.12/24", "dhcp")
    assert family(link, [], monkeypatch) == (False, [], 0)


@pytest.mark.parametrize("link", [DHCP, IPV4LL], ids=["dhcp", "ipv4-link-local"])
def test_a_link_with_both_follows_the_family_the_session_is_announced_on(
        link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    assert family(link, [True], monkeypatch)[0] is True
    assert family(link, [False], monkeypatch)[0] is False


def test_the_agent_keeps_listening_until_a_session_is_announced_and_says_so_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    chosen, lines, calls = family(IPV4LL, [None, None, None, True], monkeypatch)
    assert chosen is True and calls == 4
    assert lines == ["no session announced yet, on IPv4 or IPv6: start mcastd serve (still "
                     "listening)", "the session is announced on IPv6"]
