"""What the laptop shows, with its tty1 and serial console as files in tmp_path: plain
prefixed lines on the serial console, the full-screen view and the big verdict on the tty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stick.agent.screen import (
    CLEAR,
    ERASE_BELOW,
    ERASE_LINE,
    GREEN,
    HOME,
    RED,
    RESET,
    Screen,
    bar,
    big,
)


@pytest.fixture
def screen(tmp_path: Path) -> Iterator[Screen]:
    """A screen on tmp_path/tty1 and tmp_path/ttyS0, its consoles (which the agent keeps open
    all its life) closed after the test."""
    screen = Screen(tty_path=str(tmp_path / "tty1"), serial_path=str(tmp_path / "ttyS0"))
    yield screen
    for console in (screen.tty, screen.serial):
        if console is not None:
            console.close()


def last_frame(tmp_path: Path) -> str:
    """What tty1 shows now: its last full redraw, without the erase codes."""
    frame = (tmp_path / "tty1").read_text().rsplit(HOME, 1)[-1]
    return frame.removeprefix(CLEAR).replace(ERASE_LINE, "").replace(ERASE_BELOW, "")


def serial_lines(tmp_path: Path) -> list[str]:
    text = (tmp_path / "ttyS0").read_bytes().decode()
    assert text.endswith("\r\n")  # a serial terminal wants CR LF
    return text.removesuffix("\r\n").split("\r\n")


def test_log_lines_reach_the_serial_console_with_the_prefix(screen: Screen,
                                                            tmp_path: Path) -> None:
    screen.log("starting")
    screen.log("enp0s31f6 (3c:52:82:1a:2b:3c): 10.0.0.12/24 by dhcp")
    assert serial_lines(tmp_path) == [
        "mcastd-stick: starting",
        "mcastd-stick: enp0s31f6 (3c:52:82:1a:2b:3c): 10.0.0.12/24 by dhcp"]


def test_the_tty_shows_the_title_facts_and_the_last_eight_lines(screen: Screen,
                                                                tmp_path: Path) -> None:
    screen.title = "mcastd boot stick: win11"
    screen.fact("network", "enp0s31f6 10.0.0.12/24 (dhcp)")
    screen.fact("disk", "/dev/nvme0n1  476.9 GiB")
    for n in range(12):
        screen.log(f"line {n}")
    frame = last_frame(tmp_path)
    assert "\x1b[7m mcastd boot stick: win11" in frame
    assert "  network   enp0s31f6 10.0.0.12/24 (dhcp)\n" in frame
    assert "  disk      /dev/nvme0n1  476.9 GiB\n" in frame
    assert [f"  line {n}\n" in frame for n in range(12)] == [False] * 4 + [True] * 8
    assert len(serial_lines(tmp_path)) == 12  # the serial console keeps everything


@pytest.mark.parametrize(("ok", "word", "colour"), [(True, "OK", GREEN),
                                                    (False, "FAILED", RED)])
def test_the_verdict_is_in_big_letters_on_the_tty(screen: Screen, tmp_path: Path, ok: bool,
                                                  word: str, colour: str) -> None:
    screen.verdict(ok, "the image is written and verified (81 s)")
    frame = last_frame(tmp_path)
    for row in big(word):
        assert f"{colour}      {row}{RESET}" in frame
    assert "\n\n  the image is written and verified (81 s)" in frame
    assert serial_lines(tmp_path) == [
        f"mcastd-stick: {word}: the image is written and verified (81 s)"]


def test_big_letters_are_five_rows_of_one_width() -> None:
    rows = big("FAILED")
    assert len(rows) == 5
    assert len({len(row) for row in rows}) == 1
    assert rows[0].startswith("█████")


def test_progress_reaches_the_serial_console_only_at_each_tenth(screen: Screen,
                                                                tmp_path: Path) -> None:
    for half_percent in range(201):
        screen.show_progress("receiving", half_percent / 2, 9.4e8, 60.0)
    screen.show_progress("receiving", 100.0, 0.0, None)
    assert serial_lines(tmp_path) == [f"mcastd-stick: receiving {p} %"
                                      for p in (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)]


def test_a_jump_in_progress_is_logged_once_where_it_lands(screen: Screen, tmp_path: Path) -> None:
    for percent in (3.0, 4.0, 37.2, 38.0, 39.9, 41.0):
        screen.show_progress("verifying", percent, 0.0, None)
    assert serial_lines(tmp_path) == ["mcastd-stick: verifying 3 %",
                                      "mcastd-stick: verifying 37 %",
                                      "mcastd-stick: verifying 41 %"]


def test_the_progress_line_has_the_bar_rate_and_time_left(screen: Screen, tmp_path: Path) -> None:
    screen.show_progress("receiving", 42.0, 9.4e8, 125.0)
    assert screen.progress == f"receiving  {bar(42.0)}  42.0 %   940.0 Mbit/s  2:05 left"
    screen.draw(force=True)
    assert screen.progress in last_frame(tmp_path)


def test_bar_is_clamped_to_its_width() -> None:
    assert bar(0, 10) == "░" * 10
    assert bar(55, 10) == "█" * 5 + "░" * 5
    assert bar(150, 10) == "█" * 10
    assert bar(-3, 10) == "░" * 10


def test_a_screen_without_its_consoles_still_works(tmp_path: Path) -> None:
    """A VM without a serial port, a laptop whose tty1 cannot be opened: nothing fails."""
    missing = tmp_path / "no-such-dir"
    screen = Screen(tty_path=str(missing / "tty1"), serial_path=str(missing / "ttyS0"))
    screen.log("starting")
    screen.show_progress("receiving", 50.0, 1e8, None)
    screen.verdict(False, "no session was announced.")
    assert screen.read_key(0.0) is None
    assert screen.lines[-1] == "FAILED: no session was announced."


def test_no_key_is_read_from_a_tty_that_is_not_a_terminal(screen: Screen) -> None:
    assert screen.read_key(0.0) is None


def test_redraws_overwrite_in_place_and_clear_the_screen_only_once(screen: Screen,
                                                                   tmp_path: Path) -> None:
    for n in range(3):
        screen.log(f"line {n}")
        screen.draw(force=True)
    written = (tmp_path / "tty1").read_text()
    assert written.count(CLEAR) == 1  # the boot messages, once: no blank between frames
    assert written.count(HOME) >= 3  # every frame starts at the top left
    frame = written.rsplit(HOME, 1)[-1]
    assert f"  line 2{ERASE_LINE}\n" in frame  # a shorter row leaves no tail of the last one
    assert frame.endswith(ERASE_BELOW)
