"""The shared secret of --encrypt: written private, read strictly, one sentence per problem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from driver.keys import KeyFileError
from driver.secret import (
    SECRET_TYPE,
    find_default_secret,
    generate_secret,
    load_or_create_secret,
    load_secret,
)
from mcastd.cli import main


def test_a_new_secret_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "secret.key"
    secret = generate_secret(path)
    assert len(secret) == 32 and load_secret(path) == secret
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert path.read_text().startswith(SECRET_TYPE + " ")


def test_an_existing_secret_is_replaced_only_with_force(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    first = generate_secret(path)
    with pytest.raises(KeyFileError, match="already holds a secret: use --force"):
        generate_secret(path)
    assert load_secret(path) == first
    assert generate_secret(path, force=True) != first


@pytest.mark.parametrize(("content", "says"), [
    (b"", "is not an mcastd secret"),
    (b"mcastd-ed25519 AAAA\n", "is not an mcastd secret"),
    (b"mcastd-secret-v1 !!!!\n", "not valid base64"),
    (b"mcastd-secret-v1 AAAA\n", "has a 3-byte secret; it must be 32"),
])
def test_a_broken_secret_file_is_one_sentence(content: bytes, says: str, tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=says):
        load_secret(path)


def test_a_secret_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    generate_secret(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="accessible by other users: run `chmod 600"):
        load_secret(path)


def test_serve_creates_a_missing_secret_once(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    secret, created = load_or_create_secret(path)
    assert created and load_or_create_secret(path) == (secret, False)


def test_the_first_default_secret_that_exists_is_used(tmp_path: Path) -> None:
    stick, etc = tmp_path / "stick.key", tmp_path / "etc.key"
    assert find_default_secret([stick, etc]) is None
    secret = generate_secret(etc)
    assert find_default_secret([stick, etc]) == (secret, etc)


def test_keygen_secret_writes_one_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "secret.key"
    assert main(["keygen", "--secret", str(path)]) == 0
    assert f"mcastd serve --encrypt {path}" in capsys.readouterr().out
    before = path.read_bytes()
    assert main(["keygen", "--secret", str(path)]) == 2
    assert "already holds a secret" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_a_laptop_reads_the_secret_from_a_stick_without_file_modes(tmp_path: Path) -> None:
    path = tmp_path / "mcastd-secret.key"
    secret = generate_secret(path)
    path.chmod(0o755)  # as a FAT boot stick shows every file
    assert load_secret(path, private=False) == secret
    assert find_default_secret([path]) == (secret, path)
