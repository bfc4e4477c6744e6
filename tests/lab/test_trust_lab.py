"""Trust with the real programs in the kernel lab: a rogue host in the classroom runs its own
signed session of another image; laptops that trust the admin's key ignore it and write the
real image, laptops without --trust are warned, with the sender's fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.classroom import format_table, run_classroom_lab
from lab.net import IFNAME, Lab, lab_available
from netsim.images import write_image

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None,
                                                  reason=lab_available() or "")]


def keygen(path: Path) -> str:
    """A key pair at ``path``; returns its fingerprint."""
    out = subprocess.run([sys.executable, "-m", "mcastd", "keygen", "--key", str(path)],
                         check=True, capture_output=True, text=True).stdout
    (line,) = [line for line in out.splitlines() if line.startswith("fingerprint:")]
    return line.split()[1]


def test_laptops_trusting_the_admin_ignore_a_rogue_session(tmp_path: Path) -> None:
    image, fake = tmp_path / "real.img", tmp_path / "rogue.img"
    write_image(image, 8 << 20, seed=31, kind="random")
    write_image(fake, 8 << 20, seed=32, kind="random")
    admin = tmp_path / "admin.key"
    fingerprint = keygen(admin)
    rogue_key = tmp_path / "rogue.key"
    keygen(rogue_key)

    def rogue(lab: Lab) -> None:
        # Another machine in the room announcing its own image, signed with its own key.
        argv = [sys.executable, "-m", "mcastd", "serve", str(fake), "--interface", IFNAME,
                "--key", str(rogue_key), "--name", "real.img", "--json"]
        lab.popen(lab.extras[0], argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    result = run_classroom_lab(image, 2, rate_mbit=50, timeout=120, extra_hosts=1,
                               extras=rogue, extras_lead=2.0,  # the rogue is there first
                               sender_args=["--key", str(admin)],
                               receiver_args=["--trust", f"{admin}.pub"])
    assert result.ok, format_table(result)
    assert all(r.sha_match for r in result.receivers)
    for r in result.receivers:
        assert not any("UNAUTHENTICATED" in w for w in r.warnings)
    # Each laptop saw the rogue first and said why it ignored it.
    for r in result.receivers:
        (ignored,) = [w for w in r.warnings if w.startswith("ignored")]
        assert "which is not a trusted key" in ignored and fingerprint not in ignored


def test_a_laptop_without_trust_is_warned_with_the_fingerprint(tmp_path: Path) -> None:
    image = tmp_path / "real.img"
    write_image(image, 4 << 20, seed=33, kind="random")
    admin = tmp_path / "admin.key"
    fingerprint = keygen(admin)
    result = run_classroom_lab(image, 1, rate_mbit=50, timeout=60,
                               sender_args=["--key", str(admin)])
    assert result.ok, format_table(result)
    (warning,) = [w for w in result.receivers[0].warnings if "UNAUTHENTICATED" in w]
    assert fingerprint in warning


def test_a_laptop_trusting_another_key_writes_nothing_and_says_why(tmp_path: Path) -> None:
    image = tmp_path / "real.img"
    write_image(image, 4 << 20, seed=34, kind="random")
    admin, other = tmp_path / "admin.key", tmp_path / "other.key"
    keygen(admin)
    keygen(other)
    result = run_classroom_lab(image, 1, rate_mbit=50, timeout=60,
                               sender_args=["--key", str(admin), "--max-wait", "5"],
                               receiver_args=["--trust", f"{other}.pub", "--timeout", "4"])
    (laptop,) = result.receivers
    assert not laptop.ok and laptop.returncode == 1, format_table(result)
    assert "no session we may follow was announced" in laptop.message
    assert "which is not a trusted key" in laptop.message
    assert laptop.sha_match is not True  # nothing of the image was written


def test_forged_blocks_in_the_session_are_refused_and_the_image_is_exact(tmp_path: Path) -> None:
    image = tmp_path / "real.img"
    write_image(image, 8 << 20, seed=35, kind="random")  # ~3.5 s at 20 Mbit/s
    admin = tmp_path / "admin.key"
    keygen(admin)
    rogues: list[subprocess.Popen[bytes]] = []

    def forge(lab: Lab) -> None:
        argv = [sys.executable, "-m", "lab.rogue", "--interface", IFNAME, "--forge",
                "--count", "12000", "--rate", "4000"]
        rogues.append(lab.popen(lab.extras[0], argv, stdout=subprocess.PIPE))

    result = run_classroom_lab(image, 2, rate_mbit=20, timeout=120, extra_hosts=1,
                               extras=forge, sender_args=["--key", str(admin)],
                               receiver_args=["--trust", f"{admin}.pub"])
    assert result.ok, format_table(result)
    assert all(r.sha_match for r in result.receivers)
    out = rogues[0].communicate(timeout=30)[0].decode()
    assert "forged datagrams" in out  # it found the session and sprayed it
    rejected = [(r.final or {}).get("details", {}).get("rejected_blocks", 0)
                for r in result.receivers]
    assert sum(rejected) > 0, rejected  # forgeries reached the laptops and were refused


def test_an_encrypted_session_tells_a_sniffer_nothing(tmp_path: Path) -> None:
    """--encrypt with the real programs: laptops with the secret write the exact image; one
    without it writes nothing and says what to pass; a host that captures everything on the
    groups can read none of it and finds no byte of the image."""
    image = tmp_path / "secret.img"
    write_image(image, 8 << 20, seed=36, kind="random")  # random: plain symbols would show
    secret = tmp_path / "classroom.secret"
    subprocess.run([sys.executable, "-m", "mcastd", "keygen", "--secret", str(secret)],
                   check=True, capture_output=True)
    capture = tmp_path / "capture.bin"

    def sniff(lab: Lab) -> None:
        argv = [sys.executable, "-m", "lab.sniffer", "--interface", IFNAME,
                "--out", str(capture), "--seconds", "30"]
        lab.popen(lab.extras[0], argv)

    result = run_classroom_lab(image, 3, rate_mbit=50, timeout=120, extra_hosts=1,
                               extras=sniff, extras_lead=1.0,
                               sender_args=["--encrypt", str(secret), "--max-wait", "4"],
                               receiver_args_for={0: ["--encrypt", str(secret)],
                                                  1: ["--encrypt", str(secret)],
                                                  2: ["--timeout", "6"]})
    with_secret, without = result.receivers[:2], result.receivers[2]
    assert all(r.ok and r.sha_match for r in with_secret), format_table(result)
    assert not without.ok and without.returncode == 1, format_table(result)
    assert "need a secret: pass --encrypt" in without.message
    assert without.sha_match is not True
    counts = json.loads(Path(f"{capture}.json").read_text())
    assert counts["datagrams"] > 5000  # it heard the whole transfer...
    assert counts["sealed"] == counts["datagrams"] and counts["readable"] == 0  # ...sealed
    captured, data = capture.read_bytes(), image.read_bytes()
    needles = [data[i : i + 16] for i in range(0, len(data), len(data) // 256)]
    assert not any(needle in captured for needle in needles)
