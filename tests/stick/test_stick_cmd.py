"""`mcastd stick build` refusing bad arguments: one sentence, a non-zero exit, and nothing
built (no image, nothing in the cache). A real build takes minutes: tests/vm runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from driver.options import EXIT_OK, EXIT_USAGE
from mcastd.cli import main

CONFIG_SENTENCES = {
    "--target": ("/etc/passwd", "mcastd stick build: target = '/etc/passwd' is not auto, a "
                                "device such as /dev/nvme0n1, or serial=SERIAL."),
    "--session": ("two words", "mcastd stick build: session = 'two words' must be one word of "
                               "at most 64 printable characters."),
}


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default --cache
    return tmp_path / "stick.img", tmp_path / "cache"


def nothing_built(out: Path, cache: Path) -> bool:
    return (not out.exists() and not cache.exists()
            and not (cache.parent / "xdg").exists())


def build_argv(out: Path, cache: Path, *extra: str) -> list[str]:
    return ["stick", "build", str(out), "--cache", str(cache), *extra]


@pytest.mark.parametrize(("extra", "says"), [
    (["--then", "halt"], "argument --then: invalid choice: 'halt' (choose from 'reboot', "
                         "'poweroff', 'wait')"),
    (["--size", "10M"], "argument --size: --size wants 64M to 64G, not '10M'"),
    (["--size", "100G"], "argument --size: --size wants 64M to 64G, not '100G'"),
    (["--size", "lots"], "argument --size: --size wants a size in bytes such as 1M, 64K or "
                         "4096, not 'lots'"),
])
def test_a_bad_option_is_a_usage_error(paths: tuple[Path, Path], extra: list[str], says: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = paths
    with pytest.raises(SystemExit) as exc:
        main(build_argv(out, cache, *extra))
    assert exc.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"mcastd stick build: error: {says}"
    assert nothing_built(out, cache)


@pytest.mark.parametrize("option", sorted(CONFIG_SENTENCES))
def test_a_setting_mcastd_conf_would_refuse_is_refused_before_building(
        paths: tuple[Path, Path], option: str, capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = paths
    value, sentence = CONFIG_SENTENCES[option]
    assert main(build_argv(out, cache, option, value)) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err == sentence + "\n"
    assert captured.out == ""
    assert nothing_built(out, cache)


def test_a_missing_trust_file_is_refused_before_the_system_is_built(
        paths: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Checked before the system (minutes) is built; on a machine that lacks a build tool,
    the refusal names the packages instead. Either way: one line, nothing built."""
    out, cache = paths
    missing = out.parent / "nope.pub"
    assert main(build_argv(out, cache, "--trust", str(missing))) != EXIT_OK
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert (err.startswith(f"mcastd stick build: --trust {missing}: ")
            or err.startswith("mcastd stick build: building a stick needs Debian packages"))
    assert nothing_built(out, cache)


def test_the_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["stick", "build", "--help"])
    assert exc.value.code == EXIT_OK
    out = capsys.readouterr().out
    for option in ("--trust", "--secret", "--target", "--session", "--then", "--size",
                   "--capture", "--hostnames", "--cache"):
        assert option in out


def test_a_disk_as_the_output_is_refused(paths: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, cache = paths
    assert main(build_argv(Path("/dev/null"), cache)) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "mcastd stick build: /dev/null is not a plain file: build the stick image into a "
        "file, then copy it to the USB stick (dd if=stick.img of=/dev/null bs=4M).\n")
    assert Path("/dev/null").exists()
