"""The served image: read block by block, encoded, hashed once and cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mcastd.image import ImageError, ImageSource
from netsim.images import make_image
from protocol.blockcodec import BlockDecoder, BlockKind

BLOCK = 64 << 10


def test_blocks_decode_back_to_the_image_and_the_last_one_is_short(tmp_path: Path) -> None:
    image = make_image(5 * BLOCK + 1234, 3, "disklike")
    path = tmp_path / "a.img"
    path.write_bytes(image)
    source = ImageSource(str(path), BLOCK)
    decoder = BlockDecoder()
    rebuilt = b""
    for i in range(6):
        kind, payload = source.read_encoded(i)
        length = min(BLOCK, len(image) - i * BLOCK)
        rebuilt += decoder.decode(kind, payload, length)
    source.close()
    assert rebuilt == image


def test_a_zero_block_costs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "z.img"
    path.write_bytes(bytes(2 * BLOCK))
    source = ImageSource(str(path), BLOCK)
    assert source.read_encoded(1) == (BlockKind.ZERO, b"")
    source.close()


def test_the_hash_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.img"
    path.write_bytes(b"one" * 1000)
    cache = tmp_path / "cache"
    seen: list[int] = []
    source = ImageSource(str(path), BLOCK)
    assert source.sha256(cache, seen.append) == hashlib.sha256(b"one" * 1000).digest()
    assert seen[-1] == 3000
    seen.clear()
    assert source.sha256(cache, seen.append) == hashlib.sha256(b"one" * 1000).digest()
    assert seen == []  # from the cache
    source.close()
    path.write_bytes(b"two" * 1000)
    os.utime(path, ns=(1, 1))
    source = ImageSource(str(path), BLOCK)
    assert source.sha256(cache, seen.append) == hashlib.sha256(b"two" * 1000).digest()
    source.close()


@pytest.mark.parametrize(("name", "says"), [("missing.img", "does not exist"),
                                            (".", "is a directory")])
def test_bad_images_are_one_sentence(tmp_path: Path, name: str, says: str) -> None:
    with pytest.raises(ImageError, match=says):
        ImageSource(str(tmp_path / name), BLOCK)


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="attaching a loop device needs root")
def test_a_block_device_is_served_like_a_file(tmp_path: Path) -> None:
    import subprocess

    image = make_image(3 * BLOCK + 512, 4, "disklike")
    backing = tmp_path / "disk"
    backing.write_bytes(image)
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        source = ImageSource(dev, BLOCK)
        assert source.is_device and source.size == len(image)
        assert source.sha256(tmp_path / "cache", lambda _n: None) == hashlib.sha256(image).digest()
        assert not (tmp_path / "cache").exists()  # a disk has no mtime to trust: never cached
        kind, payload = source.read_encoded(3)
        assert BlockDecoder().decode(kind, payload, 512) == image[3 * BLOCK :]
        source.close()
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_an_image_that_fails_to_read_names_the_byte_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "img"
    path.write_bytes(make_image(1 << 20, 1, "random"))
    source = ImageSource(str(path), 256 << 10)

    def failing(fd: int, length: int, offset: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "pread", failing)
    with pytest.raises(ImageError) as caught:
        source.read_encoded(2)
    source.close()
    assert str(caught.value) == (
        f"reading {path} at byte 524288 failed with an I/O error: the disk holding the image "
        "is failing; copy the image to another disk and serve it again.")
