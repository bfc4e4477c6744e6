"""Running the stick's ``post-deploy/`` hooks once the image is verified on the laptop's disk.

Each hook is a file in that directory, run in name order with the target's facts in its
environment (see :func:`hook_environment`), its output passed to the log line by line. The
runner decides nothing: a hook that fails is reported in its :class:`HookResult` and the
caller chooses what that means for the laptop.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Log = Callable[[str], None]

HOOK_TIMEOUT = 300.0  # seconds; mounting and editing a filesystem takes a few
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_KILL_GRACE = 5.0  # after SIGTERM, and after SIGKILL, of a hook that ran out of time
_DRAIN = 1.0  # how long output is still read after the hook exited (a child may hold it)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"  # exited non-zero or was killed by a signal
    TIMED_OUT = "timed out"
    CANNOT_RUN = "cannot run"
    SKIPPED = "skipped"  # not a script; nothing was run


@dataclass(frozen=True)
class HookResult:
    name: str
    outcome: Outcome
    returncode: int | None  # None when it never ran or was stopped
    message: str  # one sentence about what happened
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.CANNOT_RUN)


def hook_environment(target: str, partitions: list[str], mac: str,
                     hostname: str | None) -> dict[str, str]:
    """What a hook learns about the laptop (README, *After the image: post-deploy hooks*)."""
    return {
        "MCASTD_TARGET": target,
        "MCASTD_PARTITIONS": " ".join(partitions),
        "MCASTD_MAC": mac,
        "MCASTD_HOSTNAME": hostname or "",
    }


def _why_skipped(path: Path) -> str | None:
    if path.name.startswith(".") or path.name.endswith("~"):
        return "a hidden or backup file"
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        return f"it cannot be read ({e.strerror})"
    # On FAT every file looks executable: only a script line says it is meant to run.
    return None if head == b"#!" else "not a script (its first line is no #! line)"


def _cannot_run(name: str, path: Path, error: OSError) -> HookResult:
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError:
        first = b""
    hint = (" (its #! line ends in CR: save it with Unix line ends)"
            if first.rstrip(b"\n").endswith(b"\r") else "")
    return HookResult(name, Outcome.CANNOT_RUN, None,
                      f"{name} cannot be run: {error.strerror}{hint}.")


def _popen(argv: list[str], path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own session, so a timeout stops whatever the hook started as well.
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=path.parent,
                            start_new_session=True)


def _start(path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    try:
        return _popen([str(path)], path, env)
    except PermissionError:
        # A stick mounted noexec (or without exec bits): run the #! interpreter on the file.
        with open(path, "rb") as f:
            interpreter = f.readline()[2:].decode(errors="replace").split()
        if not interpreter:
            raise
        return _popen([*interpreter, str(path)], path, env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the hook and whatever it started in its session."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(_KILL_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def _text(line: bytes) -> str:
    return line.rstrip(b"\r").decode(errors="replace")


def _pump(process: subprocess.Popen[bytes], name: str, timeout: float, log: Log) -> bool:
    """Pass the hook's output to ``log`` until it exits; False if it ran out of time."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    pending = b""
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _DRAIN:
                break  # a background child of the hook holds the pipe: stop reading
            if exited_at is None and now >= deadline:
                break
            if not selector.select(0.2):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                log(f"{name}: {_text(line)}")
    if pending:
        log(f"{name}: {_text(pending)}")
    process.stdout.close()
    if process.poll() is not None:
        return True
    try:  # it closed its output but still runs
        process.wait(max(0.0, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        return False


def run_hook(path: Path, env: dict[str, str], log: Log,
             timeout: float = HOOK_TIMEOUT) -> HookResult:
    name = path.name
    child_env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), **env}
    started = time.monotonic()
    try:
        process = _start(path, child_env)
    except OSError as e:
        return _cannot_run(name, path, e)
    try:
        finished = _pump(process, name, timeout, log)
    finally:
        if process.poll() is None:
            _stop(process)
    seconds = time.monotonic() - started
    if not finished:
        return HookResult(name, Outcome.TIMED_OUT, None,
                          f"{name} did not finish in {timeout:g} s and was stopped.", seconds)
    code = process.returncode
    if code == 0:
        return HookResult(name, Outcome.OK, 0, f"{name} succeeded.", seconds)
    if code < 0:
        try:
            what = f"was killed by {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal
            what = f"was killed by signal {-code}"
    else:
        what = f"exited with status {code}"
    return HookResult(name, Outcome.FAILED, code, f"{name} {what}.", seconds)


def run_hooks(directory: Path | str, env: dict[str, str], log: Log = _to_stderr,
              timeout: float = HOOK_TIMEOUT) -> list[HookResult]:
    """Run every script in ``directory`` in name order; none when it does not exist."""
    directory = Path(directory)
    try:
        entries = sorted(p for p in directory.iterdir() if p.is_file())
    except FileNotFoundError:
        return []
    results: list[HookResult] = []
    for path in entries:
        why = _why_skipped(path)
        if why is not None:
            message = f"skipped {path.name}: {why}."
            log(message)
            results.append(HookResult(path.name, Outcome.SKIPPED, None, message))
            continue
        log(f"running {path.name}")
        result = run_hook(path, env, log, timeout)
        log(result.message)
        results.append(result)
    return results


_PART_SUFFIX = r"p?(\d+)"


def partitions_of(device: str, sysfs: Path = Path("/sys"),
                  dev: Path = Path("/dev")) -> list[str]:
    """The partitions of the whole disk ``device`` as the kernel knows them now, by number.

    Read after :func:`reread_partition_table`: a disk just written still shows the kernel
    the partitions it had before.
    """
    name = Path(os.path.realpath(device)).name  # /dev/disk/by-id/… is a symlink
    pattern = re.compile(re.escape(name) + _PART_SUFFIX)
    found: list[tuple[int, str]] = []
    try:
        entries = list((sysfs / "class" / "block" / name).iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_dir():
            continue
        try:
            number = int((entry / "partition").read_text())
        except (OSError, ValueError):
            number = int(match.group(1))
        found.append((number, str(dev / entry.name)))
    return [path for _, path in sorted(found)]


def reread_partition_table(device: str, log: Log = _to_stderr) -> bool:
    """Make the kernel read the new partition table (and udev make its nodes); a failure is
    noted, not fatal: a hook can still work on the whole device."""
    try:
        done = subprocess.run(["blockdev", "--rereadpt", device], capture_output=True,
                              text=True, check=False)
    except OSError as e:
        log(f"note: could not re-read the partition table of {device}: {e.strerror}")
        return False
    if done.returncode != 0:
        why = done.stderr.strip() or f"blockdev exited with status {done.returncode}"
        log(f"note: could not re-read the partition table of {device}: {why}")
        return False
    # The partitions' /dev nodes appear only once udev handled the change (no udev: no wait).
    with contextlib.suppress(OSError):
        subprocess.run(["udevadm", "settle", "--timeout=10"], capture_output=True, check=False)
    return True
