"""`mcastd` and `mcast-receive` on the command line: help, bad arguments, missing inputs —
one plain sentence and exit code 2, nothing sent, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcastd.cli import main as mcastd_main
from receiver.cli import main as receive_main

SERVE_OPTIONS = [
    "--interface", "--group", "--port", "--rate", "--min-receivers", "--max-wait",
    "--fec-overhead", "--block-size", "--ttl", "--name", "--json", "--quiet", "--verbose",
    "--discovery-group", "--discovery-port", "--no-gso",
]
RECEIVE_OPTIONS = ["--interface", "--session", "--timeout", "--json", "--quiet", "--verbose",
                   "--discovery-group", "--discovery-port", "--no-gro"]


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
        (["serve", "x.img", "--group", "10.0.0.1"], "not an IPv4 multicast address"),
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

    from mcastd.console import make_console
    from mcastd.options import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    console = make_console(json_mode=True, verbosity=0, stream=out, err=io.StringIO())
    try:
        setup_logging(console, 0)
        logging.getLogger("mcastd.udp").warning("the kernel capped a socket buffer")
        logging.getLogger("mcastd.udp").debug("not shown by default")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [{"event": "message", "level": "warning",
                      "text": "the kernel capped a socket buffer"}]
