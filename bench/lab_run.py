"""One transfer in a fresh kernel lab, with the costs the benchmark reports.

The receivers start first and get ``SETTLE`` seconds to be ready; the clock starts when the
sender starts and stops when the last receiver exits (mcastd's receivers exit after verifying
their copy; udpcast's after writing it). The runner hashes every copy itself.

Costs per process: CPU seconds from ``wait4`` (``ip netns exec`` waits for its program, so its
rusage includes the program's), peak RSS from polling ``VmHWM`` of the program itself (the
program's own ``ru_maxrss`` would start at the size of the Python that forked it), and the
bytes the sender's link carried (its interface counters).
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.classroom import sha256_prefix
from lab.net import Lab, LabHost, lab_available, tx_bytes

SETTLE = 1.5  # seconds the receivers get to start before the sender does
POLL = 0.02  # seconds between VmHWM samples


@dataclass(frozen=True)
class Tool:
    """How to run one program pair; ``{…}`` fields are filled in per run."""

    name: str
    sender: Sequence[str]  # {image} {receivers}
    receiver: Sequence[str]  # {target}


@dataclass(frozen=True)
class ProcessCost:
    returncode: int | None  # None: killed at the timeout
    cpu_seconds: float  # user + system
    system_seconds: float
    peak_rss: int  # bytes


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float | None  # sender start → last receiver exit; None: timed out
    verified: int  # receivers whose copy equals the image
    receivers: int
    sender: ProcessCost
    laptops: list[ProcessCost]
    wire_bytes: int  # bytes the sender's link carried (Ethernet frames)

    @property
    def ok(self) -> bool:
        return self.seconds is not None and self.verified == self.receivers


class _Watched:
    """A lab process, its program's pid and its VmHWM. ``ip netns exec`` runs the program in its
    own process or, in some versions, in a child it waits for."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.program: int | None = None
        self.peak_rss = 0
        self.cost: ProcessCost | None = None

    def sample(self) -> None:
        if self.program is None:
            pid = self.proc.pid
            if _read_text(f"/proc/{pid}/comm").strip() not in ("", "ip"):
                self.program = pid  # ip execed the program in place
            else:
                children = _read_text(f"/proc/{pid}/task/{pid}/children").split()
                self.program = int(children[0]) if children else None
        if self.program is not None:
            for line in _read_text(f"/proc/{self.program}/status").splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)

    def reap(self, block: bool) -> bool:
        """Collect its exit status and rusage; False while it still runs."""
        if self.cost is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cost = ProcessCost(self.proc.returncode, usage.ru_utime + usage.ru_stime,
                                usage.ru_stime, self.peak_rss)
        return True

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.reap(block=True)
        assert self.cost is not None
        self.cost = ProcessCost(None, self.cost.cpu_seconds, self.cost.system_seconds,
                                self.cost.peak_rss)


def cannot_run(problem: str | None = None) -> bool:
    """True, after saying why on stderr, if a lab benchmark cannot run here: the lab is not
    available (root, namespaces, tools) or ``problem`` (a peer program missing) is set."""
    problem = lab_available() or problem
    if problem is not None:
        print(f"cannot run the benchmark: {problem}", file=sys.stderr)
    return problem is not None


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # gone already, or not yet there
        return ""


@functools.cache
def compile_programs() -> None:
    """Byte-compile the programs once, as installing them does (pip compiles every module at
    install). A checkout run under PYTHONDONTWRITEBYTECODE would otherwise compile all of
    mcastd from source in every process: ~0.1 s of CPU per start that no installed copy
    pays."""
    root = Path(__file__).resolve().parents[1]
    for package in ("protocol", "driver", "disk", "mcastd", "receiver"):
        compileall.compile_dir(root / package, quiet=1)


def run_in_lab(
    tool: Tool, image: Path, receivers: int, rate_mbit: float | None, loss_pct: float,
    timeout: float, logs: Path | None = None, verify: Callable[[Path], bool] | None = None,
    prepare: Callable[[Path], None] | None = None, mtu: int = 1500,
) -> Run:
    """``verify``: whether a receiver's target is right (default: its first bytes equal the
    image's, which a disk imaged from a prepared image or by partition need not).
    ``prepare``: puts what a laptop's disk holds before the run into a target (default: the
    target does not exist yet). ``mtu``: of every link."""
    compile_programs()
    size = image.stat().st_size
    digest = sha256_prefix(image, size)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mcbench-")))
        lab = stack.enter_context(Lab(receivers, rate_mbit=rate_mbit, mtu=mtu,
                                      loss_pct=[loss_pct] * receivers))
        targets = [work / f"{h.name}.img" for h in lab.receivers]
        if prepare is not None:
            for target in targets:
                prepare(target)
        # Resume journals and the sender's key stay in the run's directory, never in this
        # machine's /var/lib or the admin's own key file.
        env = {**os.environ, "MCAST_STATE_DIR": str(work / "state"),
               "MCASTD_KEY": str(work / "sender.key")}

        def start(host: LabHost, template: Sequence[str], **fields: object) -> _Watched:
            argv = [part.format(**fields) for part in template]
            log = (logs or work) / f"{tool.name}-{host.name}.log"
            with open(log, "wb") as out:
                return _Watched(lab.popen(host, argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=work, env=env))

        laptops = [start(h, tool.receiver, target=t)
                   for h, t in zip(lab.receivers, targets, strict=True)]
        time.sleep(SETTLE)
        tx_before = tx_bytes(lab.sender)
        started = time.monotonic()
        sender = start(lab.sender, tool.sender, image=image.resolve(), receivers=receivers)
        finished: float | None = None
        while time.monotonic() - started < timeout:
            for w in (*laptops, sender):
                w.sample()
            if all(w.reap(block=False) for w in laptops):
                finished = time.monotonic()
                break
            time.sleep(POLL)
        for w in laptops:
            if w.cost is None:
                w.kill()
        # The sender may linger for its last acknowledgements; it gets a few seconds more.
        grace = time.monotonic() + 5.0
        while not sender.reap(block=False) and time.monotonic() < grace:
            sender.sample()
            time.sleep(POLL)
        if sender.cost is None:
            sender.kill()
        wire = tx_bytes(lab.sender) - tx_before
        if verify is None:
            verified = sum(sha256_prefix(t, size) == digest for t in targets)
        else:
            verified = sum(t.exists() and verify(t) for t in targets)
    assert sender.cost is not None
    return Run(
        tool=tool.name, seconds=None if finished is None else finished - started,
        verified=verified, receivers=receivers, sender=sender.cost,
        laptops=[w.cost for w in laptops if w.cost is not None], wire_bytes=wire,
    )

