"""The shared secret of ``--encrypt``: one file, the same on the admin's machine and on every
boot stick (the datagram sealing itself is pure and lives in ``protocol/seal.py``).

Format: one line ``mcastd-secret-v1 <base64 of 32 random bytes>``, mode 0600. Text, so it can
be checked by eye and copied with any editor; short, so a wrong path is refused at once.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from protocol.seal import SECRET_SIZE

from .keys import KeyFileError, MissingKeyFile, read_private_file, write_private_file

SECRET_TYPE = "mcastd-secret-v1"
SECRET_FILE_NAME = "mcastd-secret.key"  # next to mcast-receive on the boot stick
SYSTEM_SECRET_FILE = Path("/etc/mcastd/secret.key")


def generate_secret(path: Path, *, force: bool = False) -> bytes:
    """A new secret written to ``path`` (0600); an existing one is replaced only with
    ``force``: laptops holding the old one could no longer open the sessions."""
    secret = os.urandom(SECRET_SIZE)
    line = f"{SECRET_TYPE} {base64.b64encode(secret).decode()}\n".encode()
    try:
        write_private_file(path, line, force=force)
    except FileExistsError:
        raise KeyFileError(
            f"{path} already holds a secret: use --force to replace it (laptops with the old "
            "one will no longer open the sessions)."
        ) from None
    return secret


def load_secret(path: Path, *, private: bool = True) -> bytes:
    """The secret in ``path``. ``private``: refuse a file others could read, as the admin's
    machine must; a laptop reads it from its boot stick, whose FAT file system has no modes,
    and has no other users."""
    data = read_private_file(path, f"create one with `mcastd keygen --secret {path}` and copy "
                                   "it to the sender and every boot stick", private=private)
    words = data.split()
    if len(words) != 2 or words[0] != SECRET_TYPE.encode():
        raise KeyFileError(f"{path} is not an mcastd secret: expected one line "
                           f"`{SECRET_TYPE} BASE64` as `mcastd keygen --secret` writes it.")
    try:
        secret = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{path} has a secret that is not valid base64.") from None
    if len(secret) != SECRET_SIZE:
        raise KeyFileError(f"{path} has a {len(secret)}-byte secret; it must be {SECRET_SIZE}.")
    return secret


def load_or_create_secret(path: Path) -> tuple[bytes, bool]:
    """The secret at ``path``, created first if there is none; the bool says it was created."""
    try:
        return load_secret(path), False
    except MissingKeyFile:
        pass
    try:
        return generate_secret(path), True
    except KeyFileError:
        if path.exists():  # another serve created it in between: use that one
            return load_secret(path), False
        raise


def default_secret_files() -> list[Path]:
    """Where receivers look without ``--encrypt``: next to the program, then the system's."""
    return [Path(sys.argv[0]).resolve().parent / SECRET_FILE_NAME, SYSTEM_SECRET_FILE]


def find_default_secret(files: Sequence[Path] | None = None) -> tuple[bytes, Path] | None:
    """For a laptop: the secret in the first of ``files`` that exists (and where), None if
    none does. One that exists but is broken raises: imaging in the clear because of a typo
    would defeat it."""
    for path in default_secret_files() if files is None else files:
        if path.exists():
            return load_secret(path, private=False), path
    return None
