"""Packet size in the kernel lab with the real programs: on a jumbo-frame LAN (MTU 9000 on
every link) the session fills each frame (8948-byte symbols) and carries the image in about a
sixth of the frames; ``--mtu`` above what the link takes is refused in one sentence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab.classroom import format_table, run_classroom_lab
from lab.net import Lab, lab_available
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]
SIZE = 24 << 20


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "random.img"
    write_image(path, SIZE, seed=9, kind="random")
    return path


@pytest.mark.parametrize("mtu", [1500, 9000])
def test_each_frame_is_filled_to_the_links_mtu(image: Path, mtu: int) -> None:
    result = run_classroom_lab(image, 2, timeout=120, mtu=mtu)
    assert result.ok, format_table(result)
    per_frame = result.wire_bytes / result.wire_frames
    data_share = SIZE / result.wire_bytes
    print(f"MTU {mtu}: {result.wire_frames} frames, {per_frame:.0f} bytes each, "
          f"{100 * data_share:.1f} % of the wire is image")
    # Nearly every frame is a full data frame: Ethernet header (14) + the MTU.
    assert per_frame > 0.95 * (mtu + 14)
    assert data_share > (0.95 if mtu == 1500 else 0.98)


def test_an_mtu_above_the_links_is_refused_in_one_sentence(image: Path) -> None:
    with Lab(0) as lab:
        done = lab.run(lab.sender, [sys.executable, "-m", "mcastd", "serve", str(image),
                                    "--interface", "lab0", "--mtu", "9000"],
                       capture_output=True, text=True, timeout=60, check=False,
                       cwd=Path(__file__).parents[2])
    assert done.returncode == 2, done
    assert "--mtu 9000 is more than lab0 takes (1500): pass at most --mtu 1500" in done.stderr
    assert "Traceback" not in done.stderr
