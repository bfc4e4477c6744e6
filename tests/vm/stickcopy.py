"""Per-laptop stick copies and disks, and reading what a laptop left on its stick."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from stick.build import fat
from stick.build.layout import ESP_START

MIB = 1 << 20


def build_stick(out: Path, cache: Path, *extra: str) -> Path:
    subprocess.run([sys.executable, "-m", "mcastd", "stick", "build", str(out), "--cache",
                    str(cache), *extra], check=True, capture_output=True, text=True)
    return out


def copy_stick(stick: Path, dest: Path) -> Path:
    """One laptop's own stick: journals and reports are per stick, as in a classroom."""
    subprocess.run(["cp", "--sparse=always", str(stick), str(dest)], check=True)
    return dest


def empty_disk(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def stick_file(stick: Path, name: str) -> bytes:
    return fat.get(stick, ESP_START, name)


def stick_files(stick: Path, directory: str) -> list[str]:
    return fat.listing(stick, ESP_START, directory)


def set_stick_file(stick: Path, name: str, data: bytes, scratch: Path) -> None:
    fat.put_bytes(stick, ESP_START, data, name, scratch)


def report(stick: Path, mac: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stick_file(stick, f"reports/{mac.replace(':', '-')}.json"))
    return data


def is_all_zero(path: Path) -> bool:
    with path.open("rb") as f:
        while chunk := f.read(4 * MIB):
            if chunk.count(0) != len(chunk):
                return False
    return True


def range_digest(path: Path, start: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(start)
        left = size
        while left:
            chunk = f.read(min(left, 4 * MIB))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


__all__ = ["build_stick", "copy_stick", "empty_disk", "is_all_zero", "range_digest", "report",
           "set_stick_file", "stick_file", "stick_files"]
