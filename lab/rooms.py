"""Several classrooms at once in the kernel lab: one admin machine runs a `mcastd serve` per
room, each room's laptops ask for their own session by name (``--session``), and every
session crosses the same link, the admin machine's, at ``sender_rate_mbit``.

Each session picks its own data group and control port by itself (no ``--group``): what is
tested is that they neither clash nor cross-talk, and share the link fairly.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .classroom import (
    _REPO,
    HostResult,
    _stop,
    host_result,
    receiver_argv,
    sender_argv,
    sha256_prefix,
)
from .net import Lab


@dataclass(frozen=True)
class RoomResult:
    name: str  # the session's name, "room0"
    image_size: int
    sender: HostResult
    receivers: list[HostResult]
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.sender.ok and all(r.ok for r in self.receivers))


def run_rooms(
    images: Sequence[Path], per_room: int, *, sender_rate_mbit: float | None = None,
    timeout: float = 180.0, sender_args: Sequence[str] = (), receiver_args: Sequence[str] = (),
) -> list[RoomResult]:
    """Image ``per_room`` laptops from each of ``images`` at once, one session per image, all
    sent from one lab host whose link runs at ``sender_rate_mbit`` (None: line speed)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))}
    names = [f"room{i}" for i in range(len(images))]
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mcrooms-")))
        env["MCAST_STATE_DIR"] = str(work / "state")
        env["MCASTD_KEY"] = str(work / "sender.key")
        lab = stack.enter_context(Lab(per_room * len(images)))
        lab.set_rate(lab.sender, sender_rate_mbit)

        def start(host_name: str, argv: list[str], host_index: int | None) -> subprocess.Popen[
                bytes]:
            host = lab.sender if host_index is None else lab.receivers[host_index]
            with open(work / f"{host_name}.out", "wb") as out, \
                    open(work / f"{host_name}.err", "wb") as err:
                return lab.popen(host, argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=env, cwd=work)

        laptops: list[tuple[str, int, subprocess.Popen[bytes]]] = []
        for room, name in enumerate(names):
            for k in range(per_room):
                index = room * per_room + k
                argv = [*receiver_argv(work / f"r{index}.img"), "--session", name,
                        *receiver_args]
                laptops.append((name, index, start(f"r{index}", argv, index)))
        senders = [
            start(f"sender-{name}", [*sender_argv(image.resolve(), per_room, None),
                                     "--name", name, *sender_args], None)
            for name, image in zip(names, images, strict=True)
        ]
        deadline = time.monotonic() + timeout
        everyone = [*senders, *(p for _n, _i, p in laptops)]
        while time.monotonic() < deadline and any(p.poll() is None for p in everyone):
            time.sleep(0.1)
        for p in everyone:
            if p.poll() is None:
                _stop(p)

        def result(host_name: str, host_index: int | None, proc: subprocess.Popen[bytes],
                   size: int, sha_match: bool | None) -> HostResult:
            host = lab.sender if host_index is None else lab.receivers[host_index]
            out = (work / f"{host_name}.out").read_bytes().decode(errors="replace")
            err = (work / f"{host_name}.err").read_bytes().decode(errors="replace")
            return host_result(host, out, err, proc.returncode, size, sha_match)

        rooms = []
        for room, (name, image) in enumerate(zip(names, images, strict=True)):
            size = image.stat().st_size
            digest = sha256_prefix(image, size)
            receivers = [result(f"r{i}", i, p, size,
                                sha256_prefix(work / f"r{i}.img", size) == digest)
                         for n, i, p in laptops if n == name]
            rooms.append(RoomResult(name, size, result(f"sender-{name}", None, senders[room],
                                                       size, None), receivers))
    return rooms
