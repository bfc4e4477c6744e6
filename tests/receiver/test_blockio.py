"""The raw calls on a loop device over a file in tmp_path (root only) and on plain files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from receiver import blockio
from tests.receiver.test_target import attached_loop

MiB = 1 << 20


def test_punch_hole_deallocates_and_zeroes_a_file_range(tmp_path: Path) -> None:
    path = tmp_path / "f.img"
    path.write_bytes(b"\x11" * (4 * MiB))
    with open(path, "r+b") as f:
        blockio.punch_hole(f.fileno(), MiB, 2 * MiB)
        os.fsync(f.fileno())
        assert os.lseek(f.fileno(), 0, os.SEEK_HOLE) == MiB
        assert os.lseek(f.fileno(), MiB, os.SEEK_DATA) == 3 * MiB
    assert path.stat().st_size == 4 * MiB  # KEEP_SIZE
    assert path.read_bytes() == b"\x11" * MiB + bytes(2 * MiB) + b"\x11" * MiB


@pytest.mark.lab
@pytest.mark.parametrize("sector", [512, 4096])
def test_discard_and_logical_block_size_on_a_loop_device(tmp_path: Path, sector: int) -> None:
    backing = tmp_path / "backing.img"
    backing.write_bytes(b"\x22" * (4 * MiB))
    with attached_loop(backing, "--sector-size", str(sector)) as device:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        try:
            assert blockio.logical_block_size(fd) == sector
            with pytest.raises(OSError) as caught:  # why Target rounds to whole blocks
                blockio.discard(fd, MiB + sector // 2, MiB)
            assert caught.value.errno == errno.EINVAL
            blockio.discard(fd, MiB, 2 * MiB)
            os.fsync(fd)
            assert os.pread(fd, 4 * MiB, 0) == b"\x22" * MiB + bytes(2 * MiB) + b"\x22" * MiB
        finally:
            os.close(fd)
    with open(backing, "rb") as f:  # the loop driver punched a hole in its backing file
        assert os.lseek(f.fileno(), 0, os.SEEK_HOLE) == MiB
        assert os.lseek(f.fileno(), MiB, os.SEEK_DATA) == 3 * MiB
