"""What the laptop shows: a full-screen view on tty1 (no login there, the agent owns it) and
the same facts as plain lines on the serial console, for labs and VMs.

Redrawn only when something changed and at most a few times a second: the RAM system has one
job, and it is not painting.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import time
import tty
from typing import TextIO

WIDTH = 78
_BIG = {  # 5-row block letters for the verdict, readable from across the room
    "O": ["█████", "█   █", "█   █", "█   █", "█████"],
    "K": ["█   █", "█  █ ", "███  ", "█  █ ", "█   █"],
    "F": ["█████", "█    ", "████ ", "█    ", "█    "],
    "A": [" ███ ", "█   █", "█████", "█   █", "█   █"],
    "I": ["█████", "  █  ", "  █  ", "  █  ", "█████"],
    "L": ["█    ", "█    ", "█    ", "█    ", "█████"],
    "E": ["█████", "█    ", "████ ", "█    ", "█████"],
    "D": ["████ ", "█   █", "█   █", "█   █", "████ "],
}
GREEN, RED, RESET = "\x1b[1;32m", "\x1b[1;31m", "\x1b[0m"
HOME, CLEAR, ERASE_LINE, ERASE_BELOW = "\x1b[H", "\x1b[2J", "\x1b[K", "\x1b[J"


def big(word: str) -> list[str]:
    return ["  ".join(_BIG[c][row] for c in word) for row in range(5)]


def bar(percent: float, width: int = 50) -> str:
    filled = int(width * max(0.0, min(percent, 100.0)) / 100)
    return "█" * filled + "░" * (width - filled)


def _open(path: str) -> TextIO | None:
    try:
        return open(path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open
    except OSError:
        return None


class Screen:
    def __init__(self, tty_path: str = "/dev/tty1", serial_path: str = "/dev/ttyS0") -> None:
        self.tty = _open(tty_path)
        self._tty_path = tty_path
        self.serial = _open(serial_path)
        self.title = "mcastd boot stick"
        self.facts: dict[str, str] = {}
        self.progress: str = ""
        self.lines: list[str] = []
        self._drawn = 0.0
        self._cleared = False  # tty1 still shows the boot messages
        self._serial_step = -1

    # -- the serial console: one plain line per event ---------------------------------------

    def log(self, text: str) -> None:
        if self.serial is not None:
            with contextlib.suppress(OSError):
                self.serial.write(f"mcastd-stick: {text}\r\n")
                self.serial.flush()
        self.lines = (self.lines + [text])[-8:]
        self.draw(force=True)

    # -- tty1 -------------------------------------------------------------------------------

    def fact(self, name: str, value: str) -> None:
        self.facts[name] = value
        self.draw(force=True)

    def show_progress(self, state: str, percent: float, rate_bps: float,
                      eta: float | None) -> None:
        eta_text = f"  {int(eta) // 60}:{int(eta) % 60:02d} left" if eta is not None else ""
        self.progress = (f"{state:<10} {bar(percent)} {percent:5.1f} %  "
                         f"{rate_bps / 1e6:6.1f} Mbit/s{eta_text}")
        step = int(percent // 10)
        if step != self._serial_step:  # the serial log gets every tenth, not every redraw
            self._serial_step = step
            self.log(f"{state} {percent:.0f} %")
        self.draw()

    def verdict(self, ok: bool, sentence: str) -> None:
        self.log(("OK: " if ok else "FAILED: ") + sentence)
        colour = GREEN if ok else RED
        self.progress = "\n".join(colour + "      " + row + RESET for row in
                                  big("OK" if ok else "FAILED")) + "\n\n  " + sentence
        self.draw(force=True)

    def draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty is None or (not force and now - self._drawn < 0.25):
            return
        self._drawn = now
        rows = [f"\x1b[7m {self.title:<{WIDTH - 1}}\x1b[0m", ""]
        rows += [f"  {name:<9} {value}" for name, value in self.facts.items()]
        rows += ["", f"  {self.progress}" if self.progress else "", ""]
        rows += [f"  {line[:WIDTH - 2]}" for line in self.lines]
        # Overwrite in place (each row erased to its end, then all below it) rather than
        # clear and redraw: a slow laptop would show the blank screen between the two.
        start = HOME if self._cleared else HOME + CLEAR
        self._cleared = True
        with contextlib.suppress(OSError):
            frame = "\n".join(rows) + "\n"  # a row may hold several lines (the verdict)
            self.tty.write(start + frame.replace("\n", ERASE_LINE + "\n") + ERASE_BELOW)
            self.tty.flush()

    def read_key(self, timeout: float) -> str | None:
        """One key pressed on tty1 within ``timeout`` seconds, else None."""
        try:
            fd = os.open(self._tty_path, os.O_RDONLY | os.O_NOCTTY)
        except OSError:
            time.sleep(timeout)
            return None
        try:
            old = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
                return os.read(fd, 1).decode(errors="replace") if ready else None
            finally:
                termios.tcsetattr(fd, termios.TCSADRAIN, old)
        except termios.error:
            time.sleep(timeout)
            return None
        finally:
            os.close(fd)
