"""A classroom in the kernel lab: the real sender and receivers, then a check of every copy.

Each program runs in its own namespace and prints JSON lines; its last line is the final report
(``mcastd/report.py``). The runner trusts no one: it hashes every receiver's target itself. It can
also kill a program mid-run and start it again (``kill``, ``kill_sender``), as a student pulling a
laptop's plug or a teacher restarting the server would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disk.imagefile import is_prepared_image

from .net import Lab, LabHost, tx_counters

SENDER_MAX_WAIT = 30  # seconds the sender waits for the on-time receivers
RECEIVER_TIMEOUT = 60
GRACE = 10.0  # once one side (sender or receivers) is done, seconds the other side gets
STDERR_TAIL = 10  # lines shown for a host that failed
_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class HostResult:
    name: str  # "sender", "r0", ...
    ip: str
    ok: bool  # its final report says ok, and (receivers) its copy matches the image
    seconds: float | None  # from its final report
    mb_per_s: float | None  # image bytes / seconds / 1e6
    sha_match: bool | None  # None for the sender
    message: str
    returncode: int | None  # None: never started
    stderr_tail: str = ""
    final: dict[str, Any] | None = None  # its final report, as it printed it
    warnings: list[str] = field(default_factory=list)  # its warning and error messages


@dataclass(frozen=True)
class LabResult:
    image: str
    image_size: int
    rate_mbit: float | None | list[float | None]  # a list: one link speed per receiver
    loss_pct: list[float]
    late: dict[int, float]
    wall_seconds: float
    receivers: list[HostResult]
    sender: HostResult | None = None
    events: list[str] = field(default_factory=list)  # "r1 killed at 3.0 s", in order
    wire_bytes: int = 0  # bytes the sender's link carried from its start (Ethernet frames)
    wire_frames: int = 0  # and how many frames
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", bool(self.receivers) and all(r.ok for r in self.receivers))


def sender_argv(image: Path, min_receivers: int, rate_mbit: float | None) -> list[str]:
    argv = [sys.executable, "-m", "mcastd", "serve", str(image), "--interface", "lab0",
            "--min-receivers", str(min_receivers), "--max-wait", str(SENDER_MAX_WAIT), "--json"]
    return argv + (["--rate", f"{rate_mbit:g}M"] if rate_mbit is not None else [])


def receiver_argv(target: Path) -> list[str]:
    return [sys.executable, "-m", "receiver", str(target), "--interface", "lab0", "--json",
            "--timeout", str(RECEIVER_TIMEOUT)]


def parse_final(stdout: str) -> dict[str, Any] | None:
    """The final report: the last JSON line whose event is "final" (progress lines are skipped)."""
    for line in reversed(stdout.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("event") == "final":
            return data
    return None


def host_result(
    host: LabHost, stdout: str, stderr: str, returncode: int | None, image_size: int,
    sha_match: bool | None, stopped: str = "", killed: str = "",
) -> HostResult:
    """``returncode`` None: never started; ``stopped``: when the runner stopped it, if it did;
    ``killed``: when the runner killed it for good (never to start it again), if it did."""
    final = parse_final(stdout)
    claims_ok = final is not None and final.get("ok") is True and not killed
    if killed:
        message = f"killed {killed}"
    elif final is not None:
        message = str(final.get("message", ""))
    elif returncode is None:
        message = "never started: the run timed out first"
    elif stopped:
        message = f"stopped {stopped}, before its final report"
    else:
        message = f"no final report: exit code {returncode}"
    if claims_ok and sha_match is False:
        message = f"its copy differs from the image, yet it said: {message}"
    seconds = final.get("seconds") if final else None
    seconds = float(seconds) if isinstance(seconds, int | float) else None
    ok = claims_ok and sha_match is not False
    return HostResult(
        name=host.name, ip=host.ip, ok=ok, seconds=seconds,
        mb_per_s=image_size / seconds / 1e6 if seconds else None, sha_match=sha_match,
        message=message, returncode=returncode,
        stderr_tail="" if ok else "\n".join(stderr.splitlines()[-STDERR_TAIL:]),
        final=final, warnings=warning_lines(stdout),
    )


def warning_lines(stdout: str) -> list[str]:
    """The texts of the JSON message lines of level warning or error."""
    found = []
    for line in stdout.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if (isinstance(data, dict) and data.get("event") == "message"
                and data.get("level") in ("warning", "error")):
            found.append(str(data.get("text", "")))
    return found


def sha256_prefix(path: Path, size: int) -> str | None:
    """SHA-256 of the first ``size`` bytes (a disk may be larger than its image); None if shorter
    or missing."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            left = size
            while left:
                chunk = f.read(min(left, 4 << 20))
                if not chunk:
                    return None
                digest.update(chunk)
                left -= len(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


@dataclass
class _Process:
    host: LabHost
    proc: subprocess.Popen[bytes] | None = None  # None until a late receiver starts; then the last
    argv: list[str] = field(default_factory=list)  # of the last start, for a restart
    runs: int = 0
    stopped: str = ""  # when the runner stopped its last run, if it did
    killed: str = ""  # when the runner killed its last run for good, if it did
    kill_at: float | None = None  # monotonic: SIGKILL it then
    restart_at: float | None = None  # monotonic: once killed, start it again then
    out: Path = Path()
    err: Path = Path()

    def busy(self) -> bool:
        """Not started yet, still running, or killed and due to start again."""
        return self.proc is None or self.proc.poll() is None or self.restart_at is not None


def run_classroom_lab(
    image: Path, receivers: int, rate_mbit: float | None | Sequence[float | None] = None,
    loss_pct: float | Sequence[float] = 0.0, late: Mapping[int, float] | None = None,
    timeout: float = 300.0, *, sender_args: Sequence[str] = (),
    receiver_args: Sequence[str] = (), targets: Mapping[int, Path] | None = None,
    extra_hosts: int = 0, extras: Callable[[Lab], None] | None = None,
    kill: Mapping[int, tuple[float, float | None]] | None = None,
    kill_sender: tuple[float, float | None] | None = None,
    receiver_args_for: Mapping[int, Sequence[str]] | None = None,
    igmp_forget_after: float | None = None, extras_lead: float | None = None,
    compare_bytes: bool = True, mtu: int = 1500, ipv6_only: bool = False,
) -> LabResult:
    """Image ``receivers`` lab laptops from ``image``. ``late`` maps a receiver's index to the
    seconds after the sender's start at which it starts; the sender waits only for the others.
    ``rate_mbit`` is every link's speed, or a list of one per receiver (the sender's link then
    runs at line speed and the sender gets no ``--rate``: pass one in ``sender_args``).
    ``targets`` replaces some receivers' target files (a loop device, say); ``extras`` starts
    programs on the ``extra_hosts`` (a rogue host) once the sender runs. ``kill`` maps a
    receiver's index to (seconds after the sender's start at which its process group gets
    SIGKILL, seconds after the sender's start at which it starts again with the same command,
    or None: never); ``kill_sender`` does the same to the sender. A receiver's result is its last
    run's. ``receiver_args_for`` adds arguments for some receivers after ``receiver_args``.
    ``igmp_forget_after``: the switch forgets members that long after their last report
    (:class:`Lab`). ``extras_lead``: start the extras that many seconds *before* the sender
    (a rogue that is there first). ``compare_bytes`` False: the laptops' disks are not meant to
    equal the image byte for byte (free space skipped), the caller checks them. ``mtu``: of
    every link (9000: jumbo frames). ``ipv6_only``: a LAN without IPv4 (:class:`Lab`)."""
    late = dict(late or {})
    if any(not 0 <= i < receivers for i in late):
        raise ValueError(f"--late names a receiver outside 0..{receivers - 1}")
    kills = dict(kill or {})
    if any(not 0 <= i < receivers for i in kills):
        raise ValueError(f"kill names a receiver outside 0..{receivers - 1}")
    for when in [*kills.values(), *([kill_sender] if kill_sender else [])]:
        _check_kill(when)
    args_for = {i: list(a) for i, a in (receiver_args_for or {}).items()}
    if any(not 0 <= i < receivers for i in args_for):
        raise ValueError(f"receiver_args_for names a receiver outside 0..{receivers - 1}")
    link_rates: float | None | list[float | None]
    if rate_mbit is None or isinstance(rate_mbit, int | float):
        link_rates = sender_rate = rate_mbit
    else:
        link_rates, sender_rate = list(rate_mbit), None
    size = image.stat().st_size
    # A prepared image is not the disk it makes: the runner cannot compare bytes, and the
    # caller checks the laptops' filesystems instead (sha256 None).
    digest = (sha256_prefix(image, size) if compare_bytes and not is_prepared_image(image)
              else None)
    losses = [float(loss_pct)] * receivers if isinstance(loss_pct, int | float) else list(loss_pct)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mclab-")))
        # Resume journals and the sender's key stay in the run's directory, never in this
        # machine's /var/lib or the admin's own key file.
        env["MCAST_STATE_DIR"] = str(work / "state")
        env["MCASTD_KEY"] = str(work / "sender.key")
        lab = stack.enter_context(
            Lab(receivers, rate_mbit=link_rates, loss_pct=losses, extra_hosts=extra_hosts,
                igmp_forget_after=igmp_forget_after, mtu=mtu, ipv6_only=ipv6_only)
        )

        def start(p: _Process, argv: list[str]) -> None:
            """Start (or start again) ``p``; run n > 1 writes ``<host>.<n>.out`` and ``.err``."""
            p.runs += 1
            stem = p.host.name if p.runs == 1 else f"{p.host.name}.{p.runs}"
            p.out, p.err = work / f"{stem}.out", work / f"{stem}.err"
            p.argv, p.stopped, p.killed = argv, "", ""
            with open(p.out, "wb") as out, open(p.err, "wb") as err:
                p.proc = lab.popen(p.host, argv, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, env=env, cwd=work)

        chosen = dict(targets or {})
        paths = [chosen.get(i, work / f"{h.name}.img") for i, h in enumerate(lab.receivers)]

        def argv_for(i: int) -> list[str]:
            return [*receiver_argv(paths[i]), *receiver_args, *args_for.get(i, [])]

        laptops = [_Process(h) for h in lab.receivers]
        for i, p in enumerate(laptops):
            if i not in late:
                start(p, argv_for(i))
        if extras is not None and extras_lead is not None:
            extras(lab)
            time.sleep(extras_lead)
        sender = _Process(lab.sender)
        tx_before, frames_before = tx_counters(lab.sender)
        start(sender, [*sender_argv(image.resolve(), max(1, receivers - len(late)), sender_rate),
                       *sender_args])
        sender_started = time.monotonic()
        for p, when in [*((laptops[i], w) for i, w in sorted(kills.items())),
                        *([(sender, kill_sender)] if kill_sender else [])]:
            p.kill_at = sender_started + when[0]
            p.restart_at = None if when[1] is None else sender_started + when[1]
        if extras is not None and extras_lead is None:
            extras(lab)
        due = {i: time.monotonic() + delay for i, delay in late.items()}
        events: list[str] = []
        _supervise(laptops, sender, due, argv_for, start, started + timeout, sender_started,
                   events)

        results = [
            _collect(p, size, sha256_prefix(t, size) == digest
                     if p.proc and digest is not None else None)
            for p, t in zip(laptops, paths, strict=True)
        ]
        result = LabResult(
            image=str(image), image_size=size, rate_mbit=link_rates, loss_pct=losses, late=late,
            wall_seconds=time.monotonic() - started, receivers=results,
            sender=_collect(sender, size, None), events=events,
            wire_bytes=tx_counters(lab.sender)[0] - tx_before,
            wire_frames=tx_counters(lab.sender)[1] - frames_before,
        )
    return result


def _check_kill(when: tuple[float, float | None]) -> None:
    kill_s, restart_s = when
    if kill_s < 0:
        raise ValueError(f"a kill must come at 0 s or later, not {kill_s:g} s")
    if restart_s is not None and restart_s < kill_s:
        raise ValueError(f"a restart at {restart_s:g} s comes before its kill at {kill_s:g} s")


def _supervise(
    laptops: list[_Process], sender: _Process, due: dict[int, float],
    argv_for: Callable[[int], list[str]], start: Callable[[_Process, list[str]], None],
    deadline: float, sender_started: float, events: list[str],
) -> None:
    """Start late receivers when due, kill and restart programs when due (noting it in
    ``events``); return once everyone is done, GRACE after one side is (a receiver that joins
    after the sender finished waits in vain), or at the deadline, stopping whoever still runs.
    A program killed for good is done; one killed and due to start again is not."""
    one_side_done: float | None = None
    reason = "at the timeout"
    while (now := time.monotonic()) < deadline:
        for i, when in list(due.items()):
            if now >= when:
                start(laptops[i], argv_for(i))
                del due[i]
        for p in [*laptops, sender]:
            _kill_and_restart(p, now, sender_started, start, events)
        receivers_busy = bool(due) or any(p.busy() for p in laptops)
        if not receivers_busy and not sender.busy():
            break
        if receivers_busy != sender.busy():
            one_side_done = one_side_done or now
            if now - one_side_done > GRACE:
                side = "receivers" if sender.busy() else "sender"
                reason = f"{GRACE:g} s after the {side} finished"
                break
        time.sleep(0.1)
    for p in [*laptops, sender]:
        if p.restart_at is not None and p.kill_at is None:  # killed, and the restart never came
            p.killed += f", not restarted: the run ended {reason}"
        if p.proc is not None and p.proc.poll() is None:
            p.stopped = reason
            _stop(p.proc)


def _kill_and_restart(
    p: _Process, now: float, sender_started: float,
    start: Callable[[_Process, list[str]], None], events: list[str],
) -> None:
    """SIGKILL ``p`` if its kill is due, start it again if its restart is due. A program that
    is not running when its kill is due (exited already, or a late one not started yet) is
    neither killed nor started again."""
    name = p.host.name
    if p.kill_at is not None:
        at = f"at {p.kill_at - sender_started:.1f} s"
        if p.proc is not None and p.proc.poll() is not None:
            events.append(f"{name} exited before its kill {at}")
            p.kill_at = p.restart_at = None
        elif now >= p.kill_at:
            p.kill_at = None
            if p.proc is None:
                events.append(f"{name} not started yet {at}: not killed")
                p.restart_at = None
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait()
                events.append(f"{name} killed {at}")
                p.killed = at  # cleared by the restart, if one comes
    if p.kill_at is None and p.restart_at is not None and now >= p.restart_at:
        events.append(f"{name} restarted at {p.restart_at - sender_started:.1f} s")
        p.restart_at = None
        start(p, p.argv)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM its process group so it can report; SIGKILL if it does not exit in 3 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
            return


def _collect(p: _Process, image_size: int, sha_match: bool | None) -> HostResult:
    if p.proc is None:
        return host_result(p.host, "", "", None, image_size, sha_match)
    return host_result(p.host, _read(p.out), _read(p.err), p.proc.returncode, image_size,
                       sha_match, p.stopped, p.killed)


def _read(path: Path) -> str:
    return path.read_bytes().decode(errors="replace")


def format_table(result: LabResult) -> str:
    """Plain aligned columns: one row per receiver, then the sender; stderr tails of failures."""
    verified = sum(r.ok for r in result.receivers)
    loss = "/".join(f"{x:g}" for x in sorted(set(result.loss_pct))) or "0"
    if isinstance(result.rate_mbit, list):
        links = "/".join("line" if r is None else f"{r:g}" for r in result.rate_mbit)
        rate = f"links {links} Mbit/s" if links else "line rate"
    else:
        rate = f"{result.rate_mbit:g} Mbit/s" if result.rate_mbit else "line rate"
    late = "".join(f", r{i} late by {s:g} s" for i, s in sorted(result.late.items()))
    lines = [f"image {result.image} ({result.image_size / 1e6:.1f} MB), loss {loss} %, {rate}"
             f"{late}: {verified}/{len(result.receivers)} receivers verified in "
             f"{result.wall_seconds:.1f} s"]
    rows = [["host", "address", "result", "seconds", "MB/s", "sha256", "message"]]
    hosts = [*result.receivers, *([result.sender] if result.sender else [])]
    for h in hosts:
        rows.append([
            h.name, h.ip, "ok" if h.ok else "FAILED",
            "-" if h.seconds is None else f"{h.seconds:.2f}",
            "-" if h.mb_per_s is None else f"{h.mb_per_s:.2f}",
            {True: "match", False: "DIFFERS", None: "-"}[h.sha_match], h.message,
        ])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    numeric = {3, 4}
    for row in rows:
        cells = [cell.rjust(w) if c in numeric else cell.ljust(w)
                 for c, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    if result.events:
        lines += ["events:", *(f"  {event}" for event in result.events)]
    for h in hosts:
        if h.stderr_tail:
            lines += [f"--- {h.name} stderr (last lines) ---", h.stderr_tail]
    return "\n".join(lines)
