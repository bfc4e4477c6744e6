"""Shared, built once per run: the stick's system, the golden disk and its prepared image,
and the sender's key. Every test makes its own stick copies and NVMe disks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.net import lab_available
from lab.vm.golden import build_golden, check_tools
from stick.build.system import System, default_cache, system
from stick.build.tools import missing_host_tools

MIB = 1 << 20
GOLDEN_SIZE = 256 * MIB


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the VM tests need root (mmdebstrap, tap devices, namespaces)"
    missing = missing_host_tools()
    if missing:
        return f"missing Debian packages: {' '.join(missing)} (make vm-test installs them)"
    return lab_available() or check_tools()


@dataclass(frozen=True)
class Golden:
    disk: Path  # the raw golden disk
    image: Path  # its prepared image (mcastd capture), which the sender serves
    key: Path  # the sender's signing key
    trust: Path  # its public half, for the sticks


@pytest.fixture(scope="session")
def cache() -> Path:
    return default_cache()


@pytest.fixture(scope="session")
def stick_system(cache: Path) -> System:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    return system(cache, lambda line: print(f"stick: {line}", file=sys.stderr))


@pytest.fixture(scope="session")
def golden(stick_system: System, cache: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Golden]:
    work = tmp_path_factory.mktemp("golden")
    disk = work / "golden.img"
    build_golden(disk, GOLDEN_SIZE, stick_system, cache)
    key = work / "sender.key"
    mcastd = [sys.executable, "-m", "mcastd"]
    subprocess.run([*mcastd, "keygen", "--key", str(key)], check=True, capture_output=True)
    image = work / "golden.mci"
    subprocess.run([*mcastd, "capture", str(disk), str(image)], check=True, capture_output=True)
    yield Golden(disk, image, key, key.with_name(key.name + ".pub"))
    shutil.rmtree(work, ignore_errors=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Each phase's report on the item, so a fixture can keep a failed test's disks."""
    report: pytest.TestReport = yield
    item.stash.setdefault(PHASES, {})[report.when] = report
    return report


PHASES = pytest.StashKey[dict[str, pytest.TestReport]]()
