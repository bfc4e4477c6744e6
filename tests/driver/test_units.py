"""Parsing what people type for rates and sizes, and formatting what they read."""

from __future__ import annotations

import argparse

import pytest

from driver.units import (
    UnitError,
    format_byte_rate,
    format_bytes,
    format_bytes_of,
    format_duration,
    format_rate,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(("text", "bps"), [
    ("900M", 900e6), ("1G", 1e9), ("100m", 100e6), ("2.5G", 2.5e9), ("100000", 1e5),
    ("100Mbit", 100e6), ("100mbps", 100e6), ("64k", 64e3), (" 1 g ", 1e9), ("10Mbit/s", 10e6),
    (".5G", 0.5e9), ("1.", 1.0),
])
def test_parse_rate(text: str, bps: float) -> None:
    assert parse_rate(text) == pytest.approx(bps)


@pytest.mark.parametrize("text", [
    "0", "0M", "-1M", "abc", "", "M", "1T", "1e9", "900MB", "900Mb", "1 M M", "inf", "nan",
    "9" * 400,  # overflows a float to infinity
])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rate(text)
    assert str(info.value) == f"--rate wants bits per second such as 900M or 1G, not {text!r}"


@pytest.mark.parametrize(("text", "size"), [
    ("1M", 1 << 20), ("1MiB", 1 << 20), ("64K", 65536), ("64kib", 65536), ("4096", 4096),
    ("4096B", 4096), ("2G", 2 << 30), ("1.5K", 1536), ("1Mi", 1 << 20),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "0.5", "1.0001K", "-1M", "1MB", "1 KB", "x", "", "1T"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="wants a size in bytes such as 1M, 64K or 4096"):
        parse_size(text)


def test_option_name_in_message() -> None:
    with pytest.raises(ValueError, match="^--block-size wants"):
        parse_size("big", option="--block-size")


def test_argparse_shows_our_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse hides a plain ValueError's text; UnitError is also an ArgumentTypeError.
    parser = argparse.ArgumentParser(prog="mcastd")
    parser.add_argument("--rate", type=parse_rate)
    assert issubclass(UnitError, argparse.ArgumentTypeError)
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "fast"])
    assert "--rate wants bits per second such as 900M or 1G, not 'fast'" in capsys.readouterr().err


@pytest.mark.parametrize(("bps", "text"), [
    (812.3e6, "812.3 Mbit/s"), (0, "0.0 bit/s"), (999.96e6, "1.0 Gbit/s"), (64e3, "64.0 kbit/s"),
    (1.25e9, "1.2 Gbit/s"),
])
def test_format_rate(bps: float, text: str) -> None:
    assert format_rate(bps) == text


def test_format_byte_rate() -> None:
    assert format_byte_rate(11.2e6) == "11.2 MB/s"


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (512, "512 B"), (107 << 20, "107.0 MiB"), (1536, "1.5 KiB"), (3 << 30, "3.0 GiB"),
])
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_format_bytes_of_uses_the_totals_unit() -> None:
    assert format_bytes_of(107 << 20, 256 << 20) == "107.0/256.0 MiB"
    assert format_bytes_of(512 << 10, 2 << 30) == "0.0/2.0 GiB"
    assert format_bytes_of(10, 100) == "10/100 B"


@pytest.mark.parametrize(("seconds", "text"), [
    (12, "0:12"), (12.4, "0:12"), (62, "1:02"), (3723, "1:02:03"), (0, "0:00"), (-5, "0:00"),
    (float("inf"), "-:--"), (float("nan"), "-:--"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
