"""Files in a FAT partition inside a disk image, through mtools (no mount: the build machine's
kernel may have no vfat, and nothing needs root)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .tools import BuildError, run


def _at(image: Path, offset: int) -> str:
    return f"{image}@@{offset}"


def _env() -> None:
    os.environ.setdefault("MTOOLS_SKIP_CHECK", "1")  # an image file has no CHS geometry


def format_fat32(image: Path, offset: int, size: int, label: str, volume_id: int) -> None:
    """A FAT32 file system of ``size`` bytes at ``offset`` in ``image``."""
    run(["mkfs.fat", "-F", "32", "-n", label, "-i", f"{volume_id:08X}", "--offset",
         str(offset // 512), image, str(size // 1024)], "make the stick's FAT32 partition")


def mkdir(image: Path, offset: int, *paths: str) -> None:
    _env()
    run(["mmd", "-D", "s", "-i", _at(image, offset), *[f"::/{p}" for p in paths]],
        f"make {', '.join(paths)} on the stick")


def put(image: Path, offset: int, source: Path, dest: str) -> None:
    """Copy a file in, replacing what is there."""
    _env()
    run(["mcopy", "-o", "-i", _at(image, offset), source, f"::/{dest}"],
        f"copy {source.name} onto the stick")


def put_bytes(image: Path, offset: int, data: bytes, dest: str, scratch: Path) -> None:
    scratch.write_bytes(data)
    put(image, offset, scratch, dest)


def get(image: Path, offset: int, path: str) -> bytes:
    """A file's bytes as they are (mtype's output, read as text, lost CR LF and any byte that
    is not UTF-8)."""
    _env()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "file"
        run(["mcopy", "-n", "-i", _at(image, offset), f"::/{path}", copy],
            f"read {path} from the stick")
        return copy.read_bytes()


def listing(image: Path, offset: int, directory: str) -> list[str]:
    """The file names in ``directory`` (empty when it does not exist)."""
    _env()
    try:
        out = run(["mdir", "-b", "-i", _at(image, offset), f"::/{directory}"],
                  f"list {directory} on the stick")
    except BuildError:  # mdir fails on a directory that is not there
        return []
    return sorted(Path(line.strip()).name for line in out.splitlines() if line.strip())
