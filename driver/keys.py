"""Key files: the sender's signing key and the fingerprints receivers trust.

The signatures themselves are pure and live in ``protocol/trust.py``; this module only reads
and writes files. Formats:

* the private key: PKCS8 PEM, unencrypted (``mcastd serve`` runs unattended in a classroom, so
  there is nobody to type a passphrase), mode 0600;
* the public key, next to it as ``KEY.pub``: one line ``mcastd-ed25519 <base64 of the raw
  32-byte key> <fingerprint>``;
* a trust file (``--trust FILE``): ``.pub`` lines and/or bare ``SHA256:...`` fingerprints, one
  per line, blank lines and ``#`` comments ignored.

Every problem is a ``KeyFileError`` carrying one plain sentence for the user.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.trust import KEY_SIZE, Signer, fingerprint

PUBLIC_KEY_TYPE = "mcastd-ed25519"
TRUST_FILE_NAME = "mcastd-trust.pub"  # next to mcast-receive on the boot stick
SYSTEM_TRUST_FILE = Path("/etc/mcastd/trust.pub")
_FINGERPRINT_PREFIX = "SHA256:"
# Key and trust files are a few hundred bytes; a cap keeps a mistaken path (a disk, a log)
# from being read whole.
_MAX_FILE_SIZE = 1 << 20


class KeyFileError(Exception):
    """A key or trust file cannot be used: one plain sentence for the user."""


class MissingKeyFile(KeyFileError):
    """No file at the key path: ``load_or_create_key`` (or the secret's) creates one instead."""


def default_key_path() -> Path:
    """``$MCASTD_KEY``, else ``$XDG_CONFIG_HOME/mcastd/sender.key`` (``~/.config`` by
    default): one key per admin account, reused by every ``serve``, so receivers keep
    trusting it."""
    explicit = os.environ.get("MCASTD_KEY")
    if explicit:
        return Path(explicit).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME")
    # The XDG spec says to ignore a relative value.
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    return base / "mcastd" / "sender.key"


# --- the sender's private key ------------------------------------------------------------------


def generate_key(path: Path, *, force: bool = False) -> Signer:
    """A new Ed25519 key written to ``path`` (0600) and its public half to ``path.pub``.

    Refuses to replace an existing key without ``force``: receivers that trust it would
    refuse every session signed by the new one."""
    try:
        return _generate(path, force=force)
    except FileExistsError:
        raise KeyFileError(
            f"{path} already holds a key: use --force to replace it (receivers that trust "
            "the old key will refuse the new one)."
        ) from None


def _generate(path: Path, *, force: bool) -> Signer:
    """``generate_key``, letting FileExistsError through for ``load_or_create_key``."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = Signer(private)
    write_private_file(path, pem, force=force)
    try:
        replace_file(public_key_path(path), (public_key_line(signer) + "\n").encode(), 0o644)
    except OSError as exc:
        raise KeyFileError(f"cannot write {exc.filename or path}: {reason(exc)}.") from None
    return signer


def write_private_file(path: Path, data: bytes, *, force: bool) -> None:
    """``data`` as a new 0600 file at ``path`` (its directory made 0700 if missing); an
    existing file is replaced only with ``force``, else FileExistsError."""
    try:
        # 0700: the directory listing reveals nothing either.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:  # a file where the directory should be
        raise KeyFileError(f"cannot write {path}: {path.parent} is not a directory.") from None
    except OSError as exc:
        raise KeyFileError(f"cannot write {path}: {reason(exc)}.") from None
    try:
        if force:
            replace_file(path, data, 0o600)
        else:
            create_private_file(path, data)
    except FileExistsError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot write {exc.filename or path}: {reason(exc)}.") from None


def public_key_path(path: Path) -> Path:
    """Where the public half of the key at ``path`` goes: ``path`` + ``.pub``."""
    return path.with_name(path.name + ".pub")


def create_private_file(path: Path, data: bytes) -> None:
    # O_EXCL: never follows a symlink planted at the path nor races another keygen, and the
    # file is 0600 from its first byte (a chmod afterwards would leave a window).
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    # A temporary file in the same directory, renamed over the old one: a crash or a full
    # disk leaves the old file whole, never a truncated key. mkstemp creates it 0600.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)  # explicit: the umask must not make a .pub unreadable
        _write_all(fd, data)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)  # a key lost to a power cut would silently become a new one


def load_key(path: Path) -> Signer:
    """The signing key at ``path``; refuses one other users could read."""
    data = read_private_file(path, f"create a key with `mcastd keygen --key {path}`")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying a passphrase is needed
        raise KeyFileError(
            f"{path} is encrypted with a passphrase: mcastd needs an unencrypted key "
            "(create one with `mcastd keygen`)."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{path} is not a PEM private key: check the path or create a key with "
            "`mcastd keygen`."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey") or "other"
        raise KeyFileError(
            f"{path} holds a key of type {kind}, not Ed25519: create one with `mcastd keygen`."
        )
    return Signer(key)


def read_private_file(path: Path, create_hint: str, *, private: bool = True) -> bytes:
    """A key file's bytes, refused if others could read it (unless not ``private``);
    ``create_hint`` says how to make one if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise MissingKeyFile(f"{path} does not exist: {create_hint}.") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {reason(exc)}.") from None
    try:
        st = os.fstat(fd)  # the mode of the file opened, not of whatever the path names now
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path} is not a regular file: give the key file itself.")
        if private and st.st_mode & 0o077:
            # As ssh: a key others can read lets them image (or read) the whole classroom.
            raise KeyFileError(
                f"{path} is accessible by other users: run `chmod 600 {path}` (and consider "
                "the key exposed if others could read it)."
            )
        return os.read(fd, _MAX_FILE_SIZE)
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {reason(exc)}.") from None
    finally:
        os.close(fd)


def load_or_create_key(path: Path) -> tuple[Signer, bool]:
    """The key at ``path``, created first if there is none; the bool says it was created.
    ``mcastd serve`` works out of the box, and keeps signing with the same key after."""
    try:
        return load_key(path), False
    except MissingKeyFile:
        pass
    try:
        return _generate(path, force=False), True
    except FileExistsError:  # another serve created it in between: use that one
        return load_key(path), False


def public_key_line(signer: Signer) -> str:
    """The ``.pub`` line (without newline): type, base64 of the raw key, fingerprint."""
    return f"{PUBLIC_KEY_TYPE} {base64.b64encode(signer.public_key).decode()} {signer.fingerprint}"


# --- what receivers trust -------------------------------------------------------------------


def is_fingerprint(text: str) -> bool:
    """Exactly as ``protocol.trust.fingerprint`` prints one: trust is compared as strings,
    so a variant spelling (padding, other base64 alphabet) must be refused, not ignored."""
    if not text.startswith(_FINGERPRINT_PREFIX):
        return False
    body = text[len(_FINGERPRINT_PREFIX):]
    try:
        digest = base64.b64decode(body + "=", validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(digest) == 32 and base64.b64encode(digest).decode().rstrip("=") == body


def parse_trust(value: str) -> frozenset[str]:
    """The fingerprints ``value`` names: a fingerprint itself, or a file of ``.pub`` lines and
    fingerprints."""
    if is_fingerprint(value):
        return frozenset({value})
    path = Path(value)
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_FILE_SIZE)
    except FileNotFoundError:
        if value.startswith(_FINGERPRINT_PREFIX):
            raise KeyFileError(
                f"{value!r} is not a valid fingerprint: copy it whole as `mcastd keygen` or "
                "`mcastd serve` print it."
            ) from None
        raise KeyFileError(
            f"{value!r} is neither a key fingerprint (SHA256:...) nor an existing file."
        ) from None
    except IsADirectoryError:
        raise KeyFileError(f"{path} is a directory: give a .pub file or a fingerprint.") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {reason(exc)}.") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise KeyFileError(
            f"{path} is not a text file: give a .pub file or a fingerprint."
        ) from None
    found: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        found.add(_trusted_line(words, f"line {number} of {path}"))
    if not found:
        # An empty set would trust nothing and refuse every session: surely not meant.
        raise KeyFileError(f"{path} holds no key: add a .pub line or a fingerprint.")
    return frozenset(found)


def _trusted_line(words: list[str], where: str) -> str:
    if is_fingerprint(words[0]):
        return words[0]  # the rest is a comment
    if words[0] != PUBLIC_KEY_TYPE:
        raise KeyFileError(
            f"{where} is neither `{PUBLIC_KEY_TYPE} KEY` nor a SHA256: fingerprint."
        )
    if len(words) < 2:
        raise KeyFileError(f"{where} has no key after {PUBLIC_KEY_TYPE}.")
    try:
        key = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{where} has a key that is not valid base64.") from None
    if len(key) != KEY_SIZE:
        raise KeyFileError(
            f"{where} has a {len(key)}-byte key; an Ed25519 public key has {KEY_SIZE}."
        )
    printed = fingerprint(key)
    # A fingerprint written after the key is what a person checked: if it disagrees, the
    # line was altered, and trusting either half could trust the wrong sender.
    if len(words) > 2 and words[2].startswith(_FINGERPRINT_PREFIX) and words[2] != printed:
        raise KeyFileError(f"{where} has a fingerprint that does not match its key.")
    return printed


def default_trust_files() -> list[Path]:
    """Where receivers look without ``--trust``: next to the program (the boot stick carries
    ``mcastd-trust.pub`` beside ``mcast-receive``), then the system's configuration."""
    return [Path(sys.argv[0]).resolve().parent / TRUST_FILE_NAME, SYSTEM_TRUST_FILE]


def find_default_trust(files: Sequence[Path] | None = None) -> frozenset[str] | None:
    """The fingerprints in the first of ``files`` (default: ``default_trust_files()``) that
    exists, None if none does. A trust file that exists but is broken raises: running
    unauthenticated because of a typo would defeat it."""
    for path in default_trust_files() if files is None else files:
        if path.exists():
            return parse_trust(str(path))
    return None


def reason(exc: OSError) -> str:
    """An OSError as the end of a sentence: 'permission denied'."""
    return (exc.strerror or str(exc)).lower()
