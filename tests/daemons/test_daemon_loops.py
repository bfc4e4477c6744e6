"""The real daemon loops (SenderDaemon, ReceiverDaemon, SessionDriver) over fake endpoints on
trio's MockClock: whole transfers in virtual time, with real files as targets."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import pytest
import trio
import trio.testing

from driver.loop import Worker
from receiver.daemon import MAX_UNWRITTEN_BLOCKS
from receiver.report_file import report_record
from receiver.target import Target, TargetInfo

from .room import run_room

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def test_three_laptops_at_3_percent_loss_get_identical_images(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=3, loss=0.03)
    assert room.sender is not None and room.sender.ok, room.sender
    assert [r.state for r in room.sender.receivers] == ["done"] * 3
    for i in range(3):
        assert room.receivers[i].ok, room.receivers[i].message
        assert room.written(i) == room.image
        # Counted from the transfer's first datagram, not from joining: within the sender's.
        assert 0 < room.receivers[i].seconds <= room.sender.seconds
    assert room.net is not None and room.net.lost > 0  # the loss was real


async def test_late_laptop_still_gets_the_whole_image(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        # 8 MiB take 0.7 s at 100 Mbit/s; the late one hears the announce at 0.25 s.
        room = await run_room(tmp_path, receivers=3, size=8 << 20, late={2: 0.1},
                              min_receivers=2)
    assert room.sender is not None and room.sender.ok
    assert all(room.written(i) == room.image for i in range(3))


async def test_socket_buffer_backpressure_loses_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=2, send_limit=3)
    assert room.sender_endpoint is not None and room.sender_endpoint.writable_waits > 0
    assert room.sender is not None and room.sender.ok
    assert all(room.written(i) == room.image for i in range(2))


async def test_a_laptop_that_vanishes_is_dropped_and_the_others_finish(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        # 32 MiB take about a second at 100 Mbit/s (it starts at 0.25 s at the latest)
        room = await run_room(tmp_path, receivers=3, size=32 << 20, vanish={1: 0.5})
    assert room.sender is not None and not room.sender.ok
    states = {row.state for row in room.sender.receivers}
    assert states == {"done", "dropped"}
    assert "1 of 3" in room.sender.message
    assert room.written(0) == room.image and room.written(2) == room.image


async def test_an_image_that_shrinks_mid_way_stops_the_sender_and_tells_the_laptops(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        # 32 MiB take about a second at 100 Mbit/s: cut to half at 0.6 s, the rest is gone.
        room = await run_room(tmp_path, receivers=2, size=32 << 20, shrink_after=0.6,
                              state_dir=tmp_path / "state")
    assert room.sender is not None and not room.sender.ok
    assert "shrank while it was being served" in room.sender.message
    for i in range(2):
        report = room.receivers[i]
        assert not report.ok
        assert report.message.startswith("the sender stopped: ") and "shrank" in report.message
    # Each laptop kept its journal: a sender of the same image started again (the image
    # whole again) serves only the rest.
    assert len(list((tmp_path / "state").iterdir())) == 2
    with trio.fail_after(120):
        again = await run_room(tmp_path, receivers=2, size=32 << 20,
                               state_dir=tmp_path / "state")
    for i in range(2):
        assert again.receivers[i].ok and again.written(i) == again.image
        assert again.receivers[i].details["resumed_blocks"] > 0


async def test_no_sender_gives_up_after_the_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        room = await run_room(tmp_path, receivers=1, sender=False, discovery_timeout=5.0)
    report = room.receivers[0]
    assert not report.ok
    assert "no session was announced within 5 s" in report.message


async def test_a_disk_too_small_is_refused_before_anything_is_written(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake_disk = TargetInfo(str(tmp_path / "tiny-disk"), True, 1 << 20, None)
    with trio.fail_after(60):
        room = await run_room(tmp_path, receivers=2, infos={1: fake_disk})
    assert not room.receivers[1].ok
    assert "use a larger disk" in room.receivers[1].message
    assert not (tmp_path / "tiny-disk").exists()
    assert room.sender is not None
    failed = [r for r in room.sender.receivers if r.state == "disk error"]
    assert len(failed) == 1 and "larger disk" in failed[0].reason
    assert room.written(0) == room.image


async def test_the_senders_summary_and_each_laptops_report_name_the_laptop(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    hosts = {i: {"mac": f"52:54:00:00:00:0{i}", "hostname": f"lab-0{i}", "dmi_serial": f"SN{i}",
                 "disk_model": "QEMU NVMe Ctrl", "disk_serial": f"NVME000{i}"} for i in range(2)}
    fake_disk = TargetInfo(str(tmp_path / "tiny-disk"), True, 1 << 20, None)
    with trio.fail_after(60):
        room = await run_room(tmp_path, receivers=2, infos={1: fake_disk}, hosts=hosts)
    assert room.sender is not None
    # The sender's --json final line: who each laptop is, and what it verified.
    rows = {row["addr"].split(":")[0]: row for row in room.sender.to_json()["receivers"]}
    ok, small = rows["10.0.1.2"], rows["10.0.1.3"]
    assert (ok["host"], ok["state"], ok["verified_bytes"]) == (hosts[0], "done", len(room.image))
    # Named although it gave up at once: its DONE says who it is too.
    assert (small["host"], small["state"], small["verified_bytes"]) == (
        hosts[1], "disk error", 0)
    # What each laptop's --report file would hold.
    records = [report_record(room.receivers[i], datetime.now(UTC)) for i in range(2)]
    assert records[0] | {"finished_at": None} == {
        **hosts[0], "target": str(tmp_path / "r0.img"), "session": "image",
        "image_sha256": hashlib.sha256(room.image).hexdigest(),
        "seconds": round(room.receivers[0].seconds, 3), "result": "ok",
        "message": room.receivers[0].message, "bytes_verified": len(room.image),
        "finished_at": None,
    }
    assert (records[1]["mac"], records[1]["result"], records[1]["bytes_verified"]) == (
        hosts[1]["mac"], "failed", 0)
    assert "use a larger disk" in records[1]["message"]


async def test_a_full_disk_stops_the_laptop_and_tells_the_sender(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    def nearly_full_disk(info: TargetInfo, size: int) -> Target:
        budget = [1 << 20]

        def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
            if budget[0] < len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget[0] -= len(data)
            return os.pwrite(fd, data, offset)

        return Target(info, size, pwrite=pwrite)

    with trio.fail_after(60):
        room = await run_room(
            tmp_path, receivers=1, size=4 << 20, open_target=nearly_full_disk
        )
    report = room.receivers[0]
    assert not report.ok and "full" in report.message
    assert room.sender is not None and not room.sender.ok
    assert "full" in room.sender.receivers[0].reason


async def test_a_disk_that_fails_mid_way_is_a_disk_error_and_keeps_its_journal(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    def failing_first_laptop(info: TargetInfo, size: int, keep: bool = False) -> Target:
        if not info.path.endswith("r0.img"):
            return Target(info, size, keep=keep)
        written = [0]

        def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
            if written[0] >= 8 << 20:  # a dying disk: I/O errors from 8 MiB on
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            written[0] += len(data)
            return os.pwrite(fd, data, offset)

        return Target(info, size, pwrite=pwrite, keep=keep)

    state = tmp_path / "state"
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=2, size=32 << 20, state_dir=state,
                              open_target=failing_first_laptop)
    failed, healthy = room.receivers[0], room.receivers[1]
    assert healthy.ok and room.written(1) == room.image
    assert not failed.ok
    assert "failed with an input/output error: the disk is failing; replace it" in failed.message
    assert room.sender is not None
    rows = {row.state: row.reason for row in room.sender.receivers}
    assert "writing" in rows["disk error"] and "input/output error" in rows["disk error"]
    assert list(state.glob("*.journal"))  # what reached the disk stays resumable


@pytest.mark.parametrize("seed", [2, 3])
async def test_every_seed_at_10_percent_loss_verifies(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=2, loss=0.10, seed=seed)
    assert room.sender is not None and room.sender.ok
    assert all(room.written(i) == room.image for i in range(2))


class SlowDisk(Worker):
    """A disk that takes 20 ms (trio time) per block: far slower than the 100 Mbit/s LAN."""

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        await trio.sleep(0.02)
        return fn(*args)


async def test_a_slow_disk_keeps_memory_bounded_and_still_gets_everything(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(300):
        room = await run_room(tmp_path, receivers=2, size=16 << 20, disk=SlowDisk(1))
    assert room.sender is not None
    assert room.sender.ok, room.sender.message
    assert all(room.written(i) == room.image for i in range(2))
    assert 1 < room.peak_unwritten <= MAX_UNWRITTEN_BLOCKS


async def test_a_laptop_stopped_mid_way_resumes_from_its_journal(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    state = tmp_path / "state"
    with trio.fail_after(120):
        # Stopped (like Ctrl-C) half way: what reached the disk is flushed into the journal.
        await run_room(tmp_path, receivers=1, size=32 << 20, vanish={0: 0.7}, state_dir=state)
    assert list(state.glob("*.journal"))
    with trio.fail_after(120):
        room = await run_room(tmp_path, receivers=1, size=32 << 20, state_dir=state)
    report = room.receivers[0]
    assert report.ok and room.written(0) == room.image
    blocks = report.details["blocks"]
    assert 0 < report.details["resumed_blocks"] < blocks
    assert not list(state.glob("*.journal"))  # verified: the journal has served


async def test_without_a_state_dir_nothing_is_resumed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        await run_room(tmp_path, receivers=1, size=32 << 20, vanish={0: 0.7})
        room = await run_room(tmp_path, receivers=1, size=32 << 20)
    assert room.receivers[0].ok and room.receivers[0].details["resumed_blocks"] == 0
