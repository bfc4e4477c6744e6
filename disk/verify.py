"""Checking a prepared image end to end without the network: every block decodes and matches
its SHA-256, the manifest's root holds, and the signature (if any) is valid."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from protocol.blockcodec import BlockCorrupt, BlockDecoder
from protocol.trust import fingerprint

from .imagefile import Entry, ImageFormatError, PreparedImage

Progress = Callable[[int, int], None]  # (raw bytes checked, raw bytes in all)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: tuple[str, ...]  # one sentence each, the first bad block first
    blocks: int
    raw_bytes: int  # bytes of the disk the checked blocks hold
    signer: str = ""  # the fingerprint that signed it ("" if unsigned)


def verify_image(path: str, *, threads: int = 2, trusted: frozenset[str] | None = None,
                 progress: Progress | None = None) -> Verdict:
    """Check everything; never stops at the first problem (up to 10 are listed)."""
    problems: list[str] = []
    with PreparedImage(path) as image:
        try:
            image.manifest()
        except ImageFormatError as exc:
            problems.append(str(exc))
        signer = ""
        signature = image.signature()
        if signature is not None:
            signer = fingerprint(signature[0])
            if not image.signature_valid():
                problems.append(f"its signature by {signer} does not verify: the image was "
                                "altered after it was signed.")
        if trusted is not None and signer not in trusted:
            problems.append("it is not signed by a trusted key" if not signer else
                            f"it is signed by {signer}, which is not a trusted key")
        header = image.header
        local = threading.local()

        def check(entry: Entry) -> tuple[int, str]:
            decoder = getattr(local, "decoder", None)
            if decoder is None:
                decoder = local.decoder = BlockDecoder()
            length = min(header.block_size, header.disk_size - entry.index * header.block_size)
            try:
                raw = decoder.decode(entry.kind, image.read_payload(entry), length)
            except BlockCorrupt as exc:
                return length, f"block {entry.index} does not decode ({exc})"
            except ImageFormatError as exc:
                return length, str(exc)
            if hashlib.sha256(raw).digest() != entry.sha256:
                return length, f"block {entry.index} does not match its SHA-256"
            return length, ""

        done = 0
        total = sum(min(header.block_size, header.disk_size - e.index * header.block_size)
                    for e in image.entries)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="verify") as pool:
            for length, problem in pool.map(check, image.entries):
                done += length
                if problem and len(problems) < 10:
                    problems.append(problem)
                if progress is not None:
                    progress(done, total)
    return Verdict(not problems, tuple(problems), len(image.entries), total, signer)
