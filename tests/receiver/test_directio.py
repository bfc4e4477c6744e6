"""O_DIRECT block writes: aligned heads bypass the cache, the rest and odd disks go buffered."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import threading
from pathlib import Path

import pytest

from receiver.directio import ALIGN, AlignedBuffers, aligned_length, open_direct
from receiver.target import Target, check_target

MiB = 1 << 20


def image_of(size: int) -> bytes:
    return bytes((i * 7 + i // 4096) % 251 for i in range(size))


def address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def test_aligned_length_is_the_aligned_head() -> None:
    assert aligned_length(0, MiB) == MiB
    assert aligned_length(MiB, 5000) == 4096
    assert aligned_length(MiB, 4095) == 0
    assert aligned_length(100, MiB) == 0


def test_buffers_are_page_aligned_and_per_thread() -> None:
    buffers = AlignedBuffers()
    mine = buffers.get(10_000)
    assert len(mine) == 10_000 and address(mine) % ALIGN == 0
    theirs: list[int] = []
    worker = threading.Thread(target=lambda: theirs.append(address(buffers.get(100))))
    worker.start()
    worker.join()
    assert theirs[0] % ALIGN == 0 and theirs[0] != address(mine)
    assert address(buffers.get(5000)) == address(mine)  # reused while big enough
    assert len(buffers.get(3 * MiB)) == 3 * MiB  # grown


def test_blocks_go_direct_and_the_unaligned_tail_buffered(tmp_path: Path) -> None:
    path = tmp_path / "t.img"
    image = image_of(2 * MiB + 1234)
    writes: list[tuple[bool, int, int]] = []  # (direct, offset, length)

    def spy(fd: int, data: memoryview, offset: int) -> int:
        writes.append((bool(os.O_DIRECT & _flags(fd)), offset, len(data)))
        return os.pwrite(fd, data, offset)

    with Target(check_target(str(path)), len(image), pwrite=spy) as target:
        assert target.direct  # /tmp is a real file system here
        target.write_block(MiB, image[MiB : 2 * MiB])
        target.write_block(2 * MiB, image[2 * MiB :])  # 1234 bytes: buffered
        target.write_block(0, image[:MiB])
        assert path.read_bytes() == image
        digest = target.sha256()
    assert writes == [(True, MiB, MiB), (False, 2 * MiB, 1234), (True, 0, MiB)]
    assert digest == hashlib.sha256(image).digest()


def _flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


def test_a_disk_that_refuses_direct_writes_gets_buffered_ones(tmp_path: Path) -> None:
    path = tmp_path / "t.img"
    image = image_of(3 * MiB)

    def picky(fd: int, data: memoryview, offset: int) -> int:
        if os.O_DIRECT & _flags(fd):
            raise OSError(errno.EINVAL, "Invalid argument")
        return os.pwrite(fd, data, offset)

    open_fds = len(os.listdir("/proc/self/fd"))
    with Target(check_target(str(path)), len(image), pwrite=picky) as target:
        for offset in (2 * MiB, 0, MiB):
            target.write_block(offset, image[offset : offset + MiB])
        assert not target.direct
        assert target.bytes_written == len(image)
    assert path.read_bytes() == image
    assert len(os.listdir("/proc/self/fd")) == open_fds  # the refused descriptor is closed too


def test_a_short_direct_write_is_finished_buffered(tmp_path: Path) -> None:
    path = tmp_path / "t.img"
    image = image_of(MiB)

    def short(fd: int, data: memoryview, offset: int) -> int:
        if os.O_DIRECT & _flags(fd):
            return os.pwrite(fd, data[: 3 * ALIGN], offset) - 100  # as if 100 bytes did not fit
        return os.pwrite(fd, data, offset)

    with Target(check_target(str(path)), len(image), pwrite=short) as target:
        target.write_block(0, image)
    assert path.read_bytes() == image


def test_open_direct_refuses_nothing_but_missing_support(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_direct(str(tmp_path / "missing"))
    (tmp_path / "here").write_bytes(b"x")
    fd = open_direct(str(tmp_path / "here"))
    assert fd is not None and os.O_DIRECT & _flags(fd)
    os.close(fd)


def test_a_file_system_without_direct_io_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("receiver.target.open_direct", lambda _path: None)  # as on old tmpfs
    path = tmp_path / "t.img"
    image = image_of(MiB + 10)
    with Target(check_target(str(path)), len(image)) as target:
        assert not target.direct
        target.write_block(0, image[:MiB])
        target.write_block(MiB, image[MiB:])
        assert target.sha256() == hashlib.sha256(image).digest()
    assert path.read_bytes() == image
