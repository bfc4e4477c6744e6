"""`mcast-receive --trust`: which sender keys the receiver follows, from the command line, the
boot stick or /etc — decided before any socket is opened, and handed to the session."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

import driver.keys
import driver.secret
import receiver.cli as cli
from driver.console import Console
from driver.keys import public_key_line
from protocol.trust import Signer
from receiver.target import TargetInfo


@pytest.fixture
def signers() -> list[Signer]:
    return [Signer.from_raw(bytes([n]) * 32) for n in range(1, 4)]


@pytest.fixture
def no_default_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The program runs from an empty directory and /etc has no trust file; returns that
    directory (where the boot stick's trust file would go)."""
    stick = tmp_path / "stick"
    stick.mkdir()
    monkeypatch.setattr(sys, "argv", [str(stick / "mcast-receive")])
    monkeypatch.setattr(driver.keys, "SYSTEM_TRUST_FILE", tmp_path / "etc" / "trust.pub")
    monkeypatch.setattr(driver.secret, "SYSTEM_SECRET_FILE", tmp_path / "etc" / "secret.key")
    return stick


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[frozenset[str] | None]:
    """Replaces the receiving itself: records the trust main hands it."""
    seen: list[frozenset[str] | None] = []

    async def fake_receive(args: argparse.Namespace, info: TargetInfo, console: Console,
                           trusted: frozenset[str] | None,
                           secret: tuple[bytes, Path] | None) -> int:
        seen.append(trusted)
        return 0

    monkeypatch.setattr(cli, "receive", fake_receive)
    return seen


def test_without_trust_anything_goes(no_default_trust: Path) -> None:
    assert cli.trusted_keys(None) is None
    assert cli.trusted_keys([]) is None


def test_every_trust_option_adds_keys(
    tmp_path: Path, signers: list[Signer], no_default_trust: Path
) -> None:
    pub = tmp_path / "room.pub"
    pub.write_text(f"{public_key_line(signers[0])}\n{signers[1].fingerprint}\n")
    trusted = cli.trusted_keys([str(pub), signers[2].fingerprint, signers[1].fingerprint])
    assert trusted == frozenset(s.fingerprint for s in signers)


def test_the_boot_sticks_trust_file_is_used_without_trust(
    signers: list[Signer], no_default_trust: Path
) -> None:
    (no_default_trust / "mcastd-trust.pub").write_text(public_key_line(signers[0]) + "\n")
    assert cli.trusted_keys(None) == frozenset({signers[0].fingerprint})
    # --trust replaces the default rather than adding to it.
    assert cli.trusted_keys([signers[1].fingerprint]) == frozenset({signers[1].fingerprint})


def test_the_system_trust_file_comes_after_the_sticks(
    tmp_path: Path, signers: list[Signer], no_default_trust: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "trust.pub").write_text(signers[1].fingerprint + "\n")
    assert cli.trusted_keys(None) == frozenset({signers[1].fingerprint})
    (no_default_trust / "mcastd-trust.pub").write_text(signers[0].fingerprint + "\n")
    assert cli.trusted_keys(None) == frozenset({signers[0].fingerprint})


def test_the_session_gets_the_trusted_keys(signers: list[Signer]) -> None:
    args = cli.build_parser().parse_args(["t.img", "--session", "room12"])
    trusted = frozenset({signers[0].fingerprint})
    config = cli.receiver_config(args, trusted, None)
    assert config.trusted == trusted
    assert config.session_name == "room12"
    assert cli.receiver_config(args, None, b"\0" * 32).trusted is None


def test_main_hands_the_trust_to_the_receiving(
    tmp_path: Path, signers: list[Signer], no_default_trust: Path,
    received: list[frozenset[str] | None],
) -> None:
    target = str(tmp_path / "t.img")
    assert cli.main([target, "--trust", signers[0].fingerprint,
                     "--trust", signers[1].fingerprint]) == 0
    assert cli.main([target]) == 0
    assert received == [frozenset({signers[0].fingerprint, signers[1].fingerprint}), None]


def test_a_broken_trust_file_on_the_stick_stops_the_receiver(
    tmp_path: Path, no_default_trust: Path, received: list[frozenset[str] | None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Running unauthenticated because of a damaged trust file would defeat it."""
    trust = no_default_trust / "mcastd-trust.pub"
    trust.write_text("mcastd-ed25519 AAAA\n")
    assert cli.main([str(tmp_path / "t.img")]) == 2
    assert capsys.readouterr().err == (
        f"mcast-receive: line 1 of {trust} has a 3-byte key; an Ed25519 public key has 32.\n"
    )
    assert received == []


def test_without_encrypt_or_a_secret_on_the_stick_sessions_are_in_the_clear(
    no_default_trust: Path,
) -> None:
    assert cli.encryption_secret(None) is None


def test_the_sticks_secret_is_used_and_encrypt_replaces_it(
    tmp_path: Path, no_default_trust: Path
) -> None:
    stick_secret = no_default_trust / "mcastd-secret.key"
    secret = driver.secret.generate_secret(stick_secret)
    assert cli.encryption_secret(None) == (secret, stick_secret)
    other = driver.secret.generate_secret(tmp_path / "other.key")
    assert cli.encryption_secret(tmp_path / "other.key") == (other, tmp_path / "other.key")


@pytest.mark.parametrize("where", ["argument", "stick"])
def test_a_missing_or_broken_secret_stops_the_receiver_before_any_socket(
    where: str, tmp_path: Path, no_default_trust: Path, received: list[frozenset[str] | None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = str(tmp_path / "t.img")
    if where == "argument":
        path = tmp_path / "nowhere.key"
        assert cli.main([target, "--encrypt", str(path)]) == 2
        assert capsys.readouterr().err == (
            f"mcast-receive: {path} does not exist: create one with `mcastd keygen --secret "
            f"{path}` and copy it to the sender and every boot stick.\n")
    else:
        path = no_default_trust / "mcastd-secret.key"
        path.write_text("mcastd-secret-v1 AAAA\n")
        path.chmod(0o600)
        assert cli.main([target]) == 2
        assert capsys.readouterr().err == (
            f"mcast-receive: {path} has a 3-byte secret; it must be 32.\n")
    assert received == []


def test_delta_and_from_image_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["/tmp/never-written", "--delta", "--from-image", "x.mci"])
    assert exit_info.value.code == 2
    assert "--delta compares the disk with a session's manifest" in capsys.readouterr().err


def test_delta_reaches_the_session_config() -> None:
    args = cli.build_parser().parse_args(["/tmp/never-written", "--delta"])
    assert cli.receiver_config(args, None, None).delta


def test_report_and_from_image_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["/tmp/never-written", "--report", "r.json", "--from-image", "x.mci"])
    assert exit_info.value.code == 2
    assert "--report records a network run" in capsys.readouterr().err


def test_a_report_nowhere_to_go_is_refused_before_any_socket(
    tmp_path: Path, no_default_trust: Path, received: list[frozenset[str] | None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "stick" / "reports"
    assert cli.main([str(tmp_path / "t.img"), "--report", str(missing / "m.json")]) == 2
    assert capsys.readouterr().err == (
        f"mcast-receive: {missing} (for --report) is not a directory\n")
    assert received == []


def test_a_laptop_that_finds_no_sender_still_writes_its_report(
    tmp_path: Path, no_default_trust: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Real sockets on the loopback interface, where no session is announced."""
    import json

    report = tmp_path / "r.json"
    code = cli.main([str(tmp_path / "t.img"), "--interface", "lo", "--timeout", "0.2",
                     "--discovery-port", "29770", "--no-resume", "--json",
                     "--report", str(report)])
    assert code == 1
    final = json.loads(capsys.readouterr().out.splitlines()[-1])
    record = json.loads(report.read_text())
    mac = Path("/sys/class/net/lo/address").read_text().strip()
    assert final["details"]["host"]["mac"] == record["mac"] == mac
    assert record["result"] == "failed" and final["ok"] is False
    assert record["message"] == final["message"] and "no session was announced" in final["message"]
    assert record["bytes_verified"] == final["details"]["verified_bytes"] == 0
    assert record["target"] == str(tmp_path / "t.img") and record["session"] is None
    assert not (tmp_path / "r.json.tmp").exists()
