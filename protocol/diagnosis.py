"""The doctor's findings: what was measured, turned into one line each that says what was
found and what to do. Pure: the checks (driver/doctor_*.py) measure, this judges."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import CONTROL_PORTS, Addr
from .doctor import datagram_size

OK, PROBLEM, SKIPPED = "ok", "problem", "skipped"
# Probe loss up to this share is what any LAN shows now and then (a busy laptop, a burst
# against a queue); above it the path itself cannot carry that rate.
LOSS_TOLERATED = 0.01
SLOW_RTT = 0.05  # seconds: a LAN answers in well under a millisecond; this is a congested one
_RANGE = f"{CONTROL_PORTS.start}-{CONTROL_PORTS.stop - 1}"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # "querier", "mtu", "sessions", "responder", "control-port", "rtt", "loss"
    status: str  # OK, PROBLEM or SKIPPED
    text: str  # the one line; an ok one starts with "ok: "

    @property
    def problem(self) -> bool:
        return self.status == PROBLEM


def ok(check: str, text: str) -> Finding:
    return Finding(check, OK, f"ok: {text}")


def problem(check: str, text: str) -> Finding:
    return Finding(check, PROBLEM, text)


def skipped(check: str, text: str) -> Finding:
    return Finding(check, SKIPPED, f"skipped: {text}")


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.problem for f in findings) else 0


def _mbit(rate_bps: float) -> str:
    return f"{rate_bps / 1e6:g} Mbit/s"


# --- 1. the IGMP querier -----------------------------------------------------------------


def membership_protocol(ipv6: bool) -> str:
    """What hosts tell switches their groups with: IGMP, or on IPv6 its twin MLD."""
    return "MLD" if ipv6 else "IGMP"


def querier_finding(ifname: str, querier: str | None, waited: float,
                    ipv6: bool = False) -> Finding:
    name = membership_protocol(ipv6)
    if querier is None:
        return problem("querier", (
            f"no {name} querier answered on {ifname} within {waited:g} s: a switch that snoops "
            f"{name} will cut laptops off after ~4 min; enable an {name} querier on the switch "
            "or router"))
    unspecified = querier in ("0.0.0.0", "::")
    who = f"the switch's own (address {querier})" if unspecified else querier
    return ok("querier", f"an {name} querier answers on {ifname}: {who}")


# --- 4. MTU ----------------------------------------------------------------------------


def local_mtu_finding(ifname: str, mtu: int) -> Finding:
    size = min(mtu, 9000)
    if mtu > 1500:
        return ok("mtu", f"{ifname} takes {mtu}-byte packets: serve sends {size}-byte ones, so "
                         "every laptop's link and the switch must take them too (mcast-receive "
                         "--doctor checks; else serve with --mtu 1500)")
    return ok("mtu", f"{ifname} takes {mtu}-byte packets: serve sends {size}-byte ones")


@dataclass(frozen=True, slots=True)
class BurstOutcome:
    """What a laptop counted of one burst."""

    rate_bps: int
    size: int  # UDP payload of each datagram
    sent: int  # as the responder reported it (BURST_DONE); -1: no report came
    arrived: int
    seconds: float  # the responder's time to send it
    own_drops: int = 0  # of those lost, dropped by this laptop's full socket buffer
    error: str = ""  # the responder's reason for sending fewer

    @property
    def loss(self) -> float:
        return 1.0 - min(self.arrived, self.sent) / self.sent if self.sent > 0 else 1.0


def mtu_finding(sender_mtu: int, laptop_mtu: int, small: BurstOutcome | None,
                big: BurstOutcome | None) -> Finding:
    """Each side's MTU, and whether the sender's packet size (``big``) passes where 1500-byte
    packets (``small``) do."""
    sender_size = min(sender_mtu, 9000)
    if sender_size > laptop_mtu:
        return problem("mtu", (
            f"the sender's link takes {sender_mtu}-byte packets and this laptop's "
            f"{laptop_mtu}: serve with --mtu {laptop_mtu}, or give every link the same MTU"))
    if big is not None and small is not None and small.arrived > 0 and big.arrived == 0:
        return problem("mtu", (
            f"{big.size}-byte probes never arrived while {small.size}-byte ones did, though "
            f"both links take {sender_size}-byte packets: the switch drops big packets; enable "
            "jumbo frames on it, or serve with --mtu 1500"))
    if big is not None and big.arrived == 0:
        return problem("mtu", f"no {big.size}-byte probe arrived: nothing can be said of "
                              "packet sizes until the probes get through")
    passed = f"; {big.size}-byte probes arrive" if big is not None else ""
    return ok("mtu", f"the sender's link takes {sender_mtu}-byte packets and this laptop's "
                     f"{laptop_mtu}{passed}")


# --- 3. loss at each rate ------------------------------------------------------------------


def loss_findings(outcomes: Sequence[BurstOutcome], probe_group: Addr) -> list[Finding]:
    """One finding per rate (the 1500-byte bursts, lowest rate first)."""
    if outcomes and all(o.arrived == 0 for o in outcomes) and any(o.sent > 0 for o in outcomes):
        group = f"{probe_group[0]}:{probe_group[1]}"
        name = membership_protocol(":" in probe_group[0])
        return [problem("loss", (
            f"none of the sender's probe datagrams to {group} arrived while its announcements "
            "on the discovery group did: the switch does not carry every group to this laptop "
            f"({name} snooping without a querier?); enable an {name} querier, or check the "
            "switch's multicast settings"))]
    findings = []
    clean = [o.rate_bps for o in outcomes if o.sent > 0 and o.loss <= LOSS_TOLERATED]
    for o in outcomes:
        rate = _mbit(o.rate_bps)
        if o.sent < 0:
            findings.append(problem("loss", (
                f"the sender never reported its {rate} burst done: its answers are lost on "
                "the way back, or it is busy probing other laptops (it sends one burst at a "
                "time: run the doctor on a few laptops at once)")))
        elif o.sent == 0:
            findings.append(problem("loss", f"the sender could not send its {rate} burst "
                                            f"({o.error or 'no reason given'})"))
        elif o.loss > LOSS_TOLERATED:
            lower = [r for r in clean if r < o.rate_bps]
            advice = (f"serve with --rate {lower[-1] / 1e6:g}M (it adapts, but starts there)"
                      if lower else "check the cables, the switch and this laptop's link")
            own = (f"; {o.own_drops} of them this laptop's full socket buffer dropped (a busy "
                   "CPU)" if o.own_drops else "")
            findings.append(problem("loss", (
                f"at {rate} {100 * o.loss:.1f} % of {o.sent} probe datagrams were lost on "
                f"the way{own}: the path carries less than {rate}; {advice}")))
        else:
            achieved = 8 * o.sent * o.size / o.seconds if o.seconds > 0 else 0.0
            slow = (f" (the sender managed only {_mbit(round(achieved, -5))})"
                    if 0 < achieved < 0.7 * o.rate_bps else "")
            findings.append(ok("loss", f"at {rate} {o.arrived} of {o.sent} probe datagrams "
                                       f"arrived ({100 * o.loss:.1f} % lost){slow}"))
    return findings


# --- 5. the control port, and the round-trip time -------------------------------------------


def control_port_finding(control: Addr, pings: int, pongs: int, multicast_heard: bool) -> Finding:
    host, port = control
    if pongs == 0:
        arrives = ("while its multicast arrives: a firewall on the sender drops it"
                   if multicast_heard else "(nor does its multicast arrive)")
        return problem("control-port", (
            f"udp port {port} of the sender {host} gets no answer {arrives}; open udp {_RANGE}"))
    return ok("control-port", f"udp port {port} of the sender {host} answers ({pongs} of "
                              f"{pings} pings)")


def rtt_finding(control: Addr, rtts: Sequence[float]) -> Finding | None:
    if not rtts:
        return None  # control_port_finding says why
    median, worst = statistics.median(rtts), max(rtts)
    text = (f"round trip to the sender {control[0]} {1e3 * median:.2f} ms median, "
            f"{1e3 * worst:.2f} ms worst ({len(rtts)} pings)")
    if median > SLOW_RTT:
        return problem("rtt", f"{text}: slow for a LAN (a congested link or Wi-Fi?); a "
                              "wired, quiet path images faster")
    return ok("rtt", text)


# --- the responder -------------------------------------------------------------------------


def responder_missing_finding(waited: float) -> Finding:
    return problem("responder", (
        f"no mcastd doctor answered on the discovery group within {waited:g} s: start "
        "`mcastd doctor` on the sender machine (or the switch does not carry multicast from "
        "it)"))


def responder_found_finding(responder: Addr, mtu: int) -> Finding:
    return ok("responder", f"mcastd doctor answers from {responder[0]} (udp {responder[1]}, "
                           f"MTU {mtu})")


# --- 6. other sessions on the group ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionSeen:
    session_id: int
    name: str
    sender: str  # the announced control host
    group: Addr


@dataclass(slots=True)
class GroupWatch:
    """What the discovery and data groups carried while the doctor listened."""

    seconds: float
    sessions: dict[int, SessionSeen] = field(default_factory=dict)
    data_sources: dict[str, int] = field(default_factory=dict)  # source IP → datagrams
    dropped: int = 0  # foreign or garbled datagrams
    # Who sends encrypted datagrams to the discovery group: their announcements are sealed,
    # so their data on the group is accounted for, though not by name.
    sealed_senders: set[str] = field(default_factory=set)


def sessions_findings(watch: GroupWatch, data_group: Addr | None, *,
                      on_sender: bool) -> list[Finding]:
    """Two sessions on one data group mix their streams on every laptop of both (each session
    draws its own group unless `serve --group` names one). ``data_group``: the group the
    admin means to serve on (``--group``) or None; on the admin's machine (``on_sender``) a
    session already on it would meet the new serve's."""
    by_group: dict[Addr, list[SessionSeen]] = {}
    for seen in watch.sessions.values():
        by_group.setdefault(seen.group, []).append(seen)
    findings = []
    for group, sessions in sorted(by_group.items()):
        where = f"{group[0]}:{group[1]}"
        if len(sessions) >= 2:
            sessions.sort(key=lambda s: (s.sender, s.name))
            named = " and ".join(f"{s.name!r} from {s.sender}" for s in sessions)
            findings.append(problem("sessions", (
                f"{_count(len(sessions))} sessions send to group {where}: {named}; their "
                "laptops receive both streams: restart one without --group so each picks its "
                "own")))
        elif on_sender and group == data_group:
            s = sessions[0]
            findings.append(problem("sessions", (
                f"session {s.name!r} from {s.sender} already sends to group {where}: a serve "
                "here with the same --group would mix with it; serve without --group so each "
                "picks its own")))
    if data_group is not None:
        announced = {s.sender for s in watch.sessions.values() if s.group == data_group}
        announced |= watch.sealed_senders
        strangers = {ip: n for ip, n in watch.data_sources.items() if ip not in announced}
        where = f"{data_group[0]}:{data_group[1]}"
        if strangers:
            who = ", ".join(f"{ip} ({n} datagrams)" for ip, n in sorted(strangers.items()))
            findings.append(problem("sessions", (
                f"traffic no announced session accounts for reaches group {where} from {who}: "
                "another program (or a session announced elsewhere) uses it; serve without "
                "--group, or with another one")))
    if not findings:
        count = len(watch.sessions)
        heard = f"{count} session(s) announced" if count else "no session announced"
        mine = f" and none uses group {data_group[0]}:{data_group[1]}" \
            if data_group is not None else ""
        findings.append(ok("sessions", f"no two sessions share a data group{mine} ({heard}, "
                                       f"listened {watch.seconds:g} s)"))
    return findings


def _count(n: int) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(n, str(n))


def big_probe_size(sender_mtu: int, ipv6: bool = False) -> int | None:
    """The sender's packet size to probe beside 1500-byte ones (None: it sends no larger)."""
    size = datagram_size(sender_mtu, ipv6)
    return size if size > datagram_size(1500, ipv6) else None
