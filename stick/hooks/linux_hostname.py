"""Post-deploy hook: give the Linux system just written to this laptop its host name.

Every Linux root filesystem on the target (one holding ``etc/os-release``) gets
``etc/hostname`` and the Debian-style ``127.0.1.1 NAME`` line of ``etc/hosts``. Exit 0 when
at least one was named or there is no name for this laptop, 1 otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

from stick.agent.hostnames import hostname_problem
from stick.hooks.mounting import (
    HookError,
    device_failed,
    filesystem_type,
    mounted,
    read_file,
    say,
    target_from_env,
    unmount_on_sigterm,
    write_file,
)

LINUX_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "btrfs", "xfs"})
LOOPBACK_NAME = "127.0.1.1"


def set_hosts_name(hosts: str, name: str) -> str:
    """``hosts`` with its ``127.0.1.1`` line naming ``name`` alone: the first such line is
    replaced and any further ones dropped; without one it goes after the ``127.0.0.1`` lines
    (else first). Everything else, and the file's line ends, stay as they are."""
    lines = hosts.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    entry = f"{LOOPBACK_NAME}\t{name}{newline}"
    out: list[str] = []
    placed = False
    for line in lines:
        if line.split("#", 1)[0].split()[:1] == [LOOPBACK_NAME]:
            if not placed:
                out.append(entry)
                placed = True
            continue
        out.append(line)
    if not placed:
        after = [i for i, line in enumerate(out)
                 if line.split("#", 1)[0].split()[:1] == ["127.0.0.1"]]
        at = after[-1] + 1 if after else 0
        if at and not out[at - 1].endswith("\n"):
            out[at - 1] += newline
        out.insert(at, entry)
    return "".join(out)


def is_linux_root(root: Path) -> bool:
    # lexists: etc/os-release is often a link to ../usr/lib/os-release, or an absolute one.
    return (os.path.lexists(root / "etc" / "os-release")
            or os.path.lexists(root / "usr" / "lib" / "os-release"))


def linux_roots(mountpoint: Path, fstype: str) -> list[Path]:
    """The system roots in a mounted filesystem: itself, or for btrfs also its top-level
    subvolumes (Ubuntu's ``@``, Fedora's ``root``)."""
    candidates = [mountpoint]
    if fstype == "btrfs":
        candidates += sorted(p for p in mountpoint.iterdir()
                             if p.is_dir() and not p.is_symlink())
    return [root for root in candidates if is_linux_root(root)]


def name_root(root: Path, name: str) -> None:
    etc = root / "etc"
    if etc.is_symlink() or not etc.is_dir():
        raise HookError("it has no etc directory of its own.")
    write_file(etc / "hostname", f"{name}\n".encode())
    hosts = read_file(etc / "hosts")
    # A system without etc/hosts would lose localhost with only our line in a new one.
    old = ("127.0.0.1\tlocalhost\n" if hosts is None
           else hosts.decode("utf-8", errors="surrogateescape"))
    write_file(etc / "hosts", set_hosts_name(old, name).encode("utf-8", errors="surrogateescape"))


def name_filesystem(device: str, name: str) -> int:
    """How many Linux roots on ``device`` were named (it may hold none, or be no Linux
    filesystem at all)."""
    fstype = filesystem_type(device)
    if fstype not in LINUX_FILESYSTEMS:
        return 0
    named = 0
    with mounted(device, fstype) as mountpoint:
        for root in linux_roots(mountpoint, fstype):
            where = device if root == mountpoint else f"{device} ({root.name})"
            try:
                name_root(root, name)
            except HookError as e:
                say(f"the Linux root on {where} was not named: {e}")
                continue
            say(f"the Linux root on {where} is now named {name} (etc/hostname, etc/hosts).")
            named += 1
    return named


def main() -> int:
    unmount_on_sigterm()
    target = target_from_env()
    if not target.hostname:
        say(f"no name for MAC {target.mac or '(unknown)'}, nothing to do.")
        return 0
    problem = hostname_problem(target.hostname)
    if problem is not None:
        say(f"{problem}; no system was named.")
        return 1
    if not target.devices:
        say("MCASTD_TARGET is not set: there is no disk to look at.")
        return 1
    named = 0
    for device in target.devices:
        try:
            named += name_filesystem(device, target.hostname)
        except HookError as e:
            say(str(e))
        except OSError as e:
            say(device_failed(device, e))
    if not named:  # a Windows image: the other hook's business, not a failure
        say(f"no Linux root filesystem on {target.device or target.devices[0]}: nothing to "
            "name.")
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
