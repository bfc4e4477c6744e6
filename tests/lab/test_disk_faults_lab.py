"""Disk faults injected for real, with the real programs in the lab: one laptop's disk fails
mid-way, another laptop in the same session finishes exactly. The failing laptop says what
failed, where and what to do; the sender's summary lists it as a disk error with that
sentence; nothing is ever reported as success. Only loop devices and a tmpfs this test makes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.classroom import LabResult, format_table, run_classroom_lab
from lab.disks import disks_available, loop_device
from lab.net import Lab, lab_available
from netsim.images import write_image

from .faultyfs import FaultyDisk

MiB = 1 << 20
why = lab_available() or disks_available()
pytestmark = [pytest.mark.lab, pytest.mark.disks, pytest.mark.skipif(why is not None,
                                                                     reason=why or "")]


# The faults only a disk of our own can make (tests/lab/faultyfs.py) need FUSE.
needs_fuse = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse here")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "random.img"
    write_image(path, 48 * MiB, seed=12, kind="random")  # incompressible: it fills the disk
    return path


@contextlib.contextmanager
def small_tmpfs(size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes on a fresh directory, unmounted afterwards."""
    where = Path(tempfile.mkdtemp(prefix="mcastd-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def disk_error_rows(result: LabResult) -> list[dict[str, Any]]:
    assert result.sender is not None and result.sender.final is not None, format_table(result)
    rows = result.sender.final.get("receivers", [])
    return [row for row in rows if row["state"] == "disk error"]


def assert_one_disk_error(result: LabResult, sentence: str) -> None:
    failed, healthy = result.receivers
    assert healthy.ok and healthy.sha_match is not False, format_table(result)
    assert not failed.ok and failed.returncode == 1, format_table(result)
    assert sentence in failed.message, failed.message
    (row,) = disk_error_rows(result)
    assert sentence in row["reason"]


def test_a_device_that_runs_out_of_backing_space_is_not_called_too_small(image: Path) -> None:
    # A 64 MiB loop device over a file on a 32 MiB tmpfs: thin provisioning, run dry.
    with small_tmpfs(32 * MiB) as tmpfs:
        backing = tmpfs / "thin.disk"
        with open(backing, "wb") as f:
            f.truncate(64 * MiB)
        with loop_device(backing) as device:
            result = run_classroom_lab(image, 2, rate_mbit=200, timeout=120,
                                       targets={0: Path(device)})
    assert_one_disk_error(result, "for want of space although it holds 64.0 MiB and the "
                                  "image only 48.0 MiB: a thin-provisioned device")
    assert "use a larger disk" not in result.receivers[0].message


def test_a_disk_that_turns_read_only_mid_way_says_so(image: Path, tmp_path: Path) -> None:
    backing = tmp_path / "laptop.disk"
    with open(backing, "wb") as f:
        f.truncate(64 * MiB)
    with loop_device(backing) as device:
        def set_read_only(_lab: Lab) -> None:  # 2 s into a ~10 s transfer
            timer = threading.Timer(2.0, subprocess.run, [["blockdev", "--setro", device]])
            timer.daemon = True
            timer.start()

        try:
            result = run_classroom_lab(image, 2, rate_mbit=40, timeout=120,
                                       targets={0: Path(device)}, extras=set_read_only)
        finally:
            subprocess.run(["blockdev", "--setrw", device], check=False)
    assert_one_disk_error(result, "it is read-only")


def test_a_disk_that_vanishes_mid_way_says_so(
    image: Path, tmp_path: Path
) -> None:
    backing = tmp_path / "laptop.disk"
    with open(backing, "wb") as f:
        f.truncate(64 * MiB)
    with loop_device(backing) as device:
        def unplug(_lab: Lab) -> None:
            # 2 s into a ~10 s transfer the device goes: as when a disk is removed, its size
            # falls to 0 under the open descriptor.
            def gone() -> None:
                os.truncate(backing, 0)
                subprocess.run(["losetup", "--set-capacity", device], check=False)

            timer = threading.Timer(2.0, gone)
            timer.daemon = True
            timer.start()

        result = run_classroom_lab(image, 2, rate_mbit=40, timeout=120,
                                   targets={0: Path(device)}, extras=unplug)
    assert_one_disk_error(result, f"{device} vanished at byte ")
    assert "reconnect it and start mcast-receive again" in result.receivers[0].message


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared image of 16 MiB of random bytes (no table: every block used), whose final
    check reads every block back."""
    from disk.capture import capture

    where = tmp_path_factory.mktemp("prepared")
    write_image(where / "golden.img", 16 * MiB, seed=14, kind="random")
    return Path(capture(str(where / "golden.img"), str(where / "golden.mci")).image)


@needs_fuse
def test_a_disk_that_reads_back_other_bytes_is_named_after_a_few_rewrites(
    prepared: Path, tmp_path: Path
) -> None:
    """(The simulator shows a block that reads back wrong once or twice being rewritten and
    then holding: tests/sim/test_disk_faults_sim.py.)"""
    healthy = tmp_path / "healthy.img"
    with FaultyDisk(tmp_path / "laptop.disk", 32 * MiB,
                    lie_read=[(5 * MiB + 100, 5 * MiB + 116)]) as faulty, \
            loop_device(faulty.path) as device:
        result = run_classroom_lab(prepared, 2, rate_mbit=100, timeout=120,
                                   targets={0: Path(device), 1: healthy},
                                   compare_bytes=False)
    assert_one_disk_error(result, f"the disk returned other bytes than were written at byte "
                                  f"{5 * MiB} (block 5) after writing it 4 times")
    assert healthy.read_bytes() == (prepared.parent / "golden.img").read_bytes()


@needs_fuse
def test_a_write_that_fails_with_an_io_error_names_the_byte(image: Path,
                                                           tmp_path: Path) -> None:
    with FaultyDisk(tmp_path / "laptop.disk", 64 * MiB,
                    eio_write=[(20 * MiB, 21 * MiB)]) as faulty, \
            loop_device(faulty.path) as device:
        result = run_classroom_lab(image, 2, rate_mbit=200, timeout=120,
                                   targets={0: Path(device)})
    assert_one_disk_error(result, f"writing {device} at byte ")
    assert "failed with an input/output error: the disk is failing; replace it." in \
        result.receivers[0].message


@needs_fuse
def test_a_golden_disk_with_bad_sectors_is_refused_or_captured_around_them(
    tmp_path: Path
) -> None:
    bad = (3 * MiB + 8192, 3 * MiB + 20480)  # three sectors
    write_image(tmp_path / "golden.backing", 8 * MiB, seed=13, kind="random")
    image = tmp_path / "golden.mci"
    with FaultyDisk(tmp_path / "golden.backing", 8 * MiB, eio_read=[bad]) as golden:
        capture = [sys.executable, "-m", "mcastd", "capture", str(golden.path), str(image)]
        stopped = subprocess.run(capture, capture_output=True, text=True, check=False)
        assert stopped.returncode == 1 and not image.exists()
        assert (f"cannot be read at bytes {bad[0]}-{bad[1]} (an I/O error: bad sectors); "
                "nothing was captured.") in stopped.stderr
        around = subprocess.run([*capture, "--skip-unreadable"], capture_output=True,
                                text=True, check=False)
    assert around.returncode == 0, around.stderr
    assert "12.0 KiB could not be read and are zeros in the image" in around.stdout
    laptop = tmp_path / "laptop.img"
    result = run_classroom_lab(image, 1, rate_mbit=200, timeout=60, compare_bytes=False,
                               targets={0: laptop})
    assert result.ok, format_table(result)
    golden_bytes = bytearray((tmp_path / "golden.backing").read_bytes())
    golden_bytes[bad[0] : bad[1]] = bytes(bad[1] - bad[0])  # the unreadable sectors: zeros
    assert laptop.read_bytes() == golden_bytes
    assert ("12.0 KiB of it could not be read from the golden disk when it was captured and "
            "are zeros." in result.receivers[0].message)


@needs_fuse
def test_an_image_that_turns_unreadable_while_served_stops_the_room_with_its_reason(
    prepared: Path, tmp_path: Path
) -> None:
    # A prepared image is served as stored, nothing read ahead: the bad range is met mid-way.
    served = tmp_path / "served.backing"
    served.write_bytes(prepared.read_bytes())
    size = prepared.stat().st_size
    with FaultyDisk(served, size, eio_read=[(size * 6 // 10, size * 6 // 10 + 4096)]) as faulty:
        result = run_classroom_lab(faulty.path, 2, rate_mbit=200, timeout=120,
                                   compare_bytes=False)
    assert result.sender is not None and result.sender.returncode == 1, format_table(result)
    said = f"reading {faulty.path} at byte "
    assert said in result.sender.message and "failed with an I/O error" in result.sender.message
    for laptop in result.receivers:
        assert not laptop.ok, format_table(result)
        assert laptop.message.startswith(f"the sender stopped: {said}"), laptop.message
