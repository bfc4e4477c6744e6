"""Each way a disk fails mid-way gets its own sentence: the operation, the byte, what it means
and what to do; a device larger than the image that runs out of space is not "too small"."""

from __future__ import annotations

import errno
import os

import pytest

from receiver.faults import Disk, fault_sentence

MiB = 1 << 20
DEVICE = Disk("/dev/sdz", True, 64 * MiB, 48 * MiB)
FILE = Disk("/srv/laptop.img", False, None, 48 * MiB)


def sentence(disk: Disk, code: int, operation: str = "writing", at: int | None = 31 * MiB,
             written: int = 31 * MiB) -> str:
    return fault_sentence(disk, OSError(code, os.strerror(code)), operation, at, written)


def test_no_space_inside_a_device_larger_than_the_image_is_a_failing_device() -> None:
    assert sentence(DEVICE, errno.ENOSPC) == (
        "/dev/sdz refused to store more at byte 32505856 for want of space although it holds "
        "64.0 MiB and the image only 48.0 MiB: a thin-provisioned device out of backing space, "
        "or a failing disk; check or replace it.")


def test_no_space_past_the_end_of_a_device_is_a_small_disk() -> None:
    small = Disk("/dev/sdz", True, 32 * MiB, 48 * MiB)
    assert sentence(small, errno.ENOSPC, at=32 * MiB) == (
        "/dev/sdz ended at byte 33554432 before the 48.0 MiB image did: use a larger disk.")


@pytest.mark.parametrize(("code", "operation", "expected"), [
    (errno.EIO, "writing", "writing /dev/sdz at byte 32505856 failed with an input/output "
                           "error: the disk is failing; replace it."),
    (errno.EIO, "reading back", "reading back /dev/sdz at byte 32505856 failed with an "
                                "input/output error: the disk is failing; replace it."),
    (errno.ENODEV, "writing", "/dev/sdz vanished at byte 32505856 while writing: the disk was "
                              "removed or dropped off its bus; reconnect it and start "
                              "mcast-receive again to receive the rest."),
    (errno.ENXIO, "flushing", "/dev/sdz vanished at byte 32505856 while flushing"),
    (errno.EROFS, "writing", "/dev/sdz refused writing at byte 32505856: it is read-only (a "
                             "write-protect switch, or the kernel set it read-only after "
                             "errors); make it writable or use another disk."),
    (errno.EPERM, "writing", "/dev/sdz refused writing at byte 32505856: it is read-only"),
    (errno.EINVAL, "writing", "writing /dev/sdz at byte 32505856 failed (Invalid argument): "
                              "check the disk or choose another target."),
])
def test_each_fault_is_told_apart(code: int, operation: str, expected: str) -> None:
    assert sentence(DEVICE, code, operation).startswith(expected)


def test_a_full_filesystem_under_a_file_target_says_how_far_it_got() -> None:
    assert sentence(FILE, errno.ENOSPC) == (
        "the disk holding /srv/laptop.img is full after writing 31.0 MiB of 48.0 MiB: free "
        "space or choose another target.")


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_a_device_whose_size_fell_to_zero_vanished_whatever_the_write_said(code: int) -> None:
    # When a disk is removed the kernel sets its size to 0; the write got EIO or ENOSPC.
    said = fault_sentence(DEVICE, OSError(code, os.strerror(code)), "writing", 31 * MiB,
                          31 * MiB, size_now=0)
    assert said.startswith("/dev/sdz vanished at byte 32505856 while writing: the disk was ")
