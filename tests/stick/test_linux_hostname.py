"""The Linux hook: etc/hosts edited as a pure function, then real ext4 filesystems on loop
devices named by the hook as the agent runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stick.agent.hooks import Outcome, run_hooks
from stick.hooks.linux_hostname import is_linux_root, linux_roots, name_root, set_hosts_name
from stick.hooks.mounting import HookError
from tests.stick.loopdisk import (
    ROOT,
    hook_env,
    loop_device,
    make_ext4,
    run,
    run_hook,
    skip_unless,
)

DEBIAN_HOSTS = ("127.0.0.1\tlocalhost\n127.0.1.1\tgolden.school.lan\tgolden\n\n"
                "# The following lines are desirable for IPv6 capable hosts\n"
                "::1     localhost ip6-localhost ip6-loopback\n"
                "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n")
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
MODULE = "stick.hooks.linux_hostname"


def test_the_debian_line_is_replaced_and_the_rest_kept() -> None:
    assert set_hosts_name(DEBIAN_HOSTS, "pc01") == DEBIAN_HOSTS.replace(
        "127.0.1.1\tgolden.school.lan\tgolden\n", "127.0.1.1\tpc01\n")


def test_without_the_line_it_goes_after_localhost() -> None:
    hosts = "# static table\n127.0.0.1 localhost.localdomain localhost\n::1 localhost\n"
    assert set_hosts_name(hosts, "pc01") == (
        "# static table\n127.0.0.1 localhost.localdomain localhost\n127.0.1.1\tpc01\n"
        "::1 localhost\n")


def test_without_localhost_it_goes_first() -> None:
    assert set_hosts_name("10.0.0.1 server\n", "pc01") == "127.0.1.1\tpc01\n10.0.0.1 server\n"
    assert set_hosts_name("", "pc01") == "127.0.1.1\tpc01\n"


def test_a_last_line_without_its_end() -> None:
    assert set_hosts_name("127.0.0.1 localhost", "pc01") == (
        "127.0.0.1 localhost\n127.0.1.1\tpc01\n")
    assert set_hosts_name("127.0.1.1 old", "pc01") == "127.0.1.1\tpc01\n"


def test_further_lines_and_comments() -> None:
    hosts = ("127.0.0.1 localhost\n127.0.1.1 old # set by the installer\n"
             "#127.0.1.1 commented\n 127.0.1.1\tagain\n")
    assert set_hosts_name(hosts, "pc01") == (
        "127.0.0.1 localhost\n127.0.1.1\tpc01\n#127.0.1.1 commented\n")


def test_crlf_stays_crlf() -> None:
    assert set_hosts_name("127.0.0.1 localhost\r\n", "pc01") == (
        "127.0.0.1 localhost\r\n127.0.1.1\tpc01\r\n")


def test_setting_the_same_name_twice_changes_nothing() -> None:
    once = set_hosts_name(DEBIAN_HOSTS, "pc01")
    assert set_hosts_name(once, "pc01") == once


def test_linux_roots(tmp_path: Path) -> None:
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "os-release").write_text(OS_RELEASE)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").symlink_to("/usr/lib/os-release-of-the-stick")
    assert is_linux_root(tmp_path)  # a dangling absolute link counts: it names a system
    btrfs = tmp_path / "btrfs"
    (btrfs / "@" / "etc").mkdir(parents=True)
    (btrfs / "@" / "etc" / "os-release").write_text(OS_RELEASE)
    (btrfs / "@home" / "ann").mkdir(parents=True)
    assert linux_roots(btrfs, "btrfs") == [btrfs / "@"]
    assert linux_roots(btrfs, "ext4") == []


def test_a_root_is_named_in_its_own_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_text(DEBIAN_HOSTS)
    name_root(root, "pc01")
    assert (root / "etc" / "hostname").read_text() == "pc01\n"
    assert (root / "etc" / "hosts").read_text() == set_hosts_name(DEBIAN_HOSTS, "pc01")


def test_a_link_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    stick_hosts = tmp_path / "the-sticks-own-hosts"  # as /etc/hosts -> /etc/static/hosts
    stick_hosts.write_text("127.0.0.1 localhost\n")
    (root / "etc" / "hosts").symlink_to(stick_hosts)
    with pytest.raises(HookError, match=r"^hosts is a symlink, not followed outside its "):
        name_root(root, "pc01")
    assert stick_hosts.read_text() == "127.0.0.1 localhost\n"


def test_a_root_without_etc(tmp_path: Path) -> None:
    (tmp_path / "usr").mkdir()
    (tmp_path / "etc").symlink_to(tmp_path / "usr")
    with pytest.raises(HookError, match=r"^it has no etc directory of its own\.$"):
        name_root(tmp_path, "pc01")


@pytest.mark.parametrize("name", ["", "   "])
def test_no_name_nothing_to_do(name: str) -> None:
    done = run_hook(MODULE, hook_env("/dev/nonexistent", name=name))
    assert (done.returncode, done.stdout) == (
        0, "no name for MAC 3c:52:82:1a:2b:3c, nothing to do.\n")


def test_a_bad_name_is_refused() -> None:
    done = run_hook(MODULE, hook_env("/dev/nonexistent", name="pc_01"))
    assert done.returncode == 1
    assert done.stdout == ("the name 'pc_01' is not a host name: only letters, digits and "
                           "'-', not first or last; no system was named.\n")


def debugfs_cat(image: Path, path: str) -> str:
    return run(["debugfs", "-R", f"cat {path}", str(image)])


@pytest.mark.disks
@skip_unless("mkfs.ext4", "debugfs", "e2fsck")
def test_a_debian_root_is_named(tmp_path: Path) -> None:
    image = make_ext4(tmp_path / "root.ext4", {"etc/os-release": OS_RELEASE,
                                               "etc/hosts": DEBIAN_HOSTS,
                                               "etc/hostname": "golden\n",
                                               "home/ann/notes.txt": "keep me\n"})
    with loop_device(image) as device:
        done = run_hook(MODULE, hook_env(device, device))
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout == (f"the Linux root on {device} is now named pc01 "
                               "(etc/hostname, etc/hosts).\n")
    assert debugfs_cat(image, "/etc/hostname") == "pc01\n"
    assert debugfs_cat(image, "/etc/hosts") == set_hosts_name(DEBIAN_HOSTS, "pc01")
    assert debugfs_cat(image, "/home/ann/notes.txt") == "keep me\n"
    run(["e2fsck", "-fn", str(image)])


@pytest.mark.disks
@skip_unless("mkfs.ext4", "debugfs", "e2fsck")
def test_only_the_root_among_the_partitions_is_named(tmp_path: Path) -> None:
    data = make_ext4(tmp_path / "data.ext4", {"etc/hosts": "127.0.0.1 localhost\n"})
    root = make_ext4(tmp_path / "root.ext4", {"usr/lib/os-release": OS_RELEASE,
                                              "etc/fstab": "# none\n"})
    blank = tmp_path / "swap"
    blank.write_bytes(bytes(1 << 20))
    with loop_device(data) as first, loop_device(blank) as second, \
            loop_device(root) as third:
        done = run_hook(MODULE, hook_env("/dev/whole-disk", f"{first} {second} {third}"))
        assert done.returncode == 0, done.stdout + done.stderr
    assert debugfs_cat(root, "/etc/hostname") == "pc01\n"
    # No etc/hosts before: one with localhost and the name.
    assert debugfs_cat(root, "/etc/hosts") == "127.0.0.1\tlocalhost\n127.0.1.1\tpc01\n"
    assert debugfs_cat(data, "/etc/hosts") == "127.0.0.1 localhost\n"
    for image in (data, root):
        run(["e2fsck", "-fn", str(image)])


@pytest.mark.disks
@skip_unless("mkfs.ext4")
def test_a_disk_without_a_linux_root_is_nothing_to_do(tmp_path: Path) -> None:
    data = make_ext4(tmp_path / "data.ext4", {"photos/a.txt": "x\n"})
    with loop_device(data) as device:
        done = run_hook(MODULE, hook_env(device))  # no partitions: the target itself
    assert done.returncode == 0  # a Windows image: the Windows hook names it
    assert done.stdout == f"no Linux root filesystem on {device}: nothing to name.\n"


@pytest.mark.disks
@skip_unless("mkfs.ext4", "debugfs", "e2fsck")
def test_the_launcher_names_the_root_through_the_runner(tmp_path: Path) -> None:
    """The whole chain: the agent's runner, the launcher the stick carries, the hook."""
    hooks_dir = tmp_path / "post-deploy"
    hooks_dir.mkdir()
    launcher = (ROOT / "stick" / "hooks" / "post_deploy" / "10-linux-hostname").read_text()
    assert launcher.startswith("#!/usr/bin/python3\n")
    # This checkout's interpreter, which has the hook's dependencies (none) and finds it.
    (hooks_dir / "10-linux-hostname").write_text(
        launcher.replace("/usr/bin/python3", sys.executable, 1))
    (hooks_dir / "10-linux-hostname").chmod(0o755)
    shutil.copy(ROOT / "README.md", hooks_dir / "README.txt")
    image = make_ext4(tmp_path / "root.ext4", {"etc/os-release": OS_RELEASE})
    lines: list[str] = []
    with loop_device(image) as device:
        env = {**hook_env(device, device), "PYTHONPATH": str(ROOT)}
        results = run_hooks(hooks_dir, env, lines.append)
    assert [(r.name, r.outcome) for r in results] == [
        ("10-linux-hostname", Outcome.OK), ("README.txt", Outcome.SKIPPED)]
    assert (f"10-linux-hostname: the Linux root on {device} is now named pc01 "
            "(etc/hostname, etc/hosts).") in lines
    assert debugfs_cat(image, "/etc/hostname") == "pc01\n"
    assert subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True).returncode == 0
