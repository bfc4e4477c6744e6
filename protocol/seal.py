"""Confidentiality (``--encrypt``): every datagram of a session sealed with AES-256-GCM.

Both sides hold the same 32-byte secret (a key file on the admin's machine and on the boot
stick). Sealing whole datagrams, control included, hides more than symbols alone would: a
sniffer sees neither the image's name, size and SHA-256, nor the manifest's per-block digests
(which would let it confirm guesses of a block's contents), nor which blocks are all zero.
It learns only how many datagrams of what size went where. Every datagram is also
authenticated: without the secret nobody can inject a symbol, a NAK or an announcement.

A sealed datagram::

    offset size field
    0      4    prefix  b"MC", version, SEALED
    4      12   nonce   8 bytes random per sealer, then a 4-byte counter
    16     ...  AES-256-GCM of the whole inner datagram, its 16-byte tag last

The prefix and nonce are the associated data. Nonces must never repeat under a key: every
sealer (the sender, each laptop, every run) draws its own random 8 bytes and counts the rest,
drawing anew before the counter would wrap. 2^32 datagrams per draw, and a collision between
two of a few thousand draws has a probability of about 10^-12.
"""

from __future__ import annotations

import random
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import BadPacket
from .wire import DEFAULT_SYMBOL_SIZE, MAGIC, PREFIX, PROTOCOL_VERSION, PacketType

SECRET_SIZE = 32
_TAG_SIZE = 16
_HEAD = struct.Struct("<2sBB8sI")  # prefix, random nonce part, counter
HEAD_SIZE = _HEAD.size  # 16
SEAL_OVERHEAD = HEAD_SIZE + _TAG_SIZE  # 32 bytes more per datagram


def session_symbol_size(sealed: bool, plain: int = DEFAULT_SYMBOL_SIZE) -> int:
    """The symbol size of a session whose datagrams in the clear would carry ``plain``: a
    sealed datagram is SEAL_OVERHEAD longer, so its symbols are that much shorter and it
    still fits the same MTU."""
    return plain - SEAL_OVERHEAD if sealed else plain
SEALED_PREFIX = PREFIX.pack(MAGIC, PROTOCOL_VERSION, PacketType.SEALED)
_COUNTER_END = 1 << 32
# The datagram key is derived, not the file's bytes themselves: the same secret file may later
# key something else without the two uses ever sharing a key.
_KDF_INFO = b"mcastd datagrams v1"


def is_sealed(data: bytes | memoryview) -> bool:
    return bytes(data[: len(SEALED_PREFIX)]) == SEALED_PREFIX


class Sealer:
    """Seals what one endpoint sends and opens what it receives. ``rng`` supplies only the
    nonces' random part, so it must differ between endpoints and runs: the daemons pass
    ``random.SystemRandom()``, the simulator its seeded generator."""

    __slots__ = ("_aead", "_rng", "_salt", "_counter")

    def __init__(self, secret: bytes, rng: random.Random) -> None:
        if len(secret) != SECRET_SIZE:
            raise ValueError(f"the secret must be {SECRET_SIZE} bytes")
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_KDF_INFO).derive(secret)
        self._aead = AESGCM(key)
        self._rng = rng
        self._salt = rng.randbytes(8)
        self._counter = 0

    def seal(self, datagram: bytes | memoryview) -> bytes:
        counter = self._counter
        if counter == _COUNTER_END:
            self._salt = self._rng.randbytes(8)
            counter = 0
        self._counter = counter + 1
        head = _HEAD.pack(MAGIC, PROTOCOL_VERSION, PacketType.SEALED, self._salt, counter)
        return head + self._aead.encrypt(head[4:], datagram, head)

    def open_untrusted(self, data: bytes | memoryview) -> bytes:
        """The inner datagram, or BadPacket: not sealed, damaged, or sealed with another key."""
        if len(data) < SEAL_OVERHEAD or not is_sealed(data):
            raise BadPacket("not a sealed datagram")
        head = bytes(data[:HEAD_SIZE])
        try:
            return self._aead.decrypt(head[4:], data[HEAD_SIZE:], head)
        except InvalidTag:
            raise BadPacket("sealed datagram does not open with our key") from None
