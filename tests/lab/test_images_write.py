"""write_image: big deterministic images, chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim import images
from netsim.images import make_image, parse_size, write_image


def test_write_image_is_deterministic_and_chunked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "CHUNK", 256 << 10)
    size = 3 * images.CHUNK + 12345
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    write_image(a, size, seed=7)
    write_image(b, size, seed=7)
    data = a.read_bytes()
    assert len(data) == size and data == b.read_bytes()
    assert data[: images.CHUNK] == make_image(images.CHUNK, 7 * 2**32, "disklike")
    assert data[-12345:] == make_image(12345, 7 * 2**32 + 3, "disklike")
    write_image(b, size, seed=8)
    assert b.read_bytes() != data


def test_cli_writes_the_asked_size(tmp_path: Path) -> None:
    images.main([str(tmp_path / "z.img"), "--size", "64K", "--kind", "zeros"])
    assert (tmp_path / "z.img").read_bytes() == bytes(64 << 10)


@pytest.mark.parametrize(("text", "size"), [("4096", 4096), ("64K", 65536), ("256M", 256 << 20),
                                            ("2g", 2 << 30), ("1MiB", 1 << 20)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_junk() -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size("12X")
