"""The real `mcastd serve` and `mcast-receive` in the kernel lab: real sockets, real multicast,
nftables loss, tbf links, loop devices — every copy hashed by the runner itself."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.classroom import format_table, run_classroom_lab
from lab.net import IFNAME, Lab, lab_available
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "disk.img"
    write_image(path, 24 << 20, seed=7, kind="disklike")
    return path


@contextlib.contextmanager
def loop_device(path: Path, size: int) -> Iterator[Path]:
    """A loop device over a sparse file of ``size`` bytes, always detached afterwards."""
    with open(path, "wb") as f:
        f.truncate(size)
    dev = subprocess.run(["losetup", "--find", "--show", str(path)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield Path(dev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_three_laptops_at_3_percent_loss_get_identical_images(image: Path) -> None:
    result = run_classroom_lab(image, 3, loss_pct=3.0, timeout=120)
    assert result.ok, format_table(result)
    assert all(r.sha_match for r in result.receivers)
    assert result.sender is not None and result.sender.ok and result.sender.returncode == 0


def test_a_laptop_started_2_s_late_still_finishes(tmp_path: Path) -> None:
    image = tmp_path / "random.img"
    write_image(image, 24 << 20, seed=8, kind="random")  # ~4 s at 50 Mbit/s
    result = run_classroom_lab(image, 3, rate_mbit=50, loss_pct=1.0, late={2: 2.0}, timeout=120)
    assert result.ok, format_table(result)
    assert result.receivers[2].sha_match


def test_a_sender_faster_than_its_own_link_waits_for_it_and_loses_nothing(
        tmp_path: Path) -> None:
    """--rate above what the sender's own interface carries: its socket blocks before the
    interface's queue overflows (a drop there would be silent), so no datagram is lost."""
    image = tmp_path / "random.img"
    write_image(image, 8 << 20, seed=9, kind="random")  # ~0.9 s at 80 Mbit/s

    def slow_link(lab: Lab) -> None:
        lab.set_rate(lab.sender, 80)

    # Slowed before the sender starts (extras_lead), so its first datagram meets the slow link.
    result = run_classroom_lab(image, 2, rate_mbit=[None, None], sender_args=["--rate", "100M"],
                               extras=slow_link, extras_lead=0.0, timeout=120)
    assert result.ok, format_table(result)
    assert result.sender is not None and result.sender.final is not None
    details = result.sender.final["details"]
    assert details["naks"] == 0 and details["repair_datagrams"] == 0, details


def test_without_gso_and_gro_the_plain_path_works(image: Path) -> None:
    result = run_classroom_lab(image, 2, loss_pct=3.0, timeout=120,
                               sender_args=["--no-gso"], receiver_args=["--no-gro"])
    assert result.ok, format_table(result)


def test_a_block_device_target_gets_the_image(image: Path, tmp_path: Path) -> None:
    size = image.stat().st_size
    with loop_device(tmp_path / "disk0", size + (4 << 20)) as dev:
        result = run_classroom_lab(image, 2, loss_pct=2.0, timeout=120, targets={0: dev})
        assert result.ok, format_table(result)
        assert result.receivers[0].sha_match  # the first image-size bytes of the disk


def test_a_disk_smaller_than_the_image_is_refused(image: Path, tmp_path: Path) -> None:
    reports = [tmp_path / "r0.json", tmp_path / "r1.json"]  # as a boot stick keeps them
    with loop_device(tmp_path / "small", 8 << 20) as dev:
        before = dev.read_bytes()
        result = run_classroom_lab(image, 2, timeout=120, targets={1: dev}, receiver_args_for={
            i: ["--report", str(path)] for i, path in enumerate(reports)})
        assert dev.read_bytes() == before  # nothing written
    assert result.receivers[0].ok
    small = result.receivers[1]
    assert not small.ok and small.returncode == 1
    assert "use a larger disk" in small.message
    assert result.sender is not None and result.sender.returncode == 1
    assert "1 of 2" in result.sender.message
    # Each laptop's report, and the sender's summary, which names the failed one too.
    ok, failed = (json.loads(path.read_text()) for path in reports)
    size = image.stat().st_size
    assert (ok["result"], ok["bytes_verified"], ok["message"]) == (
        "ok", size, result.receivers[0].message)
    assert (failed["result"], failed["bytes_verified"], failed["target"]) == ("failed", 0, str(dev))
    assert failed["disk_model"] is None  # a loop device has none
    assert result.sender.final is not None
    rows = {row["addr"].split(":")[0]: row for row in result.sender.final["receivers"]}
    for laptop, record in zip(result.receivers, (ok, failed), strict=True):
        assert record["mac"] and rows[laptop.ip]["host"]["mac"] == record["mac"]
    assert rows[result.receivers[0].ip]["verified_bytes"] == size


def test_a_garbage_spraying_host_does_not_disturb_the_transfer(tmp_path: Path) -> None:
    image = tmp_path / "random.img"
    write_image(image, 24 << 20, seed=9, kind="random")
    rogues: list[subprocess.Popen[bytes]] = []

    def spray(lab: Lab) -> None:
        argv = [sys.executable, "-m", "lab.rogue", "--interface", IFNAME, "--count", "8000"]
        rogues.append(lab.popen(lab.extras[0], argv, stdout=subprocess.PIPE))

    result = run_classroom_lab(image, 2, rate_mbit=50, timeout=120, extra_hosts=1, extras=spray)
    assert result.ok, format_table(result)
    out = rogues[0].communicate(timeout=30)[0].decode()
    assert "found session" in out  # the rogue found the session and sprayed it
