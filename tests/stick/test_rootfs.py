"""The stick's userland without mmdebstrap: pruning a fake Debian tree in tmp_path, this
machine's apt sources and release, and bytecode that stays valid whatever mtimes it gets."""

from __future__ import annotations

import importlib.util
import marshal
import os
import stat
import sys
from pathlib import Path

import pytest

from stick.build.rootfs import PRUNED, host_apt_sources, host_suite, precompile, prune
from stick.build.tools import BuildError

KEPT = ["usr/bin/python3.11", "usr/lib/python3.11/json/__init__.py", "usr/bin/busybox",
        "usr/lib/x86_64-linux-gnu/libc.so.6", "usr/share/perl-not-really/x", "etc/hostname",
        "usr/lib/python3.11/unittestish.py", "usr/sbin/sgdisk"]
GONE = ["usr/bin/perl", "usr/bin/perl5.36.0", "usr/lib/x86_64-linux-gnu/perl/5.36/Config.pm",
        "usr/lib/x86_64-linux-gnu/libperl.so.5.36", "usr/share/perl5/Debconf/Db.pm",
        "usr/bin/apt-get", "usr/lib/apt/methods/http", "var/lib/apt/lists/lock",
        "var/cache/apt/pkgcache.bin", "usr/share/zoneinfo/Europe/Paris",
        "usr/lib/x86_64-linux-gnu/libicuuc.so.72", "usr/lib/python3.11/unittest/case.py",
        "usr/lib/python3.11/ensurepip/__init__.py", "usr/share/common-licenses/GPL-2"]


def fake_debian(root: Path) -> Path:
    for name in KEPT + GONE:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "usr/lib/x86_64-linux-gnu/libapt-pkg.so.6.0").symlink_to("libapt-pkg.so.6.0.0")
    (root / "dev/pts").mkdir(parents=True)
    (root / "dev/fd").symlink_to("/proc/self/fd")
    for name, minor in (("null", 3), ("zero", 5), ("urandom", 9)):
        if os.geteuid() == 0:
            os.mknod(root / "dev" / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        else:  # only root makes device nodes; a plain file stands in for one
            (root / "dev" / name).write_text("")
    return root


def test_prune_empties_dev_and_removes_what_the_stick_never_uses(tmp_path: Path) -> None:
    root = fake_debian(tmp_path / "root")
    prune(root)
    assert list((root / "dev").iterdir()) == []
    assert (root / "dev").is_dir()  # devtmpfs is mounted here
    for name in GONE:
        assert not (root / name).exists(), name
    assert not (root / "usr/lib/x86_64-linux-gnu/libapt-pkg.so.6.0").is_symlink()
    for name in KEPT:
        assert (root / name).read_text() == name


def test_prune_leaves_no_empty_pruned_directory_behind(tmp_path: Path) -> None:
    root = fake_debian(tmp_path / "root")
    prune(root)
    for pattern in PRUNED:
        assert list(root.glob(pattern)) == [], pattern


def test_prune_again_finds_nothing_to_do(tmp_path: Path) -> None:
    root = fake_debian(tmp_path / "root")
    prune(root)
    prune(root)
    assert (root / KEPT[0]).exists()


def test_this_machines_apt_sources_are_debian_files_that_exist() -> None:
    sources = host_apt_sources()
    if not sources:
        pytest.skip("this machine has no Debian apt source (only a Debian host builds sticks)")
    for source in sources:
        assert source.is_file() and source.suffix in (".list", ".sources")
        assert source.parent in (Path("/etc/apt"), Path("/etc/apt/sources.list.d"))
        assert "debian" in source.read_text()


def test_this_machines_release_is_its_codename() -> None:
    try:
        fields = dict(line.split("=", 1) for line in
                      Path("/etc/os-release").read_text().splitlines() if "=" in line)
    except OSError:
        pytest.skip("this machine has no /etc/os-release")
    codename = fields.get("VERSION_CODENAME", "").strip('"')
    if not codename:
        with pytest.raises(BuildError, match="VERSION_CODENAME"):
            host_suite()
        return
    assert host_suite() == codename
    assert codename.isalpha() and codename.islower()


def test_precompiled_modules_are_unchecked_hash_pycs_with_the_laptops_paths(
        tmp_path: Path) -> None:
    package = tmp_path / "root/usr/lib/python3.11/mcastdtest"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("def where():\n    return __file__\n")
    precompile(tmp_path / "root", "usr/lib/python3.11")
    tag = sys.implementation.cache_tag
    pyc = package / "__pycache__" / f"mod.{tag}.pyc"
    data = pyc.read_bytes()
    assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, source never checked
    assert data[:4] == importlib.util.MAGIC_NUMBER
    code = marshal.loads(data[16:])
    assert code.co_filename == "/usr/lib/python3.11/mcastdtest/mod.py"
    assert (package / "__pycache__" / f"__init__.{tag}.pyc").is_file()


def test_a_module_that_does_not_compile_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root/usr/lib/python3.11").mkdir(parents=True)
    (tmp_path / "root/usr/lib/python3.11/broken.py").write_text("def (:\n")
    with pytest.raises(BuildError, match=r"^cannot compile the Python modules under "
                                         r"/usr/lib/python3\.11\.$"):
        precompile(tmp_path / "root", "usr/lib/python3.11")
