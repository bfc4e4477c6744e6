"""The stick's RAM disk, packed from a small tree in tmp_path with the real cpio and zstd and
read back with them: every name, owner root, modes and symlinks kept, one tree one image."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from stick.build.initramfs import install_init, install_init_dirs, pack, unpacked_size

pytestmark = pytest.mark.skipif(
    shutil.which("cpio") is None or shutil.which("zstd") is None,
    reason="needs cpio and zstd (apt-get install cpio zstd)")
as_root = pytest.mark.skipif(os.geteuid() != 0,
                             reason="/dev/console is a device node: only root makes one")


def small_tree(root: Path) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/python3/dist-packages/stick").mkdir(parents=True)
    (root / "usr/bin/busybox").write_bytes(b"\x7fELF" + bytes(1000))
    (root / "usr/bin/busybox").chmod(0o755)
    (root / "usr/lib/python3/dist-packages/stick/__init__.py").write_text('"""stick"""\n')
    (root / "bin").symlink_to("usr/bin")
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("mcastd-stick\n")
    (root / "etc/shadow").write_text("root:*:1::::::\n")
    (root / "etc/shadow").chmod(0o640)
    (root / "init").write_text("#!/bin/sh\nexec /sbin/agent\n")
    (root / "init").chmod(0o755)
    return root


def listing(image: Path) -> list[list[str]]:
    """``cpio -itv`` of the zstd-compressed archive: mode, links, owner, group, ..., name."""
    data = subprocess.run(["zstd", "-dc", str(image)], capture_output=True, check=True).stdout
    out = subprocess.run(["cpio", "-itv", "--quiet"], input=data, capture_output=True,
                         check=True).stdout.decode()
    return [line.split() for line in out.splitlines()]


def modes(rows: list[list[str]]) -> dict[str, str]:
    """name → mode; a symlink's row ends "name -> target", a device's has "major, minor"."""
    return {(row[-3] if row[-2] == "->" else row[-1]): row[0] for row in rows}


def test_every_file_is_in_the_archive_owned_by_root(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "root")
    image = tmp_path / "initrd.img"
    pack(root, image, level=3)
    rows = listing(image)
    names = list(modes(rows))
    assert names == [".", "bin", "etc", "etc/hostname", "etc/shadow", "init", "usr",
                     "usr/bin", "usr/bin/busybox", "usr/lib", "usr/lib/python3",
                     "usr/lib/python3/dist-packages", "usr/lib/python3/dist-packages/stick",
                     "usr/lib/python3/dist-packages/stick/__init__.py"]
    assert {(row[2], row[3]) for row in rows} == {("root", "root")}
    mode = modes(rows)
    assert mode["init"] == "-rwxr-xr-x"
    assert mode["usr/bin/busybox"] == "-rwxr-xr-x"
    assert mode["etc/shadow"] == "-rw-r-----"
    assert mode["usr/bin"].startswith("d")
    assert mode["bin"].startswith("l") and rows[names.index("bin")][-1] == "usr/bin"


def test_the_archive_unpacks_to_the_same_files(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "root")
    image = tmp_path / "initrd.img"
    pack(root, image, level=1)
    out = tmp_path / "unpacked"
    out.mkdir()
    data = subprocess.run(["zstd", "-dc", str(image)], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=data, cwd=out,
                   check=True)
    for path in root.rglob("*"):
        twin = out / path.relative_to(root)
        if path.is_symlink():
            assert os.readlink(twin) == os.readlink(path)
        elif path.is_file():
            assert twin.read_bytes() == path.read_bytes()
    assert unpacked_size(root) == unpacked_size(out)


def test_one_tree_gives_one_image(tmp_path: Path) -> None:
    """A copy of the tree elsewhere (other inodes, other directory order) packs the same."""
    root = small_tree(tmp_path / "root")
    copy = tmp_path / "elsewhere/root"
    shutil.copytree(root, copy, symlinks=True)  # copy2: contents, modes and mtimes
    for path in sorted(root.rglob("*"), reverse=True):  # directories' mtimes too
        os.utime(copy / path.relative_to(root), ns=(0, path.lstat().st_mtime_ns),
                 follow_symlinks=False)
    os.utime(copy, ns=(0, root.stat().st_mtime_ns))
    pack(root, tmp_path / "a.img", level=3)
    pack(copy, tmp_path / "b.img", level=3)
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()


def test_names_with_spaces_and_newlines_survive(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "root")
    (root / "etc/a name\nwith a newline").write_text("x")
    pack(root, tmp_path / "initrd.img", level=1)
    data = subprocess.run(["zstd", "-dc", str(tmp_path / "initrd.img")], capture_output=True,
                          check=True).stdout
    out = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True,
                         check=True).stdout.decode()
    assert "etc/a name\nwith a newline\n" in out


def test_unpacked_size_counts_files_not_links(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "root")
    expected = 1004 + len('"""stick"""\n') + len("mcastd-stick\n") + len(
        "root:*:1::::::\n") + len("#!/bin/sh\nexec /sbin/agent\n")
    assert unpacked_size(root) == expected


@as_root
def test_install_init_puts_init_and_the_console_in_place(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    install_init(root)
    init = root / "init"
    assert init.read_bytes().startswith(b"#!")
    assert stat.S_IMODE(init.stat().st_mode) == 0o755
    for directory in ("proc", "sys", "dev", "run", "tmp", "stick"):
        assert (root / directory).is_dir()
    console = (root / "dev/console").lstat()
    assert stat.S_ISCHR(console.st_mode)
    assert (os.major(console.st_rdev), os.minor(console.st_rdev)) == (5, 1)
    assert stat.S_IMODE(console.st_mode) == 0o600
    install_init_dirs(root)  # again: what is there stays
    pack(root, tmp_path / "initrd.img", level=1)
    mode = modes(listing(tmp_path / "initrd.img"))
    assert mode["dev/console"] == "crw-------"
    assert mode["init"] == "-rwxr-xr-x"
