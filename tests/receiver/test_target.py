"""Target checks and writes on files in tmp_path and, as root, on a loop device over a file.

No test names or opens a real disk: block-device tests use a loop device attached to a
sparse file in tmp_path and always detach it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import receiver.target as target_module
from receiver import blockio
from receiver.target import Target, TargetError, TargetInfo, check_fits, check_target

MiB = 1 << 20


def blocks_of(data: bytes) -> list[tuple[int, bytes]]:
    return [(off, data[off : off + MiB]) for off in range(0, len(data), MiB)]


def write_shuffled(target: Target, pieces: list[tuple[int, bytes]]) -> None:
    """Write every piece from 4 threads at once, out of order; all-zero pieces as zero ranges."""
    order = pieces[:]
    random.Random(7).shuffle(order)

    def put(piece: tuple[int, bytes]) -> None:
        offset, data = piece
        if data.count(0) == len(data):
            target.write_zeros(offset, len(data))
        else:
            target.write_block(offset, memoryview(data))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, order))


def sample_image(size: int) -> bytes:
    """Random, zero and patterned 1 MiB blocks and a ragged tail."""
    rng = random.Random(size)
    out = bytearray()
    while len(out) < size:
        kind = len(out) // MiB % 3
        block = rng.randbytes(MiB) if kind == 0 else bytes(MiB) if kind == 1 else b"ab" * (MiB // 2)
        out += block
    return bytes(out[:size])


# -- check_target / check_fits on files --------------------------------------------------------


def test_new_file_in_an_existing_directory(tmp_path: Path) -> None:
    info = check_target(str(tmp_path / "disk.img"))
    assert info.path == str(tmp_path / "disk.img")
    assert not info.is_block_device and info.size is None
    assert info.free_bytes is not None and info.free_bytes > 0
    assert not (tmp_path / "disk.img").exists()  # checking creates nothing


def test_existing_file_is_checked_without_being_changed(tmp_path: Path) -> None:
    path = tmp_path / "old.img"
    path.write_bytes(b"keep me")
    info = check_target(str(path))
    assert not info.is_block_device and info.free_bytes is not None
    assert path.read_bytes() == b"keep me"


def test_missing_parent_directory(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"directory .*/nowhere does not exist: create it"):
        check_target(str(tmp_path / "nowhere" / "disk.img"))


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="is a directory"):
        check_target(str(tmp_path))


def test_character_device_is_refused() -> None:
    with pytest.raises(TargetError, match="neither a regular file nor a block device"):
        check_target("/dev/null")


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(TargetError, match="symbolic link to nothing"):
        check_target(str(tmp_path / "link"))


def test_empty_path_is_refused() -> None:
    with pytest.raises(TargetError, match="no target given"):
        check_target("")


def test_read_only_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read_only = os.statvfs_result((4096, 4096, 100, 50, 50, 10, 5, 5, os.ST_RDONLY, 255))
    monkeypatch.setattr(os, "statvfs", lambda _path: read_only)
    with pytest.raises(TargetError, match="read-only file system"):
        check_target(str(tmp_path / "disk.img"))


@pytest.mark.parametrize(("code", "advice"), [
    (errno.EACCES, "is not writable"),
    (errno.EROFS, "is read-only"),
    (errno.ETXTBSY, "running program or a swap file"),
    (errno.ENOMEM, r"cannot be opened for writing \(.*\): check the disk"),
])
def test_open_errors_become_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   code: int, advice: str) -> None:
    path = tmp_path / "old.img"
    path.write_bytes(b"x")

    def refuse(*_args: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(TargetError, match=advice):
        check_target(str(path))


def test_a_file_is_never_refused_for_free_space() -> None:
    check_fits(TargetInfo("/tmp/x.img", False, None, free_bytes=10), 1 << 40)


def test_a_small_disk_is_refused() -> None:
    info = TargetInfo("/dev/fake", True, 64 * MiB, None)
    check_fits(info, 64 * MiB)
    with pytest.raises(TargetError) as caught:
        check_fits(info, 3 << 30)
    assert str(caught.value) == ("/dev/fake holds 67108864 bytes (64.0 MiB) but the image is "
                                 "3221225472 bytes (3.0 GiB): use a larger disk.")


# -- Target on files ---------------------------------------------------------------------------


def test_out_of_order_threaded_writes_read_back_and_hash(tmp_path: Path) -> None:
    image = sample_image(7 * MiB + 1234)
    path = tmp_path / "disk.img"
    seen: list[int] = []
    with Target(check_target(str(path)), len(image)) as target:
        write_shuffled(target, blocks_of(image))
        assert target.bytes_written == len(image)
        digest = target.sha256(seen.append)
    assert path.read_bytes() == image
    assert digest == hashlib.sha256(image).digest()
    assert seen == sorted(seen) and seen[-1] == len(image)
    assert os.stat(path).st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_larger_old_file_is_cut_and_old_bytes_do_not_survive(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    path.write_bytes(b"\xff" * 10 * MiB)
    with Target(check_target(str(path)), 3 * MiB) as target:
        target.write_block(MiB, b"\x01" * MiB)
    assert path.stat().st_size == 3 * MiB
    assert path.read_bytes() == bytes(MiB) + b"\x01" * MiB + bytes(MiB)


def test_zeroing_written_data_leaves_a_hole(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    with Target(check_target(str(path)), 8 * MiB) as target:
        target.write_block(0, random.Random(1).randbytes(8 * MiB))
        target.sync()
        assert path.stat().st_blocks * 512 >= 8 * MiB
        target.write_zeros(0, 8 * MiB)
        target.sync()
        assert target.bytes_written == 16 * MiB  # a rewritten range counts again
    assert path.stat().st_blocks * 512 < 64 * 1024
    assert path.read_bytes() == bytes(8 * MiB)


def test_zeros_are_written_when_holes_are_unsupported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def cannot_punch(_fd: int, offset: int, _length: int) -> None:
        calls.append(offset)
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(target_module, "punch_hole", cannot_punch)
    path = tmp_path / "disk.img"
    with Target(check_target(str(path)), 3 * MiB + 5) as target:
        target.write_block(0, b"\x07" * (3 * MiB + 5))
        target.write_zeros(0, MiB)
        target.write_zeros(2 * MiB, MiB + 5)
    assert calls == [0]  # after the first refusal it stops asking
    assert path.read_bytes() == bytes(MiB) + b"\x07" * MiB + bytes(MiB + 5)


def test_short_writes_are_completed(tmp_path: Path) -> None:
    def dribble(fd: int, data: memoryview, offset: int) -> int:
        return os.pwrite(fd, data[:1000], offset)

    image = random.Random(2).randbytes(MiB + 77)
    path = tmp_path / "disk.img"
    with Target(check_target(str(path)), len(image), pwrite=dribble) as target:
        target.write_block(0, image)
    assert path.read_bytes() == image


def test_full_disk_says_how_far_it_got(tmp_path: Path) -> None:
    budget = [MiB + 100]

    def small_disk(fd: int, data: memoryview, offset: int) -> int:
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.pwrite(fd, data[: budget[0]], offset)
        budget[0] -= n
        return n

    path = tmp_path / "disk.img"
    with Target(check_target(str(path)), 4 * MiB, pwrite=small_disk) as target:
        target.write_block(0, b"\x01" * MiB)
        with pytest.raises(TargetError) as caught:
            target.write_block(MiB, b"\x02" * MiB)
    assert str(caught.value) == (f"the disk holding {path} is full after writing 1.0 MiB of "
                                 "4.0 MiB: free space or choose another target.")


@pytest.mark.parametrize(("code", "advice"), [
    (errno.EIO, "input/output error: the disk may be failing"),
    (errno.EDQUOT, "disk quota .* is used up after writing 0 B of 1.0 MiB"),
    (errno.EFBIG, "cannot hold a 1.0 MiB file: choose a target on another file system"),
])
def test_write_errors_become_advice(tmp_path: Path, code: int, advice: str) -> None:
    def broken(_fd: int, _data: memoryview, _offset: int) -> int:
        raise OSError(code, os.strerror(code))

    with Target(check_target(str(tmp_path / "d.img")), MiB, pwrite=broken) as target, \
            pytest.raises(TargetError, match=advice):
        target.write_block(0, b"x" * 10)


def test_a_write_that_stores_nothing_does_not_spin(tmp_path: Path) -> None:
    with Target(check_target(str(tmp_path / "d.img")), MiB,
                pwrite=lambda _fd, _data, _offset: 0) as target, \
            pytest.raises(TargetError, match="is full"):
        target.write_block(0, b"x")


def test_writes_outside_the_image_are_bugs(tmp_path: Path) -> None:
    with Target(check_target(str(tmp_path / "d.img")), MiB) as target:
        with pytest.raises(ValueError, match="outside"):
            target.write_block(MiB - 1, b"ab")
        with pytest.raises(ValueError, match="outside"):
            target.write_zeros(-1, 1)
    assert (tmp_path / "d.img").stat().st_size == MiB


def test_hash_notices_a_file_cut_behind_our_back(tmp_path: Path) -> None:
    path = tmp_path / "d.img"
    with Target(check_target(str(path)), 2 * MiB) as target:
        os.truncate(path, MiB)
        with pytest.raises(TargetError, match="ends at byte 1048576"):
            target.sha256()


def test_empty_image(tmp_path: Path) -> None:
    with Target(check_target(str(tmp_path / "d.img")), 0) as target:
        assert target.sha256() == hashlib.sha256().digest()


def test_close_is_idempotent(tmp_path: Path) -> None:
    target = Target(check_target(str(tmp_path / "d.img")), MiB)
    target.close()
    target.close()


# -- a real block device: a loop device over a sparse file (root only) ------------------------

DEVICE_SIZE = 64 * MiB


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("attaching a loop device needs root")
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed")
    backing = tmp_path / "backing.img"
    with backing.open("wb") as f:
        f.write(b"\xaa" * (8 * MiB))  # old contents the zero ranges must clear
        f.truncate(DEVICE_SIZE)
    attached = subprocess.run(["losetup", "--find", "--show", str(backing)],
                              capture_output=True, text=True, check=False)
    if attached.returncode != 0:
        pytest.skip(f"losetup could not attach a loop device: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        assert device.startswith("/dev/loop"), device
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=True)


@pytest.mark.lab
@pytest.mark.parametrize("zero_out_works", [True, False])
def test_loop_device_write_zero_and_hash(
    loop_device: str, monkeypatch: pytest.MonkeyPatch, zero_out_works: bool
) -> None:
    real_zero_out = blockio.zero_out
    zeroed: list[tuple[int, int]] = []

    def spy_zero_out(fd: int, offset: int, length: int) -> None:
        zeroed.append((offset, length))
        if not zero_out_works:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        real_zero_out(fd, offset, length)

    monkeypatch.setattr(target_module, "zero_out", spy_zero_out)
    info = check_target(loop_device)
    assert info.is_block_device and info.size == DEVICE_SIZE and info.free_bytes is None
    image = sample_image(6 * MiB + 700)  # zero blocks over old 0xaa data, a ragged zero tail
    image = image[: 6 * MiB] + bytes(700)
    check_fits(info, len(image))
    with Target(info, len(image)) as target:
        target.write_block(MiB, b"\x55" * MiB)  # data that a zero range must then clear
        write_shuffled(target, blocks_of(image))
        digest = target.sha256()
    assert digest == hashlib.sha256(image).digest()
    # the device zeroed whole sectors (once only when it cannot); we wrote the ragged 188 bytes
    assert (6 * MiB, 512) in zeroed if zero_out_works else len(zeroed) == 1
    with open(loop_device, "rb") as device:
        assert device.read(len(image)) == image
        assert device.read(100) == b"\xaa" * 100  # past the image nothing was touched


@pytest.mark.lab
def test_loop_device_too_small(loop_device: str) -> None:
    info = check_target(loop_device)
    with pytest.raises(TargetError, match=rf"{loop_device} holds {DEVICE_SIZE} bytes .*"
                                          r"use a larger disk\."):
        check_fits(info, DEVICE_SIZE + 1)
    with pytest.raises(TargetError, match="use a larger disk"):
        Target(info, DEVICE_SIZE + 1)


@pytest.mark.lab
def test_loop_device_held_open_is_in_use(loop_device: str) -> None:
    with Target(check_target(loop_device), MiB), \
            pytest.raises(TargetError, match="is in use by the system"):
        check_target(loop_device)


@pytest.mark.lab
def test_loop_device_mounted_according_to_fake_proc(loop_device: str, tmp_path: Path) -> None:
    rdev = os.stat(loop_device).st_rdev
    name = Path(loop_device).name
    sys_block = tmp_path / "class_block"
    part = sys_block / name / f"{name}p1"
    part.mkdir(parents=True)
    (sys_block / name / "dev").write_text(f"{os.major(rdev)}:{os.minor(rdev)}\n")
    (part / "dev").write_text("259:77\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 - ext3 /dev/root rw\n")
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename Type Size Used Priority\n")
    paths = {"mountinfo": str(mountinfo), "sys_block": str(sys_block), "swaps": str(swaps)}

    assert check_target(loop_device, **paths).is_block_device
    with mountinfo.open("a") as f:
        f.write("40 35 259:77 / /mnt/x rw,noatime master:1 - ext4 /dev/whatever rw\n")
    with pytest.raises(TargetError) as caught:
        check_target(loop_device, **paths)
    assert str(caught.value) == (f"{loop_device} is in use: /dev/{name}p1 is mounted on /mnt/x; "
                                 "unmount or release it, or choose another target.")
