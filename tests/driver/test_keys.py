"""Key files on disk: the sender's private key (0600, never overwritten by accident), its .pub
line, and the trust files receivers read. Each error is one sentence that names the file."""

from __future__ import annotations

import base64
import os
import stat
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa

from driver.keys import (
    KeyFileError,
    default_key_path,
    default_trust_files,
    find_default_trust,
    generate_key,
    is_fingerprint,
    load_key,
    load_or_create_key,
    parse_trust,
    public_key_line,
    public_key_path,
)
from protocol.trust import Signer, fingerprint, verify


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_sentence(exc: pytest.ExceptionInfo[KeyFileError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.endswith(".")
    return text


def write_pem(path: Path, pem: bytes) -> Path:
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


# --- default path --------------------------------------------------------------------------


def test_default_key_path_prefers_mcastd_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCASTD_KEY", "/srv/keys/room12.key")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/elsewhere")
    assert default_key_path() == Path("/srv/keys/room12.key")


def test_default_key_path_follows_xdg_config_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCASTD_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/cfg")
    assert default_key_path() == Path("/cfg/mcastd/sender.key")


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])
def test_default_key_path_falls_back_to_dot_config(
    xdg: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MCASTD_KEY", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert default_key_path() == tmp_path / ".config" / "mcastd" / "sender.key"


# --- generate ------------------------------------------------------------------------------


def test_generate_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "mcastd" / "sender.key"
    signer = generate_key(path)
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_key(path).fingerprint == signer.fingerprint
    assert signer.fingerprint == fingerprint(signer.public_key)
    assert [p.name for p in path.parent.iterdir()] == sorted(["sender.key", "sender.key.pub"])


def test_generate_writes_the_public_line_next_to_it(tmp_path: Path) -> None:
    path = tmp_path / "sender.key"
    signer = generate_key(path)
    pub = public_key_path(path)
    assert pub == tmp_path / "sender.key.pub"
    assert mode_of(pub) == 0o644
    text = pub.read_text()
    assert text == public_key_line(signer) + "\n"
    kind, key, printed = text.split()
    assert kind == "mcastd-ed25519"
    assert base64.b64decode(key) == signer.public_key
    assert printed == signer.fingerprint
    assert parse_trust(str(pub)) == {signer.fingerprint}


def test_a_loaded_key_signs_what_its_pub_line_verifies(tmp_path: Path) -> None:
    path = tmp_path / "sender.key"
    generate_key(path)
    key = base64.b64decode(public_key_path(path).read_text().split()[1])
    assert verify(key, b"announce", load_key(path).sign(b"announce"))


def test_generate_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    path = tmp_path / "sender.key"
    first = generate_key(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError) as exc:
        generate_key(path)
    assert one_sentence(exc) == (
        f"{path} already holds a key: use --force to replace it (receivers that trust the "
        "old key will refuse the new one)."
    )
    assert path.read_bytes() == before
    assert load_key(path).fingerprint == first.fingerprint


def test_generate_with_force_replaces_the_key_and_its_pub(tmp_path: Path) -> None:
    path = tmp_path / "sender.key"
    first = generate_key(path)
    second = generate_key(path, force=True)
    assert second.fingerprint != first.fingerprint
    assert load_key(path).fingerprint == second.fingerprint
    assert mode_of(path) == 0o600
    assert parse_trust(str(public_key_path(path))) == {second.fingerprint}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sender.key", "sender.key.pub"]


def test_generate_with_force_creates_a_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "sender.key"
    signer = generate_key(path, force=True)
    assert mode_of(path) == 0o600
    assert load_key(path).fingerprint == signer.fingerprint


def test_generate_ignores_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        path = tmp_path / "sender.key"
        generate_key(path)
        generate_key(path, force=True)
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600
    assert mode_of(public_key_path(path)) == 0o644


def test_generate_into_a_file_as_directory_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(KeyFileError) as exc:
        generate_key(tmp_path / "file" / "sender.key")
    assert one_sentence(exc).startswith("cannot write ")


# --- load ----------------------------------------------------------------------------------


def test_load_a_missing_key_says_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(KeyFileError) as exc:
        load_key(path)
    assert one_sentence(exc) == (
        f"{path} does not exist: create a key with `mcastd keygen --key {path}`."
    )


def test_load_garbage_is_refused(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "garbage.key", b"not a key at all\n")
    with pytest.raises(KeyFileError) as exc:
        load_key(path)
    assert f"{path} is not a PEM private key" in one_sentence(exc)


def test_load_a_public_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sender.key"
    generate_key(path)
    pub = write_pem(tmp_path / "given.key", public_key_path(path).read_bytes())
    with pytest.raises(KeyFileError) as exc:
        load_key(pub)
    assert "is not a PEM private key" in one_sentence(exc)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: rsa.generate_private_key(65537, 2048), "RSA"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "EC"),
        (lambda: ed448.Ed448PrivateKey.generate(), "Ed448"),
    ],
)
def test_load_another_key_type_is_refused(
    make: object, kind: str, tmp_path: Path
) -> None:
    assert callable(make)
    pem = make().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = write_pem(tmp_path / "other.key", pem)
    with pytest.raises(KeyFileError) as exc:
        load_key(path)
    assert one_sentence(exc) == (
        f"{path} holds a key of type {kind}, not Ed25519: create one with `mcastd keygen`."
    )


def test_load_an_encrypted_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    path = write_pem(tmp_path / "locked.key", pem)
    with pytest.raises(KeyFileError) as exc:
        load_key(path)
    assert "encrypted with a passphrase" in one_sentence(exc)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o601])
def test_load_a_key_others_can_reach_is_refused(mode: int, tmp_path: Path) -> None:
    path = tmp_path / "sender.key"
    generate_key(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as exc:
        load_key(path)
    assert f"run `chmod 600 {path}`" in one_sentence(exc)
    path.chmod(0o600)
    load_key(path)  # fixed as told


def test_load_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as exc:
        load_key(tmp_path)
    assert str(tmp_path) in one_sentence(exc)


def test_load_or_create_creates_once_then_loads_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "sender.key"
    first, created = load_or_create_key(path)
    assert created and mode_of(path) == 0o600 and public_key_path(path).exists()
    again, created_again = load_or_create_key(path)
    assert not created_again
    assert again.fingerprint == first.fingerprint


def test_load_or_create_never_replaces_a_bad_key(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "sender.key", b"garbage")
    with pytest.raises(KeyFileError):
        load_or_create_key(path)
    assert path.read_bytes() == b"garbage"


# --- trust ---------------------------------------------------------------------------------


@pytest.fixture
def signers() -> list[Signer]:
    return [Signer.from_raw(bytes([n]) * 32) for n in range(1, 4)]


def test_a_fingerprint_is_trusted_as_given(signers: list[Signer]) -> None:
    assert parse_trust(signers[0].fingerprint) == frozenset({signers[0].fingerprint})


@pytest.mark.parametrize(
    "bad",
    [
        "SHA256:",
        "SHA256:abc",
        "sha256:{body}",  # wrong case: fingerprints compare as strings
        "SHA256:{body}=",  # padded
        "SHA256:{body}x",
        "MD5:{body}",
    ],
)
def test_only_exact_fingerprints_count(bad: str, signers: list[Signer]) -> None:
    body = signers[0].fingerprint.removeprefix("SHA256:")
    assert is_fingerprint(signers[0].fingerprint)
    assert not is_fingerprint(bad.format(body=body))


def test_a_mangled_fingerprint_is_one_sentence(signers: list[Signer]) -> None:
    value = signers[0].fingerprint[:-3]
    with pytest.raises(KeyFileError) as exc:
        parse_trust(value)
    assert one_sentence(exc).startswith(f"{value!r} is not a valid fingerprint")


def test_nonsense_is_neither_fingerprint_nor_file(tmp_path: Path) -> None:
    value = str(tmp_path / "room12")
    with pytest.raises(KeyFileError) as exc:
        parse_trust(value)
    assert one_sentence(exc) == (
        f"{value!r} is neither a key fingerprint (SHA256:...) nor an existing file."
    )


def test_a_trust_file_of_several_lines_comments_and_fingerprints(
    tmp_path: Path, signers: list[Signer]
) -> None:
    path = tmp_path / "trust.pub"
    path.write_text(
        "# room 12 and the spare laptop\n"
        "\n"
        f"{public_key_line(signers[0])}\n"
        f"   mcastd-ed25519 {base64.b64encode(signers[1].public_key).decode()} admin@lab  \n"
        "    # indented comment\n"
        f"{signers[2].fingerprint} spare sender\n"
        f"{signers[2].fingerprint}\n"
    )
    assert parse_trust(str(path)) == frozenset(s.fingerprint for s in signers)


def test_a_malformed_line_is_named(tmp_path: Path, signers: list[Signer]) -> None:
    path = tmp_path / "trust.pub"
    path.write_text(f"# ok\n{public_key_line(signers[0])}\nssh-ed25519 AAAA me@host\n")
    with pytest.raises(KeyFileError) as exc:
        parse_trust(str(path))
    assert one_sentence(exc) == (
        f"line 3 of {path} is neither `mcastd-ed25519 KEY` nor a SHA256: fingerprint."
    )


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("mcastd-ed25519", "line 1 of {path} has no key after mcastd-ed25519."),
        ("mcastd-ed25519 not*base64", "line 1 of {path} has a key that is not valid base64."),
        (f"mcastd-ed25519 {base64.b64encode(bytes(31)).decode()}",
         "line 1 of {path} has a 31-byte key; an Ed25519 public key has 32."),
        (f"mcastd-ed25519 {base64.b64encode(bytes(33)).decode()} x",
         "line 1 of {path} has a 33-byte key; an Ed25519 public key has 32."),
    ],
)
def test_bad_key_lines_are_refused(line: str, says: str, tmp_path: Path) -> None:
    path = tmp_path / "trust.pub"
    path.write_text(line + "\n")
    with pytest.raises(KeyFileError) as exc:
        parse_trust(str(path))
    assert one_sentence(exc) == says.format(path=path)


def test_a_key_line_whose_fingerprint_disagrees_is_refused(
    tmp_path: Path, signers: list[Signer]
) -> None:
    key = base64.b64encode(signers[0].public_key).decode()
    path = tmp_path / "trust.pub"
    path.write_text(f"mcastd-ed25519 {key} {signers[1].fingerprint}\n")
    with pytest.raises(KeyFileError) as exc:
        parse_trust(str(path))
    assert "line 1 of" in one_sentence(exc) and "does not match its key" in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"# only a comment\n\n"])
def test_a_trust_file_without_keys_is_refused(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "trust.pub"
    path.write_bytes(content)
    with pytest.raises(KeyFileError) as exc:
        parse_trust(str(path))
    assert one_sentence(exc) == f"{path} holds no key: add a .pub line or a fingerprint."


def test_a_binary_trust_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sender.key.pub"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(KeyFileError) as exc:
        parse_trust(str(path))
    assert "is not a text file" in one_sentence(exc)


def test_a_directory_is_not_a_trust_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as exc:
        parse_trust(str(tmp_path))
    assert "is a directory" in one_sentence(exc)


# --- default trust -------------------------------------------------------------------------


def test_default_trust_files_are_next_to_the_program_then_etc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "stick" / "mcast-receive"
    monkeypatch.setattr(sys, "argv", [str(program)])
    assert default_trust_files() == [
        tmp_path / "stick" / "mcastd-trust.pub", Path("/etc/mcastd/trust.pub"),
    ]


def test_find_default_trust_reads_the_first_that_exists(
    tmp_path: Path, signers: list[Signer]
) -> None:
    first, second = tmp_path / "a.pub", tmp_path / "b.pub"
    assert find_default_trust([first, second]) is None
    second.write_text(signers[1].fingerprint + "\n")
    assert find_default_trust([first, second]) == frozenset({signers[1].fingerprint})
    first.write_text(public_key_line(signers[0]) + "\n")
    assert find_default_trust([first, second]) == frozenset({signers[0].fingerprint})


def test_a_broken_default_trust_file_is_an_error_not_unauthenticated(tmp_path: Path) -> None:
    broken = tmp_path / "mcastd-trust.pub"
    broken.write_text("mcastd-ed25519 AAAA\n")
    with pytest.raises(KeyFileError):
        find_default_trust([broken])


def test_find_default_trust_uses_the_program_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signers: list[Signer]
) -> None:
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "mcast-receive")])
    (tmp_path / "mcastd-trust.pub").write_text(public_key_line(signers[2]) + "\n")
    assert find_default_trust() == frozenset({signers[2].fingerprint})
