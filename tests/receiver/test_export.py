"""`mcastd image export` / `mcast-receive --from-image`: a prepared image written to a file or
a larger disk with the laptops' own writer, without the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from disk.capture import capture
from disk.imagefile import PreparedImage
from disk.resize import verify_gpt
from disk.table import read_table
from lab.disks import (
    PartSpec,
    build_disk,
    disks_available,
    loop_device,
    partition_fsck,
    partition_tree,
    write_old_data,
)
from mcastd.cli import main as mcastd_main
from receiver.export import ExportError, export_image

MiB = 1 << 20
pytestmark = [pytest.mark.disks, pytest.mark.skipif(disks_available() is not None,
                                                    reason=disks_available() or "")]
SPECS = [PartSpec("vfat", 40 * MiB, (Path("/usr/share/doc/bash"),), "EFI"),
         PartSpec("ext4", 0, (Path("/usr/share/doc/bash"),), "root")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("export")
    golden = build_disk(tmp / "golden.img", 104 * MiB, SPECS)
    trees = {p.number: partition_tree(golden.path, p, s.fs)
             for p, s in zip(golden.table.partitions, SPECS, strict=True)}
    return Path(capture(str(golden.path), str(tmp / "golden.mci")).image), trees


def check_disk(path: Path, size: int, trees: dict[int, dict[str, str]]) -> None:
    assert verify_gpt(str(path)) == ""
    for part, spec in zip(read_table(str(path), size).partitions, SPECS, strict=True):
        assert partition_fsck(path, part, spec.fs)[0]
        assert partition_tree(path, part, spec.fs) == trees[part.number]


def test_export_to_a_file_leaves_the_free_space_as_holes(
        prepared: tuple[Path, dict[int, dict[str, str]]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    image, trees = prepared
    out = tmp_path / "disk.img"
    assert mcastd_main(["image", "export", str(image), str(out), "--json"]) == 0
    check_disk(out, 104 * MiB, trees)
    with PreparedImage(str(image)) as prepared_image:
        kept = len(prepared_image.entries)
    assert out.stat().st_blocks * 512 < (kept + 1) * MiB  # the rest is holes


def test_export_to_a_larger_disk_grows_it(prepared: tuple[Path, dict[int, dict[str, str]]],
                                          tmp_path: Path) -> None:
    image, trees = prepared
    backing = tmp_path / "laptop.disk"
    with open(backing, "wb") as f:
        write_old_data(f, 200 * MiB, seed=4)
    with loop_device(backing) as device:
        verified, discarded = export_image(str(image), device, grow=True)
    assert verified > 0 and discarded > 0
    check_disk(backing, 200 * MiB, trees)
    assert read_table(str(backing), 200 * MiB).partitions[-1].end > 198 * MiB


def test_a_damaged_image_stops_the_export_naming_the_block(
        prepared: tuple[Path, dict[int, dict[str, str]]], tmp_path: Path) -> None:
    image, _trees = prepared
    damaged = tmp_path / "damaged.mci"
    data = bytearray(image.read_bytes())
    with PreparedImage(str(image)) as prepared_image:
        entry = next(e for e in prepared_image.entries if e.length > 1000)
    data[entry.offset + 700] ^= 0x42
    damaged.write_bytes(data)
    with pytest.raises(ExportError, match=f"block {entry.index} of .* is damaged"):
        export_image(str(damaged), str(tmp_path / "out.img"))


def test_a_too_small_target_is_refused_naming_what_it_needs(
        prepared: tuple[Path, dict[int, dict[str, str]]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    image, _trees = prepared
    small = tmp_path / "small.disk"
    small.write_bytes(bytes(50 * MiB))
    with loop_device(small) as device:
        assert mcastd_main(["image", "export", str(image), device, "--json"]) == 1
    assert small.read_bytes() == bytes(50 * MiB)  # nothing written

