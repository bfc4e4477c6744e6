"""`mcastd capture`, `mcastd image info` and `mcastd image verify` as an admin runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from disk.imagefile import PreparedImage
from lab.disks import PartSpec, build_disk, disks_available
from mcastd.cli import main

MiB = 1 << 20
pytestmark = [pytest.mark.disks, pytest.mark.skipif(disks_available() is not None,
                                                    reason=disks_available() or "")]


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("capture")
    disk = build_disk(tmp / "golden.img", 112 * MiB,
                      [PartSpec("vfat", 40 * MiB, (Path("/usr/share/doc/bash"),), "EFI"),
                       PartSpec("ext4", 0, (Path("/usr/share/doc/bash"),), "root")])
    image = tmp / "golden.mci"
    assert main(["capture", str(disk.path), str(image), "--note", "spring", "--json"]) == 0
    return disk.path, image


def last_json(out: str) -> dict[str, object]:
    result = json.loads(out.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def test_capture_reports_what_it_kept(captured: tuple[Path, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    disk, image = captured
    assert image.exists()
    with PreparedImage(str(image)) as prepared:
        assert prepared.meta["note"] == "spring"
        assert prepared.header.disk_size == disk.stat().st_size


def test_info_shows_the_partitions_and_sizes(captured: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _disk, image = captured
    assert main(["image", "info", str(image)]) == 0
    text = capsys.readouterr().out
    assert "EFI system" in text and "vfat" in text and "ext4" in text and "spring" in text
    assert main(["image", "info", str(image), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["disk_size"] == 112 * MiB and info["used_bytes"] < 40 * MiB
    assert [p["filesystem"] for p in info["partitions"]] == ["vfat", "ext4"]


def test_verify_passes_a_sound_image_and_names_a_damaged_block(
        captured: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _disk, image = captured
    assert main(["image", "verify", str(image), "--json"]) == 0
    assert last_json(capsys.readouterr().out)["ok"] is True
    damaged = tmp_path / "damaged.mci"
    data = bytearray(image.read_bytes())
    with PreparedImage(str(image)) as prepared:
        entry = next(e for e in prepared.entries if e.length > 1000)
    data[entry.offset + 600] ^= 0x55
    damaged.write_bytes(data)
    assert main(["image", "verify", str(damaged), "--json"]) == 1
    final = last_json(capsys.readouterr().out)
    assert final["ok"] is False and f"block {entry.index}" in str(final["message"])


def test_a_truncated_image_is_refused_by_info_and_verify(
        captured: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _disk, image = captured
    cut = tmp_path / "cut.mci"
    cut.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    for argv in (["image", "info", str(cut)], ["image", "verify", str(cut)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "was cut short" in err and err.count("\n") == 1


def test_capture_refuses_a_missing_source_in_one_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capture", str(tmp_path / "none.img"), str(tmp_path / "x.mci")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
