"""The prepared image: one file holding only the used blocks of a disk, already encoded as the
sender sends them, with everything needed to serve, check and deploy them.

Layout (little-endian; documented byte by byte in the README, "The prepared image")::

    0      4096   header (HEADER below, zero-padded), its magic written last of all
    4096   ...    the encoded blocks, one after another, in block order
    meta_offset   metadata: a msgpack map (name, created, note, source disk, partition table,
                  each partition's filesystem and used bytes, the used byte ranges)
    index_offset  one ENTRY per used block, by block index: kind, encoded length, offset in
                  this file, the raw block's xxh3-128 and SHA-256
    sig_offset    optional: the admin's Ed25519 public key (32) and signature (64) over the
                  header's bytes before its own digest

The header carries the SHA-256 of the metadata and the index, the root of the manifest (the
Merkle tree of protocol/manifest.py over every block's SHA-256, FREE_BLOCK_DIGEST for unused
ones) and the file's total size, then a SHA-256 over all of that. A capture writes to
``IMAGE.partial`` and renames it only after everything, the header last, is on the disk:
Ctrl-C, a full disk or a power cut leave no file that passes for an image, and a truncated or
altered copy is refused when opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol.blockcodec import BlockKind
from protocol.manifest import FREE_BLOCK_DIGEST, Manifest
from protocol.trust import Signer, image_payload, verify
from protocol.usedmap import runs_of

from .table import GPT_ENTRIES_SECTORS

MAGIC = b"MCIMAGE\n"
VERSION = 1
HEADER_SIZE = 4096
FLAG_SIGNED = 1
# magic, version, flags, header size, block size, disk size, used blocks, encoded bytes,
# meta offset/length, index offset/length, signature offset/length, file size,
# manifest root, SHA-256 of meta + index; then SHA-256 of all the fields before it.
HEADER = struct.Struct("<8sHHIQQQQQQQQQQQ32s32s")
HEADER_DIGEST_AT = HEADER.size
# block index, encoded length, kind, 3 pad bytes, offset in the file, xxh3-128, SHA-256
ENTRY = struct.Struct("<QIB3xQ16s32s")
SIGNATURE_SIZE = 32 + 64
_MAX_META = 64 << 20


class ImageFormatError(Exception):
    """Not a usable prepared image: one sentence saying what is wrong and what to do."""


@dataclass(frozen=True, slots=True)
class Entry:
    index: int  # block index on the disk
    kind: BlockKind
    length: int  # encoded payload bytes (0 for a ZERO block)
    offset: int  # where the payload starts in the image file
    xxh3: bytes  # of the raw block
    sha256: bytes  # of the raw block


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    flags: int
    block_size: int
    disk_size: int
    used_blocks: int
    encoded_bytes: int
    meta_offset: int
    meta_length: int
    index_offset: int
    index_length: int
    sig_offset: int
    sig_length: int
    file_size: int
    manifest_root: bytes
    body_digest: bytes

    @property
    def nblocks(self) -> int:
        return -(-self.disk_size // self.block_size)

    def pack(self) -> bytes:
        fields = HEADER.pack(MAGIC, self.version, self.flags, HEADER_SIZE, self.block_size,
                             self.disk_size, self.used_blocks, self.encoded_bytes,
                             self.meta_offset, self.meta_length, self.index_offset,
                             self.index_length, self.sig_offset, self.sig_length,
                             self.file_size, self.manifest_root, self.body_digest)
        return fields + hashlib.sha256(fields).digest()


def manifest_root(nblocks: int, digests: dict[int, bytes]) -> bytes:
    """The manifest's root over every block of the disk, unused ones as FREE_BLOCK_DIGEST."""
    return Manifest(b"".join(digests.get(i, FREE_BLOCK_DIGEST) for i in range(nblocks))).root


def is_prepared_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with the magic of a finished prepared image."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class ImageWriter:
    """Appends encoded blocks in block order, then writes the metadata, index, signature and,
    last, the header; only then does ``IMAGE.partial`` become ``IMAGE``."""

    def __init__(self, path: str, block_size: int, disk_size: int) -> None:
        self.path = path
        self.partial = path + ".partial"
        self.block_size = block_size
        self.disk_size = disk_size
        try:
            self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                               0o644)
        except FileExistsError:
            raise ImageFormatError(f"{self.partial} exists: another capture is writing it, or "
                                   "one was interrupted; remove it first.") from None
        except OSError as exc:
            raise ImageFormatError(f"cannot create {self.partial}: {exc.strerror}.") from None
        self._position = HEADER_SIZE
        self._entries: list[Entry] = []
        self._done = False

    @property
    def bytes_written(self) -> int:
        return self._position

    def append(self, index: int, kind: BlockKind, payload: bytes, xxh3: bytes,
               sha256: bytes) -> None:
        if self._entries and index <= self._entries[-1].index:
            raise ValueError("blocks must be appended in increasing order")
        if not 0 <= index < -(-self.disk_size // self.block_size):
            raise ValueError(f"block {index} is outside the disk")
        self._write_at(self._position, payload)
        self._entries.append(Entry(index, kind, len(payload), self._position, xxh3, sha256))
        self._position += len(payload)

    def finish(self, meta: dict[str, Any], signer: Signer | None = None) -> Header:
        """Write the rest and make the image visible under its name."""
        meta_bytes = msgpack.packb(meta, use_bin_type=True)
        index = b"".join(ENTRY.pack(e.index, e.length, e.kind, e.offset, e.xxh3, e.sha256)
                         for e in self._entries)
        meta_offset = self._position
        index_offset = meta_offset + len(meta_bytes)
        sig_offset = index_offset + len(index)
        sig_length = SIGNATURE_SIZE if signer is not None else 0
        nblocks = -(-self.disk_size // self.block_size)
        header = Header(
            VERSION, FLAG_SIGNED if signer is not None else 0, self.block_size,
            self.disk_size, len(self._entries), meta_offset - HEADER_SIZE, meta_offset,
            len(meta_bytes), index_offset, len(index), sig_offset if signer else 0,
            sig_length, sig_offset + sig_length,
            manifest_root(nblocks, {e.index: e.sha256 for e in self._entries}),
            hashlib.sha256(meta_bytes + index).digest(),
        )
        packed = header.pack()
        self._write_at(meta_offset, meta_bytes + index)
        if signer is not None:
            self._write_at(sig_offset,
                           signer.public_key + signer.sign(image_payload(packed)))
        os.fsync(self._fd)
        self._write_at(0, packed.ljust(HEADER_SIZE, b"\0"))  # the magic, at last
        os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self.partial, self.path)
        _fsync_dir(self.path)
        self._done = True
        return header

    def abort(self) -> None:
        """Remove the half-written file (Ctrl-C, a full disk, an unreadable source)."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(OSError):
            os.unlink(self.partial)

    def _write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written


class PreparedImage:
    """A prepared image opened for serving, checking or export: the header, metadata and
    index are read and checked at once (the blocks are checked as they are decoded)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ImageFormatError(f"cannot open {path}: {exc.strerror}.") from None
        try:
            self.header = self._read_header()
            self.meta, self.entries = self._read_body()
        except BaseException:
            os.close(self._fd)
            raise
        self._by_block = {e.index: e for e in self.entries}

    @property
    def signed(self) -> bool:
        return bool(self.header.flags & FLAG_SIGNED)

    def entry(self, block: int) -> Entry | None:
        """The entry of a used block; None for a block the source did not use."""
        return self._by_block.get(block)

    def read_payload(self, entry: Entry) -> bytes:
        """The stored encoded payload of one block (thread-safe)."""
        data = os.pread(self._fd, entry.length, entry.offset)
        while len(data) < entry.length:  # a short read: the end of the file, or a bad sector
            more = os.pread(self._fd, entry.length - len(data), entry.offset + len(data))
            if not more:  # (a bad sector raises OSError here instead)
                raise ImageFormatError(f"{self.path} ends inside block {entry.index}: the file "
                                       "was cut short; copy it again.")
            data += more
        return data

    def signature(self) -> tuple[bytes, bytes] | None:
        """(public key, signature) if the image is signed."""
        if not self.signed:
            return None
        data = os.pread(self._fd, SIGNATURE_SIZE, self.header.sig_offset)
        return data[:32], data[32:]

    def signature_valid(self) -> bool:
        sig = self.signature()
        if sig is None:
            return False
        return verify(sig[0], image_payload(self.header.pack()), sig[1])

    @property
    def min_size(self) -> int:
        """The smallest disk the image fits: its partitions and used blocks, and room for a
        GPT's backup after them."""
        header = self.header
        entries = self.entries
        used_end = min(header.disk_size, (entries[-1].index + 1) * header.block_size) \
            if entries else 0
        table = self.meta.get("table", {})
        ends = [int(p["start"]) + int(p["size"]) for p in table.get("partitions", [])]
        end = max([used_end, *ends])
        if table.get("label") == "gpt":
            end += (GPT_ENTRIES_SECTORS + 1) * int(table.get("sector_size", 512))
        return min(end, header.disk_size)

    def used_runs(self) -> tuple[tuple[int, int], ...]:
        """The used blocks as [start, end) runs."""
        used = bytearray(self.header.nblocks)
        for e in self.entries:
            used[e.index] = 1
        return tuple(runs_of(used))

    def manifest(self) -> Manifest:
        """The manifest of every block (FREE_BLOCK_DIGEST for unused ones), checked against
        the root the header holds (and the signature covers)."""
        digests = {e.index: e.sha256 for e in self.entries}
        manifest = Manifest(b"".join(digests.get(i, FREE_BLOCK_DIGEST)
                                     for i in range(self.header.nblocks)))
        if manifest.root != self.header.manifest_root:
            raise ImageFormatError(f"{self.path}: its block digests do not match the manifest "
                                   "root in its header; the image is damaged.")
        return manifest

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def __enter__(self) -> PreparedImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_header(self) -> Header:
        raw = os.pread(self._fd, HEADER_SIZE, 0)
        if not raw.startswith(MAGIC):
            if raw[:8] == bytes(8):
                raise ImageFormatError(f"{self.path} is an unfinished capture (its header was "
                                       "never written): capture the disk again.")
            raise ImageFormatError(f"{self.path} is not a prepared image (made by `mcastd "
                                   "capture`).")
        if len(raw) < HEADER_DIGEST_AT + 32:
            raise ImageFormatError(f"{self.path} is cut short inside its header: copy it again.")
        fields = HEADER.unpack_from(raw)
        if hashlib.sha256(raw[:HEADER_DIGEST_AT]).digest() != raw[HEADER_DIGEST_AT:
                                                                    HEADER_DIGEST_AT + 32]:
            raise ImageFormatError(f"{self.path} has a damaged header: copy it again.")
        version, header_size = fields[1], fields[3]
        if version != VERSION or header_size != HEADER_SIZE:
            raise ImageFormatError(f"{self.path} is a version {version} prepared image; this "
                                   f"mcastd reads version {VERSION}: use a matching mcastd.")
        header = Header(*(fields[1:3] + fields[4:]))  # all but the magic and header size
        actual = os.fstat(self._fd).st_size
        if actual != header.file_size:
            raise ImageFormatError(
                f"{self.path} is {actual} bytes but was written as {header.file_size}: the "
                "file was cut short or appended to; copy it again.")
        index_end = header.index_offset + header.index_length
        if not (HEADER_SIZE <= header.meta_offset <= header.meta_offset + header.meta_length
                == header.index_offset
                and header.index_length == header.used_blocks * ENTRY.size
                and index_end + header.sig_length == header.file_size
                and (header.sig_length == 0 or (header.sig_offset == index_end
                                                and header.sig_length == SIGNATURE_SIZE))
                and header.meta_length <= _MAX_META and header.block_size > 0
                and header.used_blocks <= header.nblocks):
            raise ImageFormatError(f"{self.path} has an inconsistent header: copy it again.")
        return header

    def _read_body(self) -> tuple[dict[str, Any], list[Entry]]:
        h = self.header
        body = os.pread(self._fd, h.meta_length + h.index_length, h.meta_offset)
        if hashlib.sha256(body).digest() != h.body_digest:
            raise ImageFormatError(f"{self.path}: its metadata or block index was altered or "
                                   "damaged; copy it again.")
        try:
            meta = msgpack.unpackb(body[: h.meta_length], raw=False)
        except (ValueError, msgpack.ExtraData) as exc:
            raise ImageFormatError(f"{self.path}: unreadable metadata ({exc}).") from None
        if not isinstance(meta, dict):
            raise ImageFormatError(f"{self.path}: its metadata is not a map.")
        entries = []
        previous = -1
        for i in range(h.used_blocks):
            index, length, kind, offset, xxh3, sha256 = ENTRY.unpack_from(
                body, h.meta_length + i * ENTRY.size)
            if (index <= previous or index >= h.nblocks or kind not in (0, 1, 2)
                    or offset < HEADER_SIZE or offset + length > h.meta_offset
                    or (kind == BlockKind.ZERO) != (length == 0)):
                raise ImageFormatError(f"{self.path}: entry {i} of its block index is "
                                       "impossible; the image is damaged.")
            entries.append(Entry(index, BlockKind(kind), length, offset, xxh3, sha256))
            previous = index
        return meta, entries


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
