"""Several classrooms at once, from one admin machine, in the kernel lab with the real
programs: each `mcastd serve` picks its own data group and control port, each room's laptops
ask for their session by name, and the sessions share the admin machine's 100 Mbit/s link
fairly (each hears the others announce from this machine, and takes its share of the
ceiling). A hung session (its sockets still open) does not stop the next one; two sessions
given the same group say so."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lab.classroom import parse_final, receiver_argv, sender_argv
from lab.net import Lab, lab_available
from lab.rooms import run_rooms, shares_while_all_send
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]
SIZE = 32 << 20
LINK_MBIT = 100.0
IP_SHARE = 1500 / 1514  # of a full frame's bytes on the wire, the IP packet the switch counts


def test_three_sessions_at_once_each_image_their_room_with_a_fair_share(tmp_path: Path) -> None:
    images = []
    for room in range(3):
        path = tmp_path / f"room{room}.img"
        write_image(path, SIZE, seed=80 + room, kind="random")
        images.append(path)
    run = run_rooms(images, 2, sender_rate_mbit=LINK_MBIT, timeout=150,
                    sender_args=["--rate", f"{LINK_MBIT:g}M"])
    rooms = run.rooms
    table = "\n".join(f"{r.name}: sender {r.sender.seconds} s {r.sender.message}; laptops "
                      + ", ".join(f"{x.name} {x.seconds} s {x.message}" for x in r.receivers)
                      for r in rooms)
    # Every laptop wrote its own room's image exactly: no cross-talk.
    assert all(r.ok for r in rooms), table
    assert all(x.sha_match for r in rooms for x in r.receivers), table
    details = [r.sender.final["details"] for r in rooms if r.sender.final]
    groups = {tuple(d["data_group"]) for d in details}
    ports = {d["control_port"] for d in details}
    assert len(groups) == 3 and len(ports) == 3, details  # nothing shared, nothing clashed
    assert all(d["foreign"] == 0 for d in details), details  # no datagram of another session
    # Fair: while all three send, each takes an equal share of the admin machine's link, as
    # the switch counts what each group brings in, within 15 %; and together they fill it.
    groups = [r.data_group for r in rooms if r.data_group]
    shares = shares_while_all_send(run.samples, groups)
    equal = sum(shares.values()) / 3
    print("\n" + table + "\nMbit/s per session while all send: "
          + ", ".join(f"{rate / 1e6:.1f}" for rate in shares.values())
          + f" (equal share {equal / 1e6:.1f}, link {LINK_MBIT:g})")
    assert all(abs(rate - equal) <= 0.15 * equal for rate in shares.values()), shares
    assert sum(shares.values()) >= 0.85 * LINK_MBIT * 1e6 * IP_SHARE, shares
    # Sharing this machine's --rate from the first datagram, their sockets wait at its
    # interface rather than overflow it: next to nothing to repair.
    sent = sum(d["datagrams"] for d in details)
    assert sum(d["repair_datagrams"] for d in details) <= 0.01 * sent, details


def test_a_hung_session_does_not_block_the_next_one(tmp_path: Path) -> None:
    """A serve that hangs (SIGSTOP: its sockets stay open, its port taken) while laptops wait:
    the admin starts another, which takes another control port and group and images them."""
    image = tmp_path / "image.img"
    write_image(image, 4 << 20, seed=90, kind="random")
    with Lab(2) as lab:
        env = {**os.environ, "MCASTD_KEY": str(tmp_path / "sender.key"),
               "MCAST_STATE_DIR": str(tmp_path / "state"),
               "PYTHONPATH": str(Path(__file__).parents[2])}
        hung = lab.popen(lab.sender, [*sender_argv(image, 3, None), "--name", "room"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)  # it announces, binds its port, waits for 3 laptops that never come
        os.kill(hung.pid, signal.SIGSTOP)
        try:
            laptops = [lab.popen(host, [*receiver_argv(tmp_path / f"{host.name}.img"),
                                        "--session", "room2"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                       for host in lab.receivers]
            fresh = lab.popen(lab.sender, [*sender_argv(image, 2, None), "--name", "room2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = fresh.communicate(timeout=90)
            outs = [p.communicate(timeout=30) for p in laptops]
        finally:
            os.kill(hung.pid, signal.SIGKILL)
    final = parse_final(out.decode())
    assert fresh.returncode == 0 and final is not None, err.decode()[-2000:]
    assert final["details"]["control_port"] != 9772  # the hung one holds the first
    assert all(p.returncode == 0 for p in laptops), [e.decode()[-500:] for _o, e in outs]
    data = image.read_bytes()
    assert all((tmp_path / f"{h.name}.img").read_bytes() == data for h in lab.receivers)


def test_two_sessions_given_the_same_group_each_say_so_and_still_image_their_rooms(
        tmp_path: Path) -> None:
    images = []
    for room in range(2):
        path = tmp_path / f"room{room}.img"
        write_image(path, 8 << 20, seed=95 + room, kind="random")
        images.append(path)
    rooms = run_rooms(images, 1, sender_rate_mbit=None, timeout=120,
                      sender_args=["--group", "239.255.77.2", "--rate", "200M"]).rooms
    assert all(r.ok and all(x.sha_match for x in r.receivers) for r in rooms), [
        (r.sender.message, [x.message for x in r.receivers]) for r in rooms]
    for room, other in ((rooms[0], "room1"), (rooms[1], "room0")):
        assert any(f"session '{other}' from " in w and "239.255.77.2:9771 too" in w
                   for w in room.sender.warnings), room.sender.warnings
