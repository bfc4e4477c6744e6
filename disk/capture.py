"""``mcastd capture``: a golden disk (or a raw disk image) → a prepared image of its used blocks.

The used ranges come from the partition table and each filesystem's allocation map
(disk/allocation.py). Every block holding a used byte is read, its free parts set to zero (they
hold old data that no file owns, and zeros compress to nothing), hashed and zstd-compressed in
worker threads (zstd, hashlib and pread release the GIL, so both cores work), then appended to
the image in block order. The source is only ever read: through a read-only descriptor, and
partclone through read-only loop devices.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from protocol.blockcheck import zeros_digest
from protocol.blockcodec import BlockEncoder, BlockKind
from protocol.trust import Signer

from .allocation import AllocationError, DiskUse, disk_use
from .imagefile import Header, ImageFormatError, ImageWriter
from .mounts import block_family, loop_devices_backed_by, read_mounted_users
from .sourceread import SourceReader, SourceReadError
from .table import PartitionTable, TableError, read_table

DEFAULT_BLOCK_SIZE = 1 << 20
DEFAULT_LEVEL = 3  # zstd; chosen by measurement (README, "Capture")
_IN_FLIGHT_PER_THREAD = 4  # blocks read and encoded ahead of the writer, per worker

Progress = Callable[[int, int, int], None]  # (used bytes done, used bytes in all, image bytes)


class CaptureError(Exception):
    """The capture cannot go on: one sentence saying what is wrong and what to do.
    ``started``: it failed mid-way (a read error, a full disk), not on what it was given."""

    def __init__(self, message: str, *, started: bool = False) -> None:
        super().__init__(message)
        self.started = started


@dataclass(frozen=True)
class SourceDisk:
    path: str
    size: int
    is_device: bool
    model: str = ""
    serial: str = ""
    rdev: tuple[int, int] | None = None


@dataclass
class CaptureResult:
    image: str
    header: Header
    use: DiskUse
    seconds: float
    used_bytes: int  # bytes of the source's blocks that hold something used
    image_bytes: int
    zero_blocks: int = 0  # blocks of zeros inside a filesystem's used space: kept, as data
    blocks: int = 0  # blocks kept
    meta: dict[str, Any] = field(default_factory=dict)


def open_source(path: str) -> tuple[int, SourceDisk]:
    """A read-only descriptor of the source and what it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CaptureError(f"{path} does not exist: give the golden disk (/dev/sda, "
                           "/dev/nvme0n1) or a raw disk image file.") from None
    except PermissionError:
        raise CaptureError(f"cannot read {path}: permission denied (run as root).") from None
    except OSError as exc:
        raise CaptureError(f"cannot open {path}: {exc.strerror}.") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise CaptureError(f"{path} is a directory: give a disk or a raw disk image file.")
    if stat.S_ISBLK(st.st_mode):
        rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        model, serial = _identity(rdev)
        return fd, SourceDisk(path, os.lseek(fd, 0, os.SEEK_END), True, model, serial, rdev)
    return fd, SourceDisk(path, st.st_size, False)


def check_source(source: SourceDisk, image: str) -> None:
    """Refuse a source that a mounted filesystem may change while we read it (the image would
    be torn), and an image that would be written onto the source itself."""
    devices = [source.rdev] if source.rdev is not None else loop_devices_backed_by(source.path)
    for rdev in devices:
        users = read_mounted_users(rdev, writers_only=True)
        if users:
            raise CaptureError(
                f"{source.path} is in use: {'; '.join(users)}. A filesystem that is mounted "
                "read-write changes while it is read: unmount it (or boot the golden laptop "
                "from the stick) and capture again.")
    image_dir = os.path.dirname(os.path.abspath(image))
    if source.rdev is not None:
        family = block_family(source.rdev, Path("/sys/class/block"))
        here = os.stat(image_dir).st_dev
        if (os.major(here), os.minor(here)) in family:
            raise CaptureError(f"{image} would be written onto {source.path} itself: put the "
                               "image on another disk (a second USB disk, the stick).")
    elif os.path.exists(image) and os.path.samefile(image, source.path):
        raise CaptureError(f"{image} is the source itself: give the image another name.")


def plan(source: SourceDisk) -> DiskUse:
    """The partition table and the used ranges of every partition."""
    try:
        table = read_table(source.path, source.size)
        return disk_use(source.path, table)
    except (TableError, AllocationError) as exc:
        raise CaptureError(str(exc)) from None


def capture(source_path: str, image: str, *, name: str = "", note: str = "",
            level: int = DEFAULT_LEVEL, block_size: int = DEFAULT_BLOCK_SIZE,
            threads: int = 2, signer: Signer | None = None,
            progress: Progress | None = None, skip_unreadable: bool = False,
            on_plan: Callable[[DiskUse], None] | None = None,
            clock: Callable[[], float] = time.time) -> CaptureResult:
    """Capture ``source_path`` into the prepared image ``image``. Nothing that looks like an
    image is left behind if this fails or is interrupted. ``skip_unreadable``: bad sectors
    are taken as zeros and recorded in the metadata (disk/sourceread.py) instead of stopping."""
    started = time.monotonic()
    fd, source = open_source(source_path)
    try:
        check_source(source, image)
        if os.path.exists(image):
            raise CaptureError(f"{image} exists: remove it or choose another name.")
        use = plan(source)
        if on_plan is not None:
            on_plan(use)
        used = use.used
        blocks = list(used.blocks(block_size))
        used_total = sum(min(block_size, source.size - b * block_size) for b in blocks)
        writer = ImageWriter(image, block_size, source.size)
        reader = SourceReader(fd, source.path, skip_unreadable)
        try:
            zero, kept = _encode_all(reader, source, use, blocks, block_size, level, threads,
                                     writer, used_total, progress)
            meta = metadata(source, use, name or os.path.basename(source_path), note, level,
                            clock())
            meta["unreadable"] = [list(r) for r in reader.unreadable]
            header = writer.finish(meta, signer)
        except SourceReadError as exc:
            raise CaptureError(str(exc), started=True) from None
        except OSError as exc:
            raise _write_error(exc, image) from None
        finally:
            writer.abort()  # a no-op once finished
    except ImageFormatError as exc:
        raise CaptureError(str(exc)) from None
    finally:
        os.close(fd)
    return CaptureResult(image, header, use, time.monotonic() - started, used_total,
                         header.file_size, zero, kept, meta)


Encoded = tuple[int, BlockKind, bytes, bytes, bytes] | None  # None: a free block of zeros


def _encode_all(reader: SourceReader, source: SourceDisk, use: DiskUse, blocks: list[int],
                block_size: int, level: int, threads: int, writer: ImageWriter,
                used_total: int, progress: Progress | None) -> tuple[int, int]:
    """Read, clean, hash and encode the blocks in worker threads; append them in order.
    Returns the zero blocks kept (data) and the blocks kept in all."""
    local = threading.local()
    used, mapped = use.used, use.mapped

    def encode(index: int) -> Encoded:
        encoder = getattr(local, "encoder", None)
        if encoder is None:
            encoder = local.encoder = BlockEncoder(level)
        start = index * block_size
        length = min(block_size, source.size - start)
        raw = used.read_masked(reader.read, start, length)
        kind, payload = encoder.encode(raw)
        if kind == BlockKind.ZERO:
            if not mapped.clip(start, start + length):
                return None  # zeros no filesystem claims: free space, not data
            return index, kind, payload, xxhash.xxh3_128_digest(raw), zeros_digest(length)
        return index, kind, payload, payload[:16], hashlib.sha256(raw).digest()

    done = zero = kept = 0

    def append(result: Encoded, length: int) -> None:
        nonlocal done, zero, kept
        if result is not None:
            writer.append(*result)
            zero += result[1] == BlockKind.ZERO
            kept += 1
        done += length
        if progress is not None:
            progress(done, used_total, writer.bytes_written)

    window: deque[tuple[Future[Encoded], int]] = deque()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="capture") as pool:
        try:
            for index in blocks:
                length = min(block_size, source.size - index * block_size)
                window.append((pool.submit(encode, index), length))
                if len(window) >= threads * _IN_FLIGHT_PER_THREAD:
                    future, length = window.popleft()
                    append(future.result(), length)
            while window:
                future, length = window.popleft()
                append(future.result(), length)
        except BaseException:
            for future, _ in window:
                future.cancel()
            raise
    return zero, kept


def metadata(source: SourceDisk, use: DiskUse, name: str, note: str, level: int,
             created: float) -> dict[str, Any]:
    """What `mcastd image info` shows and deploying needs: where it came from, its table, each
    partition's filesystem and use, and the used byte ranges."""
    table: PartitionTable = use.table
    return {
        "name": name,
        "note": note,
        "created": created,
        "level": level,
        "source": {"path": source.path, "size": source.size, "model": source.model,
                   "serial": source.serial},
        "table": {key: value for key, value in asdict(table).items() if key != "partitions"}
        | {"partitions": [asdict(p) for p in table.partitions]},
        "partitions": [{"number": p.partition.number, "filesystem": p.filesystem,
                        "method": p.method, "used_bytes": p.used_bytes}
                       for p in use.partitions],
        "used": [list(r) for r in use.used],
    }


def _identity(rdev: tuple[int, int]) -> tuple[str, str]:
    """Model and serial of a disk, from sysfs (there is no udev on a boot stick)."""
    base = Path(f"/sys/dev/block/{rdev[0]}:{rdev[1]}/device")
    values = []
    for names in (("model",), ("serial", "vpd_pg80")):
        value = ""
        for item in names:
            try:
                value = (base / item).read_bytes().decode("ascii", "replace")
            except OSError:
                continue
            value = "".join(ch for ch in value if ch.isprintable()).strip()
            if value:
                break
        values.append(value)
    return values[0], values[1]


def _write_error(exc: OSError, image: str) -> CaptureError:
    if exc.errno == errno.ENOSPC:
        return CaptureError(f"the disk holding {image} is full: free space there or capture "
                            "to a larger disk; nothing was kept.", started=True)
    return CaptureError(f"writing {image} failed: {exc.strerror}; nothing was kept.",
                        started=True)
