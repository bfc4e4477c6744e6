"""IPv6 in the kernel lab with the real programs, on a LAN with no IPv4 address at all: the
sender and the laptops find that out themselves and run on link-local addresses and a
link-scope data group of the session's own; every laptop writes the exact image, also with
loss (repairs asked for and answered over IPv6), and each frame is filled to the MTU with
IPv6's longer headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.classroom import format_table, run_classroom_lab
from lab.net import lab_available
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]
SIZE = 16 << 20


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "random.img"
    write_image(path, SIZE, seed=61, kind="random")
    return path


def test_an_ipv6_only_classroom_is_imaged_over_link_local_multicast(image: Path) -> None:
    result = run_classroom_lab(image, 3, loss_pct=[0.0, 2.0, 5.0], timeout=120,
                               ipv6_only=True)
    assert result.ok, format_table(result)
    assert all(r.sha_match for r in result.receivers), format_table(result)
    assert all(r.ip.startswith("fe80::") for r in result.receivers)
    assert result.sender is not None and result.sender.final is not None
    details = result.sender.final["details"]
    # A data group of its own in the link-scope range, and the laptops' addresses are IPv6.
    assert details["data_group"][0].startswith("ff12::6d63:"), details
    rows = result.sender.final["receivers"]
    assert sorted(row["addr"].rsplit(":", 1)[0] for row in rows) == sorted(
        f"{r.ip}%lab0" for r in result.receivers)
    assert details["naks"] > 0  # the lossy laptops asked for repairs, over IPv6
    per_frame = result.wire_bytes / result.wire_frames
    assert per_frame > 0.95 * (1500 + 14)


def test_ipv6_can_be_asked_for_where_ipv4_is_configured_too(image: Path) -> None:
    result = run_classroom_lab(image, 2, timeout=120, sender_args=["--ipv6"],
                               receiver_args=["--ipv6"])
    assert result.ok, format_table(result)
    assert result.sender is not None and result.sender.final is not None
    assert result.sender.final["details"]["data_group"][0].startswith("ff12::6d63:")
