"""`mcastd` and `mcast-receive` on the command line: help, bad arguments, missing inputs —
one plain sentence and exit code 2, nothing sent, nothing written."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from driver.keys import generate_key, load_key, parse_trust, public_key_path
from driver.secret import load_secret
from mcastd.cli import main as mcastd_main
from receiver.cli import main as receive_main

SERVE_OPTIONS = [
    "--interface", "--group", "--port", "--rate", "--min-receivers", "--max-wait",
    "--fec-overhead", "--block-size", "--ttl", "--name", "--json", "--quiet", "--verbose",
    "--discovery-group", "--discovery-port", "--no-gso", "--key", "--encrypt", "--ipv6",
    "--control-port", "--report", "--status",
]
RECEIVE_OPTIONS = ["--interface", "--session", "--timeout", "--json", "--quiet", "--verbose",
                   "--discovery-group", "--discovery-port", "--no-gro", "--trust", "--encrypt",
                   "--ipv6", "--doctor"]


def usage_error(main: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert callable(main)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_serve_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        mcastd_main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in SERVE_OPTIONS:
        assert option in out


def test_receive_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        receive_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in RECEIVE_OPTIONS:
        assert option in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "x.img", "--rate", "fast"], "--rate wants bits per second"),
        (["serve", "x.img", "--rate", "0"], "--rate"),
        (["serve", "x.img", "--group", "10.0.0.1"], "is not a multicast address"),
        (["serve", "x.img", "--port", "70000"], "not a UDP port"),
        (["serve", "x.img", "--min-receivers", "0"], "not a positive whole number"),
        (["serve", "x.img", "--max-wait", "-3"], "not a positive number of seconds"),
        (["serve", "x.img", "--fec-overhead", "250"], "percentage between 0 and 100"),
        (["serve", "x.img", "--block-size", "1"], "--block-size wants 4K to 64M"),
        (["serve", "x.img", "--ttl", "0"], "not a TTL"),
        (["serve"], "required: IMAGE"),
        (["launch"], "invalid choice"),
    ],
)
def test_serve_rejects_bad_arguments_with_one_sentence(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert says in usage_error(mcastd_main, argv, capsys)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["t.img", "--timeout", "soon"], "not a positive number of seconds"),
        (["t.img", "--discovery-port", "0"], "not a UDP port"),
        ([], "required: TARGET"),
    ],
)
def test_receive_rejects_bad_arguments(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert says in usage_error(receive_main, argv, capsys)


def test_a_missing_image_is_one_sentence_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = mcastd_main(["serve", str(tmp_path / "nope.img"), "--interface", "lo"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mcastd: {tmp_path / 'nope.img'} does not exist: check the image path."


def test_an_unknown_interface_is_one_sentence_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "a.img"
    image.write_bytes(b"x" * 4096)
    assert mcastd_main(["serve", str(image), "--interface", "nosuch0"]) == 2
    assert "no network interface called 'nosuch0'" in capsys.readouterr().err


def test_a_target_in_a_missing_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "t.img"
    assert receive_main([str(target), "--interface", "lo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcast-receive: ") and err.count("\n") == 1
    assert not target.parent.exists()


def test_a_directory_target_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert receive_main([str(tmp_path), "--interface", "lo"]) == 2
    assert "directory" in capsys.readouterr().err


def test_the_installed_commands_run() -> None:
    for module in ("mcastd", "receiver"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and "usage:" in done.stdout


def test_log_records_go_through_the_console() -> None:
    import io
    import json
    import logging

    from driver.console import make_console
    from driver.options import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    console = make_console(json_mode=True, verbosity=0, stream=out, err=io.StringIO())
    try:
        setup_logging(console, 0)
        logging.getLogger("driver.udp").warning("the kernel capped a socket buffer")
        logging.getLogger("driver.udp").debug("not shown by default")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [{"event": "message", "level": "warning",
                      "text": "the kernel capped a socket buffer"}]


# --- keys: `mcastd keygen` and `mcastd serve --key` -------------------------------------------


def test_keygen_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        mcastd_main(["keygen", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--key" in out and "--force" in out


def test_keygen_creates_a_key_and_says_how_receivers_trust_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "room12" / "sender.key"
    assert mcastd_main(["keygen", "--key", str(path)]) == 0
    out, err = capsys.readouterr()
    signer = load_key(path)
    pub = public_key_path(path)
    assert err == ""
    assert f"fingerprint: {signer.fingerprint}\n" in out
    assert str(pub) in out and "mcastd-trust.pub" in out
    assert f"--trust {signer.fingerprint}" in out
    assert parse_trust(str(pub)) == {signer.fingerprint}


def test_keygen_uses_mcastd_key_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "env.key"
    monkeypatch.setenv("MCASTD_KEY", str(path))
    assert mcastd_main(["keygen"]) == 0
    assert load_key(path).fingerprint in capsys.readouterr().out


def test_keygen_never_replaces_a_key_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sender.key"
    first = generate_key(path)
    assert mcastd_main(["keygen", "--key", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"mcastd: {path} already holds a key: use --force to replace it (receivers "
                   "that trust the old key will refuse the new one).\n")
    assert load_key(path).fingerprint == first.fingerprint
    assert mcastd_main(["keygen", "--key", str(path), "--force"]) == 0
    second = load_key(path)
    assert second.fingerprint != first.fingerprint
    assert second.fingerprint in capsys.readouterr().out


def _image(tmp_path: Path) -> Path:
    image = tmp_path / "a.img"
    image.write_bytes(b"x" * 4096)
    return image


@pytest.mark.parametrize(
    ("content", "mode", "says"),
    [
        (b"garbage", 0o600, "is not a PEM private key"),
        (None, 0o640, "run `chmod 600"),
    ],
)
def test_serve_with_an_unusable_key_is_one_sentence_and_exit_2(
    content: bytes | None, mode: int, says: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = tmp_path / "sender.key"
    if content is None:
        generate_key(key)
    else:
        key.write_bytes(content)
    key.chmod(mode)
    # An interface that does not exist: the key is checked before the network.
    code = mcastd_main(["serve", str(_image(tmp_path)), "--interface", "nosuch0",
                        "--key", str(key)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mcastd: {key} ") and err.count("\n") == 1 and says in err


def test_serve_creates_a_missing_key_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "cfg" / "sender.key"
    code = mcastd_main(["serve", str(_image(tmp_path)), "--interface", "nosuch0",
                        "--key", str(key)])
    assert code == 2  # the interface, after the key
    fp = load_key(key).fingerprint
    out = capsys.readouterr().out
    assert f"created a new signing key at {key} (fingerprint {fp})" in out
    assert f"--trust {fp}" in out


def test_serve_uses_mcastd_key_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "env.key"
    monkeypatch.setenv("MCASTD_KEY", str(key))
    assert mcastd_main(["serve", str(_image(tmp_path)), "--interface", "nosuch0"]) == 2
    assert load_key(key).fingerprint in capsys.readouterr().out


def test_serve_with_a_missing_image_creates_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "sender.key"
    assert mcastd_main(["serve", str(tmp_path / "nope.img"), "--key", str(key)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not key.exists()


@pytest.mark.parametrize("value", ["nonsense", "SHA256:abc", "{missing}"])
def test_receive_with_a_bad_trust_is_one_sentence_before_anything(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "t.img"
    value = value.format(missing=tmp_path / "trust.pub")
    assert receive_main([str(target), "--interface", "nosuch0", "--trust", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcast-receive: ") and err.count("\n") == 1
    assert repr(value) in err
    assert not target.exists()


def test_receive_names_the_bad_line_of_a_trust_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = tmp_path / "trust.pub"
    trust.write_text("# room 12\nmcastd-ed25519 AAAA\n")
    assert receive_main([str(tmp_path / "t.img"), "--trust", str(trust)]) == 2
    assert capsys.readouterr().err == (
        f"mcast-receive: line 2 of {trust} has a 3-byte key; an Ed25519 public key has 32.\n"
    )


def test_serve_with_a_broken_secret_is_one_sentence_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("not a secret\n")
    secret.chmod(0o600)
    code = mcastd_main(["serve", str(_image(tmp_path)), "--interface", "nosuch0",
                        "--encrypt", str(secret)])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (f"mcastd: {secret} is not an mcastd secret: expected one line "
                   "`mcastd-secret-v1 BASE64` as `mcastd keygen --secret` writes it.\n")


def test_serve_creates_a_missing_secret_and_says_where_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret.key"
    code = mcastd_main(["serve", str(_image(tmp_path)), "--interface", "nosuch0",
                        "--encrypt", str(secret)])
    assert code == 2  # the interface, after the secret
    assert load_secret(secret)
    assert (f"created a new encryption secret at {secret}: copy it to every boot stick"
            in capsys.readouterr().out)


def test_a_session_draws_its_own_group_and_takes_the_links_speed_as_ceiling() -> None:
    from mcastd.cli import DEFAULT_RATE, build_parser, session_network

    args = build_parser().parse_args(["serve", "x.img"])
    first = session_network(args, socket.AF_INET, "lo")
    second = session_network(args, socket.AF_INET, "lo")
    assert first.data != second.data and first.data[1] == 9771
    assert first.discovery == ("239.255.77.1", 9770)
    assert first.rate_bps == DEFAULT_RATE  # loopback tells no speed
    six = session_network(build_parser().parse_args(["serve", "x.img", "--ipv6"]),
                          socket.AF_INET6, "lo")
    assert six.ipv6 and six.data[0].startswith("ff12::6d63:")
    assert six.discovery[0] == "ff12::6d63:1"
    fixed = session_network(build_parser().parse_args(
        ["serve", "x.img", "--group", "239.1.2.3", "--rate", "100M"]), socket.AF_INET, "lo")
    assert fixed.data == ("239.1.2.3", 9771) and fixed.rate_bps == 100e6
