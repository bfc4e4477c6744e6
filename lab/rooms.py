"""Several classrooms at once in the kernel lab: one admin machine runs a `mcastd serve` per
room, each room's laptops ask for their own session by name (``--session``), and every
session crosses the same link, the admin machine's, at ``sender_rate_mbit``.

Each session picks its own data group and control port by itself (no ``--group``): what is
tested is that they neither clash nor cross-talk, and share the link fairly. The switch counts
the bytes each data group brings in from the admin machine's link (an nftables set with a
counter per group, in the switch's namespace), sampled every SAMPLE_INTERVAL: each session's
share of the link while all of them send, whatever their start-up times.
"""

from __future__ import annotations

import contextlib
import json
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

SAMPLE_INTERVAL = 0.25
_COUNT_GROUPS = """table bridge mcshare {
  set groups { type ipv4_addr; size 1024; flags dynamic; counter; }
  chain count {
    type filter hook prerouting priority filter; policy accept;
    ip daddr 239.255.128.0/17 update @groups { ip daddr }
  }
}
"""
# (seconds since the senders started, {data group: bytes the switch took in for it so far})
Samples = list[tuple[float, dict[str, int]]]


@dataclass(frozen=True)
class RoomResult:
    name: str  # the session's name, "room0"
    image_size: int
    sender: HostResult
    receivers: list[HostResult]
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.sender.ok and all(r.ok for r in self.receivers))

    @property
    def data_group(self) -> str | None:
        final = self.sender.final
        return str(final["details"]["data_group"][0]) if final else None


@dataclass(frozen=True)
class RoomsRun:
    rooms: list[RoomResult]
    samples: Samples  # what the switch counted per data group, over time


def run_rooms(
    images: Sequence[Path], per_room: int, *, sender_rate_mbit: float | None = None,
    timeout: float = 180.0, sender_args: Sequence[str] = (), receiver_args: Sequence[str] = (),
) -> RoomsRun:
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
        subprocess.run(["ip", "netns", "exec", lab.bridge_netns, "nft", "-f", "-"],
                       input=_COUNT_GROUPS.encode(), check=True, capture_output=True, timeout=10)

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
        started = time.monotonic()
        deadline = started + timeout
        everyone = [*senders, *(p for _n, _i, p in laptops)]
        samples: Samples = []
        while time.monotonic() < deadline and any(p.poll() is None for p in everyone):
            samples.append((time.monotonic() - started, group_counts(lab)))
            time.sleep(SAMPLE_INTERVAL)
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
    return RoomsRun(rooms, samples)


def group_counts(lab: Lab) -> dict[str, int]:
    """Bytes the switch took in so far for each data group (from the admin machine's link)."""
    done = subprocess.run(["ip", "netns", "exec", lab.bridge_netns, "nft", "-j", "list", "set",
                           "bridge", "mcshare", "groups"], capture_output=True, timeout=10,
                          check=True)
    counts = {}
    for item in json.loads(done.stdout)["nftables"]:
        for elem in item.get("set", {}).get("elem", []):
            entry = elem["elem"]
            counts[str(entry["val"])] = int(entry["counter"]["bytes"])
    return counts


def shares_while_all_send(samples: Samples, groups: Sequence[str], margin: float = 0.5
                          ) -> dict[str, float]:
    """Each group's rate (bits/s) from when the last one began to when the first one ended
    (counter no longer growing), less ``margin`` seconds at both ends (start-up, the last
    repairs)."""
    def first_growing(group: str) -> float:
        return next(t for (t, a), (_u, b) in zip(samples, samples[1:], strict=False)
                    if b.get(group, 0) > a.get(group, 0))

    def last_growing(group: str) -> float:
        return max(u for (_t, a), (u, b) in zip(samples, samples[1:], strict=False)
                   if b.get(group, 0) > a.get(group, 0))

    begin = max(first_growing(g) for g in groups) + margin
    end = min(last_growing(g) for g in groups) - margin
    if end - begin < 1.0:
        raise ValueError(f"the sessions ran together for {end - begin + 2 * margin:.1f} s only")
    window = [(t, counts) for t, counts in samples if begin <= t <= end]
    (t0, c0), (t1, c1) = window[0], window[-1]
    return {g: (c1.get(g, 0) - c0.get(g, 0)) * 8 / (t1 - t0) for g in groups}
