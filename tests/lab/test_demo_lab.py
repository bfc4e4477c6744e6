"""`make demo` keeps working: the golden disk captured, served, written and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.demo import demo
from lab.disks import disks_available
from lab.net import lab_available

why = lab_available() or disks_available()
pytestmark = [pytest.mark.lab, pytest.mark.disks, pytest.mark.skipif(why is not None,
                                                                     reason=why or "")]


def test_the_demo_images_and_checks_its_laptops(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert demo(tmp_path, 2, 2.0, 100.0) == 0
    out = capsys.readouterr().out
    assert out.count("every filesystem fsck-clean, every file identical") == 2
    assert "2/2 laptops imaged and checked" in out
