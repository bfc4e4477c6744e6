"""What both hooks do around their edit: read the environment the agent gives them, probe
and mount the target's filesystems, and touch files inside them without ever leaving them.

The written filesystem is someone else's system mounted on the stick: a symlink in it such as
``etc/hosts -> /etc/static/hosts`` points into the stick itself, so files are opened with
``O_NOFOLLOW`` and written in place (keeping their inode, mode, owner, ACLs and SELinux label).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType


class HookError(Exception):
    """One sentence about why a filesystem could not be handled; the hook goes on."""


@dataclass(frozen=True)
class Target:
    device: str  # the whole disk the image was written to
    devices: list[str]  # its partitions, or the device itself when it has none
    mac: str
    hostname: str  # "" when hostnames.csv has no name for this laptop


def target_from_env(env: dict[str, str] | None = None) -> Target:
    env = dict(os.environ if env is None else env)
    device = env.get("MCASTD_TARGET", "")
    partitions = env.get("MCASTD_PARTITIONS", "").split()
    devices = partitions or ([device] if device else [])
    return Target(device, devices, env.get("MCASTD_MAC", ""),
                  env.get("MCASTD_HOSTNAME", "").strip())


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def unmount_on_sigterm() -> None:
    """The agent stops a hook that runs too long with SIGTERM: exit through the ``finally``
    of :func:`mounted`, so the laptop's filesystem is not left mounted half-edited."""
    signal.signal(signal.SIGTERM, _terminated)


def device_failed(device: str, e: OSError) -> str:
    return f"{device} could not be handled: {e.strerror or e}."


def say(sentence: str) -> None:
    print(sentence, flush=True)  # the agent logs the hook's output line by line


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as e:
        raise HookError(f"{argv[0]} cannot be run: {e.strerror}.") from e


def _why(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout).strip().replace("\n", " ")
    return text or f"exit status {done.returncode}"


def filesystem_type(device: str) -> str:
    """``ext4``, ``ntfs``… as blkid sees it; "" for none. No cache: the disk was just written."""
    done = _run(["blkid", "-c", "/dev/null", "-o", "value", "-s", "TYPE", device])
    return done.stdout.strip() if done.returncode == 0 else ""


@contextlib.contextmanager
def mounted(device: str, fstype: str) -> Iterator[Path]:
    """``device`` mounted read-write on a fresh directory, unmounted and synced afterwards."""
    mountpoint = Path(tempfile.mkdtemp(prefix="mcastd-hook-"))
    if fstype == "ntfs":
        argv = ["mount", "-t", "ntfs-3g", device, str(mountpoint)]  # FUSE: no kernel NTFS
    else:
        # An image's XFS carries its golden disk's UUID; the kernel refuses a second mount.
        options = ["-o", "nouuid"] if fstype == "xfs" else []
        argv = ["mount", "-t", fstype, *options, device, str(mountpoint)]
    try:
        done = _run(argv)
        if done.returncode != 0:
            raise HookError(f"{device} ({fstype}) cannot be mounted: {_why(done)}.")
        try:
            yield mountpoint
        finally:
            os.sync()
            done = _run(["umount", str(mountpoint)])
            if done.returncode != 0:
                print(f"{device} cannot be unmounted from {mountpoint}: {_why(done)}.",
                      file=sys.stderr, flush=True)
            os.sync()
    finally:
        with contextlib.suppress(OSError):  # still mounted if umount failed: leave it
            mountpoint.rmdir()


def find_casefold(root: Path, relative: str) -> Path | None:
    """``root/relative`` matched name by name without regard to case (ntfs-3g is case
    sensitive, Windows is not: ``Windows/Panther/Unattend.xml`` is the same file)."""
    here = root
    for part in relative.split("/"):
        try:
            names = sorted(os.listdir(here))
        except OSError:
            return None
        match = next((n for n in names if n == part), None) or next(
            (n for n in names if n.casefold() == part.casefold()), None)
        if match is None:
            return None
        here = here / match
    return here


def _not_followed(path: Path, e: OSError) -> HookError:
    if e.errno == errno.ELOOP:
        return HookError(f"{path.name} is a symlink, not followed outside its filesystem.")
    return HookError(f"{path.name} cannot be opened: {e.strerror}.")


def read_file(path: Path) -> bytes | None:
    """The file's bytes, None if there is none; never through a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _not_followed(path, e) from e
    with os.fdopen(fd, "rb") as f:
        return f.read()


def write_file(path: Path, data: bytes) -> None:
    """Rewrite the file in place (created 0644 if missing); never through a symlink."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise _not_followed(path, e) from e
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
