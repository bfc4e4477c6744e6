"""`mcastd capture`'s engine on real golden disks: only what the filesystems use is kept,
exactly; the source is never written; a live source, an image on the source, an existing
image and an interrupted capture are refused or leave nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from disk.capture import CaptureError, capture
from disk.imagefile import PreparedImage
from lab.disks import PartSpec, build_disk, disks_available, loop_device, mounted
from protocol.blockcodec import BlockDecoder, BlockKind

MiB = 1 << 20
pytestmark = [pytest.mark.disks, pytest.mark.skipif(disks_available() is not None,
                                                    reason=disks_available() or "")]
FILES = (Path("/usr/share/doc/bash"),)


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    specs = [PartSpec("vfat", 40 * MiB, FILES, "ESP"), PartSpec("ext4", 64 * MiB, FILES),
             PartSpec("ntfs", 40 * MiB, FILES), PartSpec("unknown", 16 * MiB)]
    disk = build_disk(tmp_path / "golden.img", 168 * MiB, specs)
    # Zeros inside the unknown partition: free space there, not data.
    part = disk.table.partitions[3]
    with open(disk.path, "r+b") as f:
        f.seek(part.start + 4 * MiB)
        f.write(bytes(4 * MiB))
    return disk.path


def test_the_image_holds_the_used_bytes_exactly_and_nothing_else(golden: Path,
                                                                 tmp_path: Path) -> None:
    before = hashlib.sha256(golden.read_bytes()).digest()
    result = capture(str(golden), str(tmp_path / "golden.mci"), name="lab", note="term 2")
    assert hashlib.sha256(golden.read_bytes()).digest() == before  # the source is unchanged
    source = golden.read_bytes()
    used = result.use.used
    decoder = BlockDecoder()
    with PreparedImage(result.image) as image:
        assert image.meta["name"] == "lab" and image.meta["note"] == "term 2"
        assert image.header.disk_size == len(source)
        assert [p["filesystem"] for p in image.meta["partitions"]] == ["vfat", "ext4", "ntfs",
                                                                        ""]
        image.manifest()  # its root holds
        kept = set()
        for entry in image.entries:
            start = entry.index * MiB
            raw = decoder.decode(entry.kind, image.read_payload(entry), MiB)
            expected = bytearray(MiB)
            for begin, end in used.within(start, start + MiB):
                expected[begin:end] = source[start + begin : start + end]
            assert raw == expected, entry.index  # used bytes as they are, free ones zero
            assert hashlib.sha256(raw).digest() == entry.sha256
            kept.add(entry.index)
    # Every block with a used byte is kept, except zeros outside any filesystem's map.
    unknown = result.use.table.partitions[3]
    free_zeros = set(range((unknown.start + 4 * MiB) // MiB, (unknown.start + 8 * MiB) // MiB))
    assert kept == set(used.blocks(MiB)) - free_zeros
    assert result.image_bytes < 0.6 * len(source)  # the old data in free space is gone


def test_zeros_that_a_filesystem_uses_are_kept_as_data(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "zeros.bin").write_bytes(bytes(8 * MiB))
    disk = build_disk(tmp_path / "golden.img", 64 * MiB, [PartSpec("ext4", 0, (files,))])
    result = capture(str(disk.path), str(tmp_path / "golden.mci"))
    assert result.zero_blocks >= 6  # the file's blocks, whole MiBs of zeros
    with PreparedImage(result.image) as image:
        assert sum(e.kind == BlockKind.ZERO for e in image.entries) == result.zero_blocks


def test_a_source_mounted_read_write_is_refused(golden: Path, tmp_path: Path) -> None:
    from disk.table import read_table

    part = read_table(str(golden), os.path.getsize(golden)).partitions[1]
    image = tmp_path / "live.mci"
    with loop_device(golden, part) as device, mounted("ext4", device, read_only=False), \
            pytest.raises(CaptureError, match="mounted read-write on .*unmount it"):
        capture(str(golden), str(image))
    assert not image.exists() and not Path(f"{image}.partial").exists()
    with loop_device(golden, part, read_only=True) as device, \
            mounted("ext4", device, read_only=True):
        capture(str(golden), str(image))  # a read-only mount changes nothing
    assert image.exists()


def test_the_source_itself_and_an_existing_image_are_refused(golden: Path,
                                                             tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="is the source itself"):
        capture(str(golden), str(golden))
    existing = tmp_path / "old.mci"
    existing.write_bytes(b"keep me")
    with pytest.raises(CaptureError, match="exists: remove it"):
        capture(str(golden), str(existing))
    assert existing.read_bytes() == b"keep me"


def test_an_interrupted_capture_leaves_nothing_that_looks_like_an_image(golden: Path,
                                                                        tmp_path: Path) -> None:
    image = tmp_path / "golden.mci"

    def interrupt(done: int, total: int, written: int) -> None:
        if done > 8 * MiB:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        capture(str(golden), str(image), progress=interrupt)
    assert list(tmp_path.glob("golden.mci*")) == []


def test_a_full_disk_leaves_nothing(golden: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(CaptureError, match="is full"):
            capture(str(golden), str(small / "golden.mci"))
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
