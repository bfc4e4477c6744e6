"""Signatures that tie a session to the admin's key (Ed25519), as pure functions of bytes.

The sender signs its ANNOUNCE (everything a receiver needs to trust the session, including its
public key) and answers each JOIN's fresh nonce with a signed ACCEPT: an old announcement
replayed by someone else can never produce that answer, so a receiver that insists on a
trusted key only ever follows a live sender holding the private key.

Key files and their generation are I/O and live in ``mcastd/keys.py``.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

KEY_SIZE = 32  # raw Ed25519 public key
SIGNATURE_SIZE = 64
NONCE_SIZE = 16
_ANNOUNCE_DOMAIN = b"mcastd announce v1\0"
_ACCEPT_DOMAIN = b"mcastd accept v1\0"
_IMAGE_DOMAIN = b"mcastd prepared image v1\0"
_ABORT_DOMAIN = b"mcastd abort v1\0"
_ACCEPT = struct.Struct("<QQ")


def fingerprint(public_key: bytes) -> str:
    """How people compare keys: ``SHA256:`` and the base64 of the key's SHA-256 (as ssh)."""
    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class Signer:
    """The sender's private key, able to sign; ``public_key`` is the raw 32 bytes."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes_raw()
        self.fingerprint = fingerprint(self.public_key)

    @classmethod
    def from_raw(cls, private_bytes: bytes) -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(private_bytes))

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s over ``data``; never raises on bad input."""
    if len(public_key) != KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def announce_payload(unsigned_announce: bytes) -> bytes:
    """What an ANNOUNCE's signature covers: its encoding with an empty signature field."""
    return _ANNOUNCE_DOMAIN + unsigned_announce


def image_payload(header: bytes) -> bytes:
    """What a prepared image's signature covers: its header (which holds the digest of its
    metadata and index and the root of its manifest), in a domain of its own."""
    return _IMAGE_DOMAIN + header


def accept_payload(session_id: int, receiver_id: int, nonce: bytes) -> bytes:
    """What an ACCEPT's proof covers: this session takes this receiver, for its fresh nonce."""
    return _ACCEPT_DOMAIN + _ACCEPT.pack(session_id, receiver_id) + nonce


def abort_payload(session_id: int, reason: str) -> bytes:
    """What an ABORT's signature covers: this session stops, for this reason."""
    return _ABORT_DOMAIN + struct.pack("<Q", session_id) + reason.encode()
