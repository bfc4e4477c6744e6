"""Other sessions heard on the discovery group: one on our data group is told once; those
sending from this machine share its link."""

from __future__ import annotations

from mcastd.neighbours import NEIGHBOUR_SILENCE, Neighbours
from protocol.wire import Announce

GROUP = ("239.255.77.2", 9771)
HERE = "10.0.0.1"


def announce(session_id: int, name: str = "room-b", group: tuple[str, int] = GROUP,
             host: str = "10.0.0.3", started: bool = True) -> bytes:
    return Announce(session_id, name, 10, bytes(32), 4096, 1448, group[0], group[1],
                    host, 9772, 0.0, started).encode()


def test_another_session_on_our_group_is_named_once() -> None:
    neighbours = Neighbours(1, GROUP, HERE)
    warning = neighbours.heard(announce(2), ("10.0.0.3", 9772), 0.0)
    assert warning == ("session 'room-b' from 10.0.0.3 sends to this session's group "
                       "239.255.77.2:9771 too: both rooms' laptops receive both streams; "
                       "restart one of them without --group, so that it draws its own")
    assert neighbours.heard(announce(2), ("10.0.0.3", 9772), 1.0) is None  # once


def test_our_own_sessions_others_groups_and_garbage_say_nothing() -> None:
    neighbours = Neighbours(1, GROUP, HERE)
    assert neighbours.heard(announce(1), ("10.0.0.1", 9772), 0.0) is None
    other_group = announce(3, group=("239.255.200.1", 9771))
    assert neighbours.heard(other_group, ("10.0.0.4", 9772), 0.0) is None
    assert neighbours.heard(b"MC\x02\x02garbage", ("10.0.0.5", 9), 0.0) is None
    assert neighbours.heard(b"", ("10.0.0.5", 9), 0.0) is None
    assert neighbours.sending_here(0.0) == 0


def test_a_flood_of_forged_sessions_stays_bounded() -> None:
    neighbours = Neighbours(1, GROUP, HERE)
    said = [neighbours.heard(announce(100 + i, host=HERE), ("10.0.0.9", 1), 0.0)
            for i in range(1000)]
    assert sum(w is not None for w in said) == 16
    assert neighbours.sending_here(0.0) == 16


def test_an_ipv6_group_is_written_in_brackets() -> None:
    group = ("ff12::6d63:8001", 9771)
    warning = Neighbours(1, group, "fe80::1").heard(announce(2, group=group),
                                                    ("fe80::3%lab0", 9772), 0.0)
    assert warning is not None and "[ff12::6d63:8001]:9771 too" in warning


def test_sessions_sending_from_this_machine_are_counted_until_they_fall_silent() -> None:
    neighbours = Neighbours(1, GROUP, HERE)
    other = ("239.255.200.1", 9771)
    neighbours.heard(announce(2, group=other, host=HERE), (HERE, 9773), 0.0)
    neighbours.heard(announce(3, group=other, host=HERE, started=False), (HERE, 9774), 0.0)
    neighbours.heard(announce(4, group=other, host="10.0.0.7"), ("10.0.0.7", 9772), 0.0)
    # Only the one sending from here: another machine's, and one still waiting, do not count.
    assert neighbours.sending_here(1.0) == 1
    neighbours.heard(announce(3, group=other, host=HERE), (HERE, 9774), 1.5)  # it started
    assert neighbours.sending_here(2.0) == 2
    assert neighbours.sending_here(NEIGHBOUR_SILENCE + 0.5) == 1  # session 2 went quiet
    assert neighbours.sending_here(NEIGHBOUR_SILENCE + 2.0) == 0
