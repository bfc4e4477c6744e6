"""The hooks' shared helpers that need no root: their environment, case-blind paths on NTFS,
and files touched without following a symlink out of the written filesystem."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stick.hooks.mounting import (
    HookError,
    filesystem_type,
    find_casefold,
    read_file,
    target_from_env,
    write_file,
)


def test_the_devices_are_the_partitions_or_else_the_target() -> None:
    target = target_from_env({"MCASTD_TARGET": "/dev/sda", "MCASTD_PARTITIONS": "/dev/sda1 "
                              "/dev/sda2", "MCASTD_MAC": "3c:52:82:1a:2b:3c",
                              "MCASTD_HOSTNAME": "pc01\n"})
    assert target.device == "/dev/sda"
    assert target.devices == ["/dev/sda1", "/dev/sda2"]
    assert (target.mac, target.hostname) == ("3c:52:82:1a:2b:3c", "pc01")
    assert target_from_env({"MCASTD_TARGET": "/dev/sda", "MCASTD_PARTITIONS": ""}).devices == [
        "/dev/sda"]
    assert target_from_env({}).devices == []
    assert target_from_env({}).hostname == ""


def test_find_casefold(tmp_path: Path) -> None:
    (tmp_path / "WINDOWS" / "panther").mkdir(parents=True)
    (tmp_path / "WINDOWS" / "panther" / "Unattend.XML").write_text("x")
    assert find_casefold(tmp_path, "Windows/Panther/unattend.xml") == (
        tmp_path / "WINDOWS" / "panther" / "Unattend.XML")
    assert find_casefold(tmp_path, "Windows/System32/unattend.xml") is None
    assert find_casefold(tmp_path / "nothing", "Windows") is None


def test_find_casefold_prefers_the_exact_name(tmp_path: Path) -> None:
    (tmp_path / "Windows").mkdir()
    (tmp_path / "WINDOWS").mkdir()  # POSIX names on NTFS may differ only in case
    assert find_casefold(tmp_path, "Windows") == tmp_path / "Windows"
    assert find_casefold(tmp_path, "windows") == tmp_path / "WINDOWS"


def test_files_are_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("old contents, longer than the new\n")
    path.chmod(0o600)
    inode = path.stat().st_ino
    write_file(path, b"new\n")
    assert read_file(path) == b"new\n"
    assert (path.stat().st_ino, path.stat().st_mode & 0o777) == (inode, 0o600)
    write_file(tmp_path / "hostname", b"pc01\n")
    assert (tmp_path / "hostname").stat().st_mode & 0o777 == 0o644 & ~_umask()
    assert read_file(tmp_path / "missing") is None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_symlink_out_of_the_filesystem_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "stick-etc-hosts"
    outside.write_text("the stick's own\n")
    link = tmp_path / "hosts"
    link.symlink_to(outside)
    with pytest.raises(HookError, match=r"^hosts is a symlink, not followed outside its "
                                        r"filesystem\.$"):
        write_file(link, b"x")
    with pytest.raises(HookError, match="is a symlink"):
        read_file(link)
    assert outside.read_text() == "the stick's own\n"


@pytest.mark.skipif(shutil.which("blkid") is None, reason="needs blkid (util-linux)")
def test_a_file_that_is_not_a_filesystem_has_no_type(tmp_path: Path) -> None:
    blank = tmp_path / "blank"
    blank.write_bytes(bytes(65536))
    assert filesystem_type(str(blank)) == ""
    assert filesystem_type(str(tmp_path / "missing")) == ""


def test_sigterm_leaves_through_finally(tmp_path: Path) -> None:
    """A hook the agent stops still unmounts: SIGTERM becomes SystemExit."""
    marker = tmp_path / "unmounted"
    program = ("import os, signal, sys\nfrom stick.hooks.mounting import unmount_on_sigterm\n"
               "unmount_on_sigterm()\ntry:\n    os.kill(os.getpid(), signal.SIGTERM)\n"
               f"finally:\n    open({str(marker)!r}, 'w').close()\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, check=False,
                          env={"PYTHONPATH": str(root)})
    assert done.returncode == 128 + 15
    assert marker.exists()
