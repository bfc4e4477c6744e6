"""A file written whole or not at all: to FILE.tmp, to the medium (fsync), then renamed over
FILE, and the rename synced too. A crash, a pulled stick or a full disk leaves the old FILE,
never part of a new one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``; OSError if it cannot (nothing of it is left behind)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # The rename itself must reach the medium too; a file system that cannot sync a
    # directory has done what it can.
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
