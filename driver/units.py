"""Parse and format the numbers people type and read: rates, sizes, durations.

Rates are bits per second with SI prefixes (network people say "900M" and mean 900 Mbit/s);
sizes are bytes with binary prefixes (a "1M" block is 1 MiB). Both are case-insensitive, so
"100m" is 100 Mbit/s — nobody paces a LAN in millibits.
"""

from __future__ import annotations

import argparse
import math
import re
from fractions import Fraction

_SI = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

# "B" alone would be ambiguous in a rate (bits or bytes?), so only spelled-out bit suffixes.
_RATE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(?:bits?(?:/s)?|bps)?")
# "MB" is 10**6 in dd and parted, so we accept only the unambiguous M / Mi / MiB and B.
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmg])(?:ib?)?|b)?")


class UnitError(ValueError, argparse.ArgumentTypeError):
    """A ValueError whose message argparse shows as is (it hides a plain ValueError's text)."""


def parse_rate(text: str, *, option: str = "--rate") -> float:
    """Bits per second from "900M", "1G", "2.5g", "100000", "100Mbit", "100mbps"."""
    match = _RATE.fullmatch(text.strip().lower())
    value = float(match[1]) * _SI[match[2]] if match else 0.0
    if not (value > 0 and math.isfinite(value)):
        raise UnitError(f"{option} wants bits per second such as 900M or 1G, not {text!r}")
    return value


def parse_size(text: str, *, option: str = "--size") -> int:
    """Bytes from "1M", "1MiB", "64K", "4096"; K, M, G are powers of 1024."""
    match = _SIZE.fullmatch(text.strip().lower())
    # Fraction keeps "1.5K" exact, so a size is either whole bytes or rejected.
    value = Fraction(match[1]) * _BINARY[match[2] or ""] if match else Fraction(0)
    if value < 1 or value.denominator != 1:
        raise UnitError(f"{option} wants a size in bytes such as 1M, 64K or 4096, not {text!r}")
    return int(value)


def _scaled(value: float, step: float, names: tuple[str, ...]) -> str:
    for name in names[:-1]:
        # Decide on the rounded figure, so 999.96 reads "1.0 G…" rather than "1000.0 M…".
        if round(abs(value), 1) < step:
            return f"{value:.1f} {name}"
        value /= step
    return f"{value:.1f} {names[-1]}"


def format_rate(bps: float) -> str:
    """Bits per second for people: "812.3 Mbit/s"."""
    return _scaled(bps, 1000, ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"))


def format_byte_rate(bytes_per_s: float) -> str:
    """Bytes per second, SI like a disk's spec sheet: "11.2 MB/s"."""
    return _scaled(bytes_per_s, 1000, ("B/s", "kB/s", "MB/s", "GB/s", "TB/s"))


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _byte_unit(n: float) -> int:
    exp = 0
    while exp < len(_BYTE_UNITS) - 1 and round(abs(n) / 1024**exp, 1) >= 1024:
        exp += 1
    return exp


def format_bytes(n: float) -> str:
    """Bytes for people: "107.0 MiB" (whole bytes below 1 KiB: "512 B")."""
    exp = _byte_unit(n)
    return f"{n:.0f} B" if exp == 0 else f"{n / 1024**exp:.1f} {_BYTE_UNITS[exp]}"


def format_bytes_of(n: float, total: float) -> str:
    """Progress in the total's unit, so the two figures compare at a glance: "107.0/256.0 MiB"."""
    exp = _byte_unit(total)
    if exp == 0:
        return f"{n:.0f}/{total:.0f} B"
    scale = 1024**exp
    return f"{n / scale:.1f}/{total / scale:.1f} {_BYTE_UNITS[exp]}"


def format_duration(seconds: float) -> str:
    """A clock-style duration: "0:12", "12:03", "1:02:03"."""
    if not math.isfinite(seconds):
        return "-:--"
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_addr(addr: tuple[str, int]) -> str:
    """host:port, an IPv6 host in brackets ([ff12::6d63:1]:9770)."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
