"""Another session announcing our data group is told once per session, to the admin."""

from __future__ import annotations

from mcastd.group_sharers import GroupSharers
from protocol.wire import Announce

GROUP = ("239.255.77.2", 9771)


def announce(session_id: int, name: str = "room-b", group: tuple[str, int] = GROUP) -> bytes:
    return Announce(session_id, name, 10, bytes(32), 4096, 1448, group[0], group[1],
                    "10.0.0.3", 9772, 0.0).encode()


def test_another_session_on_our_group_is_named_once() -> None:
    sharers = GroupSharers(1, GROUP)
    warning = sharers.heard(announce(2), ("10.0.0.3", 9772))
    assert warning == ("session 'room-b' from 10.0.0.3 sends to this session's group "
                       "239.255.77.2:9771 too: both rooms' laptops receive both streams; "
                       "restart one of them without --group, so that it draws its own")
    assert sharers.heard(announce(2), ("10.0.0.3", 9772)) is None  # once


def test_our_own_sessions_others_groups_and_garbage_say_nothing() -> None:
    sharers = GroupSharers(1, GROUP)
    assert sharers.heard(announce(1), ("10.0.0.1", 9772)) is None
    assert sharers.heard(announce(3, group=("239.255.200.1", 9771)), ("10.0.0.4", 9772)) is None
    assert sharers.heard(b"MC\x02\x02garbage", ("10.0.0.5", 9)) is None
    assert sharers.heard(b"", ("10.0.0.5", 9)) is None


def test_a_flood_of_forged_sessions_stays_bounded() -> None:
    sharers = GroupSharers(1, GROUP)
    said = [sharers.heard(announce(100 + i), ("10.0.0.9", 1)) for i in range(1000)]
    assert sum(w is not None for w in said) == 16


def test_an_ipv6_group_is_written_in_brackets() -> None:
    group = ("ff12::6d63:8001", 9771)
    warning = GroupSharers(1, group).heard(announce(2, group=group), ("fe80::3%lab0", 9772))
    assert warning is not None and "[ff12::6d63:8001]:9771 too" in warning
