"""The doctor's findings: each measurement becomes one line that says what was found and what
to do; ok lines start with "ok: "; any problem makes the exit code 1."""

from __future__ import annotations

from protocol.diagnosis import (
    BurstOutcome,
    GroupWatch,
    SessionSeen,
    big_probe_size,
    control_port_finding,
    exit_code,
    local_mtu_finding,
    loss_findings,
    mtu_finding,
    querier_finding,
    responder_missing_finding,
    rtt_finding,
    sessions_findings,
    skipped,
)

GROUP = ("239.255.77.2", 9771)
PROBE = ("239.255.77.250", 9769)


def outcome(rate: int, sent: int, arrived: int, size: int = 1472, **kw: object) -> BurstOutcome:
    return BurstOutcome(rate, size, sent, arrived, 0.5, **kw)  # type: ignore[arg-type]


def test_a_querier_or_its_absence() -> None:
    missing = querier_finding("lab0", None, 3.0)
    assert missing.problem and missing.text == (
        "no IGMP querier answered on lab0 within 3 s: a switch that snoops IGMP will cut "
        "laptops off after ~4 min; enable an IGMP querier on the switch or router")
    assert querier_finding("eth0", "10.0.0.254", 3.0).text == \
        "ok: an IGMP querier answers on eth0: 10.0.0.254"
    assert "the switch's own" in querier_finding("eth0", "0.0.0.0", 3.0).text


def test_exit_code_is_1_only_for_a_problem() -> None:
    ok_one = querier_finding("eth0", "10.0.0.254", 3.0)
    assert exit_code([ok_one, skipped("querier", "needs root")]) == 0
    assert exit_code([ok_one, querier_finding("eth0", None, 3.0)]) == 1
    assert exit_code([]) == 0


def test_a_laptop_link_smaller_than_the_senders_is_a_mismatch() -> None:
    f = mtu_finding(9000, 1500, outcome(10**7, 406, 406), outcome(10**7, 69, 0, size=8972))
    assert f.problem and f.text == (
        "the sender's link takes 9000-byte packets and this laptop's 1500: serve with --mtu "
        "1500, or give every link the same MTU")
    # Known from the numbers alone, even when no burst could be asked for.
    assert mtu_finding(9000, 1500, None, None).problem


def test_big_packets_lost_where_small_ones_pass_mean_the_switch_drops_them() -> None:
    f = mtu_finding(9000, 9000, outcome(10**7, 406, 406), outcome(10**7, 69, 0, size=8972))
    assert f.problem and "the switch drops big packets" in f.text and "8972-byte" in f.text
    ok_big = mtu_finding(9000, 9000, outcome(10**7, 406, 406), outcome(10**7, 69, 69, size=8972))
    assert not ok_big.problem and "8972-byte probes arrive" in ok_big.text
    assert not mtu_finding(1500, 9000, outcome(10**7, 406, 406), None).problem
    assert not mtu_finding(1500, 1500, outcome(10**7, 406, 406), None).problem


def test_the_big_probe_is_the_senders_packet_size_if_above_1500() -> None:
    assert big_probe_size(9000) == 8972
    assert big_probe_size(1500) is None


def test_loss_above_one_percent_names_the_rate_and_the_highest_clean_one() -> None:
    found = loss_findings([outcome(10**7, 406, 406), outcome(10**8, 4063, 4060),
                           outcome(5 * 10**8, 20000, 4000)], PROBE)
    assert [f.problem for f in found] == [False, False, True]
    assert found[0].text == "ok: at 10 Mbit/s 406 of 406 probe datagrams arrived (0.0 % lost)"
    assert found[2].text == (
        "at 500 Mbit/s 80.0 % of 20000 probe datagrams were lost on the way: the path carries "
        "less than 500 Mbit/s; serve with --rate 100M (it adapts, but starts there)")


def test_loss_at_the_lowest_rate_points_at_the_hardware() -> None:
    found = loss_findings([outcome(10**7, 406, 300, own_drops=3)], PROBE)
    assert found[0].problem
    assert "3 of them this laptop's full socket buffer dropped" in found[0].text
    assert "check the cables" in found[0].text


def test_no_probe_at_all_while_announcements_arrive_is_the_switch() -> None:
    found = loss_findings([outcome(10**7, 406, 0), outcome(10**8, 4063, 0)], PROBE)
    assert len(found) == 1 and found[0].problem
    assert "none of the sender's probe datagrams to 239.255.77.250:9769 arrived" in found[0].text


def test_bursts_not_reported_or_not_sent() -> None:
    lost, refused = loss_findings([outcome(10**7, -1, 400),
                                   BurstOutcome(10**8, 1472, 0, 0, 0.0, 0, "its link refuses")],
                                  PROBE)
    assert lost.problem and "never reported" in lost.text
    assert refused.problem and "its link refuses" in refused.text


def test_a_sender_slower_than_asked_is_told_in_the_ok_line() -> None:
    slow = BurstOutcome(5 * 10**8, 1472, 20000, 20000, 2.0)
    assert "the sender managed only" in loss_findings([slow], PROBE)[0].text


def test_a_silent_control_port_while_multicast_arrives_is_a_firewall() -> None:
    f = control_port_finding(("10.77.0.1", 9772), 5, 0, True)
    assert f.problem and f.text == (
        "udp port 9772 of the sender 10.77.0.1 gets no answer while its multicast arrives: a "
        "firewall on the sender drops it; open udp 9772-9871")
    assert control_port_finding(("10.77.0.1", 9772), 5, 4, True).text == \
        "ok: udp port 9772 of the sender 10.77.0.1 answers (4 of 5 pings)"


def test_round_trip_times() -> None:
    assert rtt_finding(("10.0.0.1", 9772), []) is None
    fast = rtt_finding(("10.0.0.1", 9772), [0.0002, 0.0003, 0.001])
    assert fast is not None and fast.text == (
        "ok: round trip to the sender 10.0.0.1 0.30 ms median, 1.00 ms worst (3 pings)")
    slow = rtt_finding(("10.0.0.1", 9772), [0.2, 0.3])
    assert slow is not None and slow.problem


def test_no_responder() -> None:
    assert responder_missing_finding(10).text == (
        "no mcastd doctor answered on the discovery group within 10 s: start `mcastd doctor` "
        "on the sender machine (or the switch does not carry multicast from it)")


def _watch(*sessions: SessionSeen, sources: dict[str, int] | None = None) -> GroupWatch:
    return GroupWatch(3.0, {s.session_id: s for s in sessions}, sources or {})


def test_two_sessions_on_one_group_are_named_with_their_senders() -> None:
    watch = _watch(SessionSeen(2, "b", "10.77.0.3", GROUP), SessionSeen(1, "a", "10.77.0.1",
                                                                        GROUP),
                   sources={"10.77.0.1": 50, "10.77.0.3": 60})
    for on_sender, data_group in ((True, GROUP), (False, None), (True, None)):
        (f,) = sessions_findings(watch, data_group, on_sender=on_sender)
        assert f.problem and f.text == (
            "two sessions send to group 239.255.77.2:9771: 'a' from 10.77.0.1 and 'b' from "
            "10.77.0.3; their laptops receive both streams: restart one without --group so "
            "each picks its own")


def test_one_session_on_the_group_matters_only_to_a_serve_meaning_to_use_it() -> None:
    watch = _watch(SessionSeen(1, "a", "10.77.0.1", GROUP))
    (laptop,) = sessions_findings(watch, None, on_sender=False)
    assert laptop.text == ("ok: no two sessions share a data group (1 session(s) announced, "
                           "listened 3 s)")
    (admin,) = sessions_findings(watch, GROUP, on_sender=True)
    assert admin.problem and "already sends to group 239.255.77.2:9771" in admin.text
    (elsewhere,) = sessions_findings(watch, ("239.255.77.9", 9771), on_sender=True)
    assert not elsewhere.problem


def test_sessions_on_groups_of_their_own_are_fine() -> None:
    watch = _watch(SessionSeen(1, "a", "10.77.0.1", ("239.255.200.3", 9771)),
                   SessionSeen(2, "b", "10.77.0.3", ("239.255.130.8", 9771)))
    (f,) = sessions_findings(watch, GROUP, on_sender=True)
    assert f.text == ("ok: no two sessions share a data group and none uses group "
                      "239.255.77.2:9771 (2 session(s) announced, listened 3 s)")
    (quiet,) = sessions_findings(_watch(), None, on_sender=False)
    assert quiet.text == "ok: no two sessions share a data group (no session announced, " \
                         "listened 3 s)"


def test_unannounced_traffic_on_the_admins_group_is_named() -> None:
    (f,) = sessions_findings(_watch(sources={"10.77.0.9": 12}), GROUP, on_sender=True)
    assert f.problem and "from 10.77.0.9 (12 datagrams)" in f.text


def test_an_encrypted_sessions_traffic_is_accounted_for() -> None:
    watch = _watch(sources={"10.77.0.5": 40})
    watch.sealed_senders.add("10.77.0.5")
    (f,) = sessions_findings(watch, GROUP, on_sender=True)
    assert not f.problem


def test_the_senders_own_mtu() -> None:
    assert "serve with --mtu 1500" in local_mtu_finding("eth0", 9000).text
    assert local_mtu_finding("eth0", 1500).text == \
        "ok: eth0 takes 1500-byte packets: serve sends 1500-byte ones"



# --- IPv6 -----------------------------------------------------------------------------------


def test_on_ipv6_the_querier_is_an_mld_one() -> None:
    assert querier_finding("lab0", None, 3.0, ipv6=True).text == (
        "no MLD querier answered on lab0 within 3 s: a switch that snoops MLD will cut "
        "laptops off after ~4 min; enable an MLD querier on the switch or router")
    assert querier_finding("lab0", "fe80::1", 3.0, ipv6=True).text == \
        "ok: an MLD querier answers on lab0: fe80::1"
    assert "the switch's own (address ::)" in querier_finding("lab0", "::", 3.0, True).text


def test_no_ipv6_probe_at_all_points_at_mld_snooping() -> None:
    found = loss_findings([outcome(10**7, 406, 0, 1452)], ("ff12::6d63:fa", 9769))
    assert "(MLD snooping without a querier?); enable an MLD querier" in found[0].text


def test_the_big_ipv6_probe_leaves_room_for_48_bytes_of_headers() -> None:
    assert big_probe_size(9000, ipv6=True) == 8952
    assert big_probe_size(1500, ipv6=True) is None
