"""The prepared-image file: what a capture writes is read back exactly; anything unfinished,
cut short, altered or foreign is refused with one sentence."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import xxhash

from disk.imagefile import (
    ENTRY,
    HEADER_SIZE,
    ImageFormatError,
    ImageWriter,
    PreparedImage,
    manifest_root,
)
from protocol.blockcodec import BlockEncoder, BlockKind
from protocol.manifest import FREE_BLOCK_DIGEST, Manifest
from protocol.trust import Signer

BLOCK = 64 * 1024
SIGNER = Signer.from_raw(hashlib.sha256(b"test image key").digest())


def write_image(path: Path, blocks: dict[int, bytes], disk_size: int,
                signer: Signer | None = None) -> None:
    writer = ImageWriter(str(path), BLOCK, disk_size)
    encoder = BlockEncoder()
    for index in sorted(blocks):
        raw = blocks[index]
        kind, payload = encoder.encode(raw)
        writer.append(index, kind, payload, xxhash.xxh3_128_digest(raw),
                      hashlib.sha256(raw).digest())
    writer.finish({"name": "golden", "note": "lab 3"}, signer)


@pytest.fixture
def blocks() -> dict[int, bytes]:
    return {0: b"\xeb\x63" + bytes(BLOCK - 2), 2: os.urandom(BLOCK), 3: bytes(BLOCK),
            7: b"text " * (BLOCK // 5) + b"x" * (BLOCK % 5), 9: os.urandom(1000)}


def test_what_is_written_is_read_back(tmp_path: Path, blocks: dict[int, bytes]) -> None:
    path = tmp_path / "golden.mci"
    write_image(path, blocks, 9 * BLOCK + 1000)
    assert not (tmp_path / "golden.mci.partial").exists()
    with PreparedImage(str(path)) as image:
        assert image.meta == {"name": "golden", "note": "lab 3"}
        assert image.header.nblocks == 10 and image.header.used_blocks == 5
        assert [e.index for e in image.entries] == [0, 2, 3, 7, 9]
        assert image.entry(1) is None and image.entry(3).kind == BlockKind.ZERO  # type: ignore[union-attr]
        from protocol.blockcodec import BlockDecoder
        decoder = BlockDecoder()
        for entry in image.entries:
            raw = decoder.decode(entry.kind, image.read_payload(entry), len(blocks[entry.index]))
            assert raw == blocks[entry.index]
            assert entry.sha256 == hashlib.sha256(raw).digest()
        manifest = image.manifest()
        assert manifest.digest(1) == FREE_BLOCK_DIGEST
        assert manifest.digest(2) == hashlib.sha256(blocks[2]).digest()
        assert manifest.root == manifest_root(10, {i: hashlib.sha256(b).digest()
                                                   for i, b in blocks.items()})
        assert not image.signed and image.signature() is None


def test_a_signed_image_verifies_and_an_altered_signature_does_not(
        tmp_path: Path, blocks: dict[int, bytes]) -> None:
    path = tmp_path / "signed.mci"
    write_image(path, blocks, 10 * BLOCK, SIGNER)
    with PreparedImage(str(path)) as image:
        assert image.signed and image.signature_valid()
        assert image.signature()[0] == SIGNER.public_key  # type: ignore[index]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(data)
    with PreparedImage(str(path)) as image:
        assert not image.signature_valid()


def test_an_unfinished_capture_is_never_an_image(tmp_path: Path) -> None:
    path = tmp_path / "golden.mci"
    writer = ImageWriter(str(path), BLOCK, 4 * BLOCK)
    writer.append(0, BlockKind.RAW, b"x" * 100, bytes(16), bytes(32))
    assert not path.exists()
    with pytest.raises(ImageFormatError, match="unfinished capture"):
        PreparedImage(writer.partial)
    with pytest.raises(ImageFormatError, match="exists: another capture"):
        ImageWriter(str(path), BLOCK, 4 * BLOCK)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("damage", "sentence"), [
    (lambda d: d[: len(d) - 10], "cut short or appended to"),
    (lambda d: d + b"\0", "cut short or appended to"),
    (lambda d: d[:100], "cut short inside its header"),
    (lambda d: b"GIF89a" + d[6:], "not a prepared image"),
    (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "damaged header"),
    (lambda d: d[:-ENTRY.size] + bytes([d[-ENTRY.size] ^ 1]) + d[-ENTRY.size + 1:],
     "altered or damaged"),
])
def test_a_truncated_or_tampered_image_is_refused(tmp_path: Path, blocks: dict[int, bytes],
                                                  damage: object, sentence: str) -> None:
    path = tmp_path / "golden.mci"
    write_image(path, blocks, 10 * BLOCK)
    assert callable(damage)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ImageFormatError, match=sentence):
        PreparedImage(str(path))


def test_a_damaged_block_payload_fails_its_own_check(tmp_path: Path,
                                                     blocks: dict[int, bytes]) -> None:
    """The header and index hold; the block's own digest catches it when it is decoded."""
    from protocol.blockcodec import BlockCorrupt, BlockDecoder

    path = tmp_path / "golden.mci"
    write_image(path, blocks, 10 * BLOCK)
    with PreparedImage(str(path)) as image:
        entry = image.entry(2)
    assert entry is not None and entry.offset >= HEADER_SIZE
    data = bytearray(path.read_bytes())
    data[entry.offset + 500] ^= 0xFF
    path.write_bytes(data)
    with PreparedImage(str(path)) as image, pytest.raises(BlockCorrupt):
        BlockDecoder().decode(entry.kind, image.read_payload(entry), BLOCK)


def test_the_manifest_root_is_over_every_block_of_the_disk() -> None:
    digests = {1: b"\x11" * 32}
    expected = Manifest(FREE_BLOCK_DIGEST + b"\x11" * 32 + FREE_BLOCK_DIGEST).root
    assert manifest_root(3, digests) == expected
