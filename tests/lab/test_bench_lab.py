"""The benchmark's runner in a real lab, with both programs on a small image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import tools
from bench.lab_run import run_in_lab
from lab.net import lab_available
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]


@pytest.mark.parametrize("which", ["mcastd", "udpcast"])
def test_a_run_reports_time_verified_copies_and_costs(which: str, tmp_path: Path) -> None:
    if which == "udpcast" and shutil.which("udp-sender") is None:
        pytest.fail("udpcast is not installed: make test installs it (apt-get install udpcast)")
    image = tmp_path / "image.img"
    write_image(image, 6 * 2**20, seed=4, kind="disklike")
    tool = tools.mcastd(50.0) if which == "mcastd" else tools.udpcast(50.0, fec=False)
    run = run_in_lab(tool, image, 2, 50.0, 0.0, timeout=60, logs=tmp_path)
    assert run.ok and run.verified == 2, (tmp_path / f"{tool.name}-sender.log").read_text()
    assert run.seconds is not None and 0 < run.seconds < 60
    assert run.sender.returncode == 0 and all(c.returncode == 0 for c in run.laptops)
    # Real processes were measured: some CPU, a few MiB at least, bytes on the sender's link.
    assert all(c.cpu_seconds > 0 and c.peak_rss > 2**20 for c in [run.sender, *run.laptops])
    compressed = which == "mcastd"  # the disk-like image crosses compressed
    assert (run.wire_bytes < image.stat().st_size) == compressed
    assert run.wire_bytes > image.stat().st_size * 0.2
