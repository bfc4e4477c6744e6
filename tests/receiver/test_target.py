"""Target checks and writes on files in tmp_path and, as root, on a loop device over a file.

No test names or opens a real disk: block-device tests use a loop device attached to a
sparse file in tmp_path and always detach it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import receiver.target as target_module
from receiver import blockio
from receiver.target import (
    Target,
    TargetError,
    TargetInfo,
    VerifyResult,
    check_fits,
    check_target,
)

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
    assert str(caught.value) == ("/dev/fake holds 67108864 bytes (64.0 MiB) but the image needs "
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
    (errno.EIO, "writing .* at byte 0 failed with an input/output error: the disk is failing"),
    (errno.ENODEV, "vanished at byte 0 while writing"),
    (errno.EROFS, "refused writing at byte 0: it is read-only"),
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


# -- discard on files ---------------------------------------------------------------------------


def refusing(code: int, calls: list[tuple[int, int]]) -> target_module.Discard:
    """A discard call that records its range and fails with ``code``."""

    def discard(_fd: int, offset: int, length: int) -> None:
        calls.append((offset, length))
        raise OSError(code, os.strerror(code))

    return discard


def test_discard_on_a_file_punches_a_hole(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    data = random.Random(3).randbytes(8 * MiB)
    with Target(check_target(str(path)), len(data)) as target:
        target.write_block(0, data)
        target.sync()
        allocated = path.stat().st_blocks * 512
        assert allocated >= 8 * MiB
        assert target.discard_supported is None
        target.discard(2 * MiB, 4 * MiB)
        target.sync()
        assert target.discard_supported is True
        assert target.bytes_discarded == 4 * MiB
        assert target.bytes_written == 8 * MiB  # a discard is not a write
    assert path.stat().st_blocks * 512 <= allocated - 4 * MiB
    assert path.read_bytes() == data[: 2 * MiB] + bytes(4 * MiB) + data[6 * MiB :]
    with open(path, "rb") as f:
        assert os.lseek(f.fileno(), 0, os.SEEK_HOLE) == 2 * MiB
        assert os.lseek(f.fileno(), 2 * MiB, os.SEEK_DATA) == 6 * MiB


def test_discard_on_a_file_changes_nothing_outside_its_range(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    data = b"\x5a" * MiB
    with Target(check_target(str(path)), len(data)) as target:
        target.write_block(0, data)
        target.discard(100, 10_000)  # a file needs no rounding: partial blocks are zeroed
        assert target.bytes_discarded == 10_000
    assert path.read_bytes() == data[:100] + bytes(10_000) + data[10_100:]
    block = os.statvfs(path).f_bsize
    if 2 * block <= 10_100:  # a whole file-system block inside the range became a hole
        with open(path, "rb") as f:
            assert os.lseek(f.fileno(), 0, os.SEEK_HOLE) == block


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL])
def test_unsupported_discard_is_skipped_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], code: int
) -> None:
    path = tmp_path / "disk.img"
    calls: list[tuple[int, int]] = []
    with Target(check_target(str(path)), 3 * MiB, discard=refusing(code, calls)) as target:
        target.write_block(0, b"\x07" * (3 * MiB))
        target.discard(0, MiB)
        target.discard(2 * MiB, MiB)
        assert target.discard_supported is False
        assert target.bytes_discarded == 0
        assert target.bytes_written == 3 * MiB
    assert calls == [(0, MiB)]  # tried once, never again
    assert capsys.readouterr() == ("", "")
    assert path.read_bytes() == b"\x07" * (3 * MiB)


def test_a_failing_discard_is_reported(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    with Target(check_target(str(tmp_path / "d.img")), MiB,
                discard=refusing(errno.EIO, calls)) as target, \
            pytest.raises(TargetError, match="discarding .*output error: the disk is failing"):
        target.discard(0, MiB)


def test_discard_checks_its_range_and_skips_empty_ones(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    with Target(check_target(str(tmp_path / "d.img")), MiB,
                discard=refusing(errno.EOPNOTSUPP, calls)) as target:
        with pytest.raises(ValueError, match="outside"):
            target.discard(MiB - 1, 2)
        with pytest.raises(ValueError, match="outside"):
            target.discard(-1, 1)
        target.discard(5, 0)
        assert target.discard_supported is None
    assert calls == []


# -- verify_blocks on files --------------------------------------------------------------------


def block_map(image: bytes, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int, bytes]]:
    return [(off, n, hashlib.sha256(image[off : off + n]).digest()) for off, n in ranges]


# aligned 1 MiB blocks, an unaligned 5000-byte block, a one-byte block and the ragged tail
USED = [(0, MiB), (MiB + 12_345, 5000), (2 * MiB, 1), (3 * MiB, MiB), (5 * MiB, 777)]
USED_IMAGE_SIZE = 5 * MiB + 777


def test_verify_blocks_on_a_file(tmp_path: Path) -> None:
    image = sample_image(USED_IMAGE_SIZE)
    blocks = block_map(image, USED)
    pulled: list[int] = []
    seen: list[tuple[int, int]] = []  # (blocks pulled so far, bytes done)

    def stream() -> Iterator[tuple[int, int, bytes]]:
        for block in blocks:
            pulled.append(block[0])
            yield block

    with Target(check_target(str(tmp_path / "d.img")), len(image)) as target:
        write_shuffled(target, blocks_of(image))
        result = target.verify_blocks(stream(), lambda done: seen.append((len(pulled), done)))
    total = sum(n for _, n in USED)
    assert result == VerifyResult(ok=True, verified_bytes=total, first_bad=None, bad_blocks=0)
    assert seen[0][0] == 1  # the map is streamed, not read in whole first
    assert [done for _, done in seen] == sorted(done for _, done in seen)
    assert seen[-1][1] == total


def test_verify_blocks_finds_a_byte_changed_behind_our_back(tmp_path: Path) -> None:
    path = tmp_path / "d.img"
    image = sample_image(USED_IMAGE_SIZE)
    with Target(check_target(str(path)), len(image)) as target:
        target.write_block(0, image)
        target.sync()
        bad = USED[3][0] + 4321
        with open(path, "r+b") as f:
            f.seek(bad)
            f.write(bytes([image[bad] ^ 0x01]))
        result = target.verify_blocks(iter(block_map(image, USED)))
    assert result == VerifyResult(ok=False, verified_bytes=sum(n for _, n in USED) - MiB,
                                  first_bad=USED[3][0], bad_blocks=1,
                                  bad_offsets=(USED[3][0],))


def test_verify_blocks_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "d.img"
    with Target(check_target(str(path)), 2 * MiB) as target:
        assert target.verify_blocks([]) == VerifyResult(True, 0, None, 0)
        with pytest.raises(ValueError, match="outside"):
            target.verify_blocks([(MiB, MiB + 1, bytes(32))])
        os.truncate(path, MiB)
        with pytest.raises(TargetError, match="ends at byte 1048576"):
            target.verify_blocks([(MiB, 4096, bytes(32))])


def test_a_kept_file_yields_the_blocks_it_already_holds(tmp_path: Path) -> None:
    """A delta receiver's comparison: the file is kept as it is, and the blocks whose bytes
    match are named, the others not."""
    path = tmp_path / "d.img"
    image = sample_image(USED_IMAGE_SIZE)
    old = bytearray(image)
    old[USED[1][0] + 7] ^= 0xFF  # an earlier version differs in one block
    path.write_bytes(bytes(old[: 4 * MiB]))  # ...and is shorter: the last block is missing
    listed = [(i, off, n, digest) for i, (off, n, digest) in enumerate(block_map(image, USED))]
    seen: list[int] = []
    with Target(check_target(str(path)), len(image), keep=True) as target:
        assert list(target.matching_blocks(iter(listed), seen.append)) == [0, 2, 3]
    assert seen[-1] == sum(n for _, n in USED)


# -- a real block device: a loop device over a sparse file (root only) ------------------------

DEVICE_SIZE = 64 * MiB


@contextlib.contextmanager
def attached_loop(backing: Path, *options: str) -> Iterator[str]:
    """A loop device over ``backing``, detached again however the test ends (skips unless root)."""
    if os.geteuid() != 0:
        pytest.skip("attaching a loop device needs root")
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed")
    attached = subprocess.run(["losetup", "--find", "--show", *options, str(backing)],
                              capture_output=True, text=True, check=False)
    if attached.returncode != 0:
        pytest.skip(f"losetup could not attach a loop device: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        assert device.startswith("/dev/loop"), device
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=True)


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    """A loop device over tmp_path/backing.img, whose first 8 MiB hold 0xaa."""
    backing = tmp_path / "backing.img"
    with backing.open("wb") as f:
        f.write(b"\xaa" * (8 * MiB))  # old contents the zero ranges must clear
        f.truncate(DEVICE_SIZE)
    with attached_loop(backing) as device:
        yield device


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


@pytest.fixture(params=[512, 4096], ids=["512-byte", "4096-byte"])
def sector_loop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(device, logical block size) of a loop device over tmp_path/backing.img, all 0xaa."""
    backing = tmp_path / "backing.img"
    backing.write_bytes(b"\xaa" * (16 * MiB))
    sector: int = request.param
    with attached_loop(backing, "--sector-size", str(sector)) as device:
        yield device, sector


@pytest.mark.lab
def test_loop_device_discard_punches_the_backing_file(loop_device: str, tmp_path: Path) -> None:
    data = random.Random(4).randbytes(16 * MiB)
    backing = tmp_path / "backing.img"
    with Target(check_target(loop_device), len(data)) as target:
        target.write_block(0, data)
        target.discard(4 * MiB, 4 * MiB)
        target.sync()
        assert target.discard_supported is True
        assert target.bytes_discarded == 4 * MiB
        assert target.bytes_written == 16 * MiB
    expected = data[: 4 * MiB] + bytes(4 * MiB) + data[8 * MiB :]
    with open(backing, "rb") as f:
        assert os.lseek(f.fileno(), 0, os.SEEK_HOLE) == 4 * MiB
        assert os.lseek(f.fileno(), 4 * MiB, os.SEEK_DATA) == 8 * MiB
        assert os.pread(f.fileno(), 16 * MiB, 0) == expected
    with open(loop_device, "rb") as device:
        assert device.read(16 * MiB) == expected


@pytest.mark.lab
def test_loop_device_discard_rounds_inwards_to_whole_sectors(
    sector_loop: tuple[str, int], tmp_path: Path
) -> None:
    device, sector = sector_loop
    calls: list[tuple[int, int]] = []

    def spy(fd: int, offset: int, length: int) -> None:
        calls.append((offset, length))
        blockio.discard(fd, offset, length)

    with Target(check_target(device), 16 * MiB, discard=spy) as target:
        target.discard(MiB + 1, sector)  # holds no whole sector: nothing to do
        assert target.discard_supported is None
        target.discard(MiB + 100, MiB)
        target.sync()
        assert target.discard_supported is True
        assert target.bytes_discarded == MiB - sector
    assert calls == [(MiB + sector, MiB - sector)]
    with open(device, "rb") as f:
        f.seek(MiB)
        assert f.read(sector) == b"\xaa" * sector  # the ragged head is untouched
        assert f.read(MiB - sector) == bytes(MiB - sector)
        assert f.read(sector) == b"\xaa" * sector  # and so is the ragged tail
    backing = (tmp_path / "backing.img").read_bytes()
    assert backing == b"\xaa" * (MiB + sector) + bytes(MiB - sector) + b"\xaa" * (14 * MiB)


@pytest.mark.lab
def test_loop_device_verify_blocks_reads_what_the_device_holds(
    loop_device: str, tmp_path: Path
) -> None:
    image = sample_image(USED_IMAGE_SIZE)
    blocks = block_map(image, USED)
    with Target(check_target(loop_device), len(image)) as target:
        write_shuffled(target, blocks_of(image))
        assert target.verify_blocks(iter(blocks)) == VerifyResult(
            True, sum(n for _, n in USED), None, 0)
        # Change two blocks in the backing file, under the loop device and its page cache: an
        # aligned block (read with O_DIRECT) and the unaligned one (read through the cache).
        with open(tmp_path / "backing.img", "r+b") as f:
            for offset in (USED[1][0] + 10, USED[3][0] + 99):
                f.seek(offset)
                f.write(bytes([image[offset] ^ 0xFF]))
        result = target.verify_blocks(iter(blocks))
    assert result == VerifyResult(ok=False, verified_bytes=sum(n for _, n in USED) - 5000 - MiB,
                                  first_bad=USED[1][0], bad_blocks=2,
                                  bad_offsets=(USED[1][0], USED[3][0]))
