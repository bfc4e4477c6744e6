"""A golden disk with bad sectors: a capture stops naming the unreadable range, or with
--skip-unreadable takes it as zeros and records it, and the image says how many bytes."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from disk.capture import CaptureError, capture
from disk.imagefile import PreparedImage
from disk.sourceread import SourceReader, SourceReadError, unreadable_bytes
from mcastd.image_cmd import describe, info_lines

MiB = 1 << 20
BAD = (3 * MiB + 8192, 3 * MiB + 20480)  # three 4 KiB sectors


def bad_sectors(real: Callable[[int, int, int], bytes]) -> Callable[[int, int, int], bytes]:
    """os.pread, but any read touching BAD fails as a disk with bad sectors does."""
    def pread(fd: int, length: int, offset: int) -> bytes:
        if offset < BAD[1] and offset + length > BAD[0]:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, length, offset)
    return pread


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "golden.img"
    path.write_bytes(os.urandom(8 * MiB))  # no partition table: captured whole
    monkeypatch.setattr(SourceReader, "pread", staticmethod(bad_sectors(os.pread)))
    return path


def test_the_reader_names_the_bad_range_or_takes_it_as_zeros(source: Path) -> None:
    fd = os.open(source, os.O_RDONLY)
    try:
        with pytest.raises(SourceReadError, match=f"cannot be read at bytes {BAD[0]}-{BAD[1]} "):
            SourceReader(fd, str(source), skip_unreadable=False).read(3 * MiB, MiB)
        skipping = SourceReader(fd, str(source), skip_unreadable=True)
        data = skipping.read(3 * MiB, MiB)
        assert skipping.unreadable == [BAD]
        truth = source.read_bytes()[3 * MiB : 4 * MiB]
        bad = slice(BAD[0] - 3 * MiB, BAD[1] - 3 * MiB)
        assert data[bad] == bytes(BAD[1] - BAD[0])
        assert data[: bad.start] == truth[: bad.start] and data[bad.stop :] == truth[bad.stop :]
    finally:
        os.close(fd)


def test_a_capture_stops_at_bad_sectors_and_leaves_no_image(source: Path,
                                                             tmp_path: Path) -> None:
    image = tmp_path / "golden.mci"
    with pytest.raises(CaptureError, match="--skip-unreadable") as caught:
        capture(str(source), str(image))
    assert caught.value.started
    assert list(tmp_path.iterdir()) == [source]


def test_skip_unreadable_records_the_ranges_in_the_image(source: Path, tmp_path: Path) -> None:
    result = capture(str(source), str(tmp_path / "golden.mci"), skip_unreadable=True)
    with PreparedImage(result.image) as image:
        assert image.meta["unreadable"] == [list(BAD)]
        assert unreadable_bytes(image.meta) == 12288
        lines = info_lines(describe(image))  # `mcastd image info` says so too
    assert ("unreadable 12.0 KiB of the golden disk could not be read and are zeros (1 "
            "range(s), --skip-unreadable)") in lines
