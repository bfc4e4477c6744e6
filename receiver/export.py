"""`mcast-receive TARGET --from-image IMAGE` (and `mcastd image export`): a prepared image
written to a disk or a raw disk image with the receiver's own writer, without the network.

Exactly what a laptop does with a session, in order: the target's checks (not mounted, not
in use, large enough for what the image needs), each used block decoded and checked against
its SHA-256 before it is written, the free ranges discarded (TRIM on a disk, holes in a
file), every used block read back from the disk and checked, the GPT made right for this
disk, and the last partition grown on request.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from disk.imagefile import Entry, ImageFormatError, PreparedImage
from disk.resize import ResizeError, fit_table, grow_last_partition
from protocol.blockcodec import BlockCorrupt, BlockDecoder, BlockKind
from protocol.usedmap import runs_of

from .target import Target, TargetError, check_fits, check_target

Progress = Callable[[str, int, int], None]  # (phase, bytes done, bytes in all)


class ExportError(Exception):
    """The image could not be written: one sentence."""


def export_image(image_path: str, target_path: str, *, grow: bool = False, threads: int = 2,
                 progress: Progress | None = None) -> tuple[int, int]:
    """Write the prepared image to the target. Returns (bytes verified, bytes discarded)."""
    try:
        image = PreparedImage(image_path)
    except ImageFormatError as exc:
        raise ExportError(str(exc)) from None
    with image:
        header = image.header
        try:
            info = check_target(target_path)
            check_fits(info, image.min_size)
            size = header.disk_size if info.size is None else min(
                header.disk_size, max(image.min_size, info.size))
            with Target(info, size) as target:
                total = sum(_length(image, e) for e in image.entries)
                _write_blocks(image, target, total, threads, progress)
                for start, end in runs_of(bytes(image.entry(i) is None
                                                for i in range(header.nblocks))):
                    offset = start * header.block_size
                    if offset < size:
                        target.discard(offset, min(end * header.block_size, size) - offset)
                result = target.verify_blocks(
                    ((e.index * header.block_size, _length(image, e), e.sha256)
                     for e in image.entries),
                    progress=(lambda done: progress("verifying", done, total))
                    if progress else None)
                if not result.ok:
                    raise ExportError(
                        f"{target_path} returned other bytes than were written at byte "
                        f"{result.first_bad} ({result.bad_blocks} block(s)): the disk does not "
                        "keep what it is given; replace it")
                discarded = target.bytes_discarded
                target.sync()
            fit_table(target_path)
            if grow:
                grow_last_partition(target_path, info.size or size)
        except (TargetError, ResizeError) as exc:
            raise ExportError(str(exc)) from None
    return result.verified_bytes, discarded


def _length(image: PreparedImage, entry: Entry) -> int:
    header = image.header
    return min(header.block_size, header.disk_size - entry.index * header.block_size)


def _write_blocks(image: PreparedImage, target: Target, total: int, threads: int,
                  progress: Progress | None) -> None:
    """Decode, check and write every used block, two worker threads at a time."""
    local = threading.local()
    block_size = image.header.block_size

    def write(entry: Entry) -> int:
        decoder = getattr(local, "decoder", None)
        if decoder is None:
            decoder = local.decoder = BlockDecoder()
        length = _length(image, entry)
        offset = entry.index * block_size
        try:
            raw = decoder.decode(entry.kind, image.read_payload(entry), length)
        except (BlockCorrupt, ImageFormatError) as exc:
            raise ExportError(f"block {entry.index} of {image.path} is damaged ({exc}); "
                              "nothing more was written: copy or capture the image "
                              "again") from None
        if hashlib.sha256(raw).digest() != entry.sha256:
            raise ExportError(f"block {entry.index} of {image.path} does not match its "
                              "SHA-256; nothing more was written: copy or capture the image "
                              "again")
        if entry.kind == BlockKind.ZERO:
            target.write_zeros(offset, length)  # zeros a filesystem uses: data, written
        else:
            target.write_block(offset, raw)
        return length

    done = 0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="export") as pool:
        for length in pool.map(write, image.entries):
            done += length
            if progress is not None:
                progress("writing", done, total)
