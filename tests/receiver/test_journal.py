"""The resume journal: only blocks flushed after a target sync survive a reopen.

A SIGKILL is simulated by opening a second Journal on the same file without flushing the first.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from receiver.journal import Journal, JournalError, default_state_dir

SHA = hashlib.sha256(b"image").digest()
OTHER_SHA = hashlib.sha256(b"another image").digest()
BLOCK = 1 << 20
SIZE = 10 * BLOCK + 123  # 11 blocks, the last one short


def nothing() -> None:
    pass


def open_journal(state: Path, target: Path, sha: bytes = SHA, size: int = SIZE,
                 block: int = BLOCK) -> Journal:
    return Journal.open(state, str(target), sha, size, block)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "disk.img"


def reopened(state: Path, target: Path) -> list[int]:
    journal = open_journal(state, target)
    try:
        return journal.stored()
    finally:
        journal.close()


def test_a_fresh_journal_is_empty_and_lives_in_a_private_dir(state: Path, target: Path) -> None:
    journal = open_journal(state, target)
    name = hashlib.sha256(os.path.realpath(target).encode()).hexdigest()[:16] + ".journal"
    assert journal.path == state / name
    assert journal.path.is_file()
    assert journal.nblocks == 11
    assert journal.stored() == []
    assert journal.unflushed == 0
    assert state.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in state.iterdir()) == [name]  # no temporary file left behind
    journal.close()


@pytest.mark.parametrize(("size", "block", "nblocks"),
                         [(0, 512, 0), (1, 512, 1), (512, 512, 1), (513, 512, 2), (4096, 512, 8),
                          (4097, 512, 9)])
def test_the_block_count_rounds_up(state: Path, target: Path, size: int, block: int,
                                   nblocks: int) -> None:
    journal = open_journal(state, target, size=size, block=block)
    assert journal.nblocks == nblocks
    if nblocks:
        journal.record(nblocks - 1)
        journal.flush(nothing)
    journal.close()
    again = open_journal(state, target, size=size, block=block)
    assert again.stored() == ([nblocks - 1] if nblocks else [])
    again.close()


def test_flushed_blocks_survive_a_reopen(state: Path, target: Path) -> None:
    journal = open_journal(state, target)
    for index in (10, 0, 3, 8, 3):
        journal.record(index)
    assert journal.unflushed == 4
    journal.flush(nothing)
    assert journal.unflushed == 0
    assert journal.stored() == [0, 3, 8, 10]
    assert reopened(state, target) == [0, 3, 8, 10]  # while the first is still open
    journal.close()
    assert reopened(state, target) == [0, 3, 8, 10]


def test_recorded_but_unflushed_blocks_are_not_trusted_after_a_kill(state: Path,
                                                                      target: Path) -> None:
    journal = open_journal(state, target)
    journal.record(1)
    journal.flush(nothing)
    journal.record(2)
    journal.record(5)
    assert journal.unflushed == 2
    assert reopened(state, target) == [1]  # "killed": the pending blocks were never flushed
    journal.close()


def test_the_target_is_synced_before_the_journal_claims_the_blocks(state: Path,
                                                                     target: Path) -> None:
    journal = open_journal(state, target)
    seen: list[list[int]] = []

    def sync_target() -> None:
        seen.append(reopened(state, target))  # what a crash right now would leave

    journal.record(4)
    journal.flush(sync_target)
    journal.record(7)
    journal.flush(sync_target)
    assert seen == [[], [4]]
    assert reopened(state, target) == [4, 7]
    journal.close()


def test_a_flush_with_nothing_new_does_not_sync(state: Path, target: Path) -> None:
    journal = open_journal(state, target)
    calls: list[None] = []

    def sync_target() -> None:
        calls.append(None)

    journal.flush(sync_target)
    assert calls == []
    journal.record(2)
    journal.flush(sync_target)
    assert len(calls) == 1
    journal.flush(sync_target)
    journal.record(2)  # rewritten after it became durable: nothing to sync
    journal.flush(sync_target)
    assert len(calls) == 1
    journal.close()


def test_a_failed_target_sync_keeps_the_blocks_pending(state: Path, target: Path) -> None:
    journal = open_journal(state, target)
    journal.record(3)
    journal.record(9)

    def failing() -> None:
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        journal.flush(failing)
    assert journal.unflushed == 2
    assert journal.stored() == []
    assert reopened(state, target) == []
    journal.record(6)
    journal.flush(nothing)
    assert journal.unflushed == 0
    assert reopened(state, target) == [3, 6, 9]
    journal.close()


@pytest.mark.parametrize("call", ["pwrite", "fdatasync"])
def test_a_failed_journal_write_keeps_the_blocks_pending(state: Path, target: Path, call: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    journal = open_journal(state, target)
    journal.record(1)

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, call, broken)
        with pytest.raises(OSError, match="No space"):
            journal.flush(nothing)
    assert journal.unflushed == 1
    assert journal.stored() == []
    journal.flush(nothing)
    assert journal.stored() == [1]
    assert reopened(state, target) == [1]
    journal.close()


@pytest.mark.parametrize(("sha", "size", "block"),
                         [(OTHER_SHA, SIZE, BLOCK), (SHA, SIZE + 1, BLOCK),
                          (SHA, SIZE, BLOCK // 2), (SHA, 11 * BLOCK, BLOCK)])
def test_a_journal_of_another_image_starts_empty(state: Path, target: Path, sha: bytes,
                                                 size: int, block: int) -> None:
    journal = open_journal(state, target)
    journal.record(0)
    journal.flush(nothing)
    journal.close()
    other = open_journal(state, target, sha=sha, size=size, block=block)
    assert other.path == journal.path  # same target, same file: overwritten
    assert other.stored() == []
    other.close()
    assert reopened(state, target) == []  # the old image's blocks are gone for good


def test_a_journal_of_another_target_starts_empty(state: Path, target: Path,
                                                  tmp_path: Path) -> None:
    journal = open_journal(state, target)
    journal.record(0)
    journal.flush(nothing)
    journal.close()
    elsewhere = tmp_path / "other.img"
    other = open_journal(state, elsewhere)
    assert other.path != journal.path
    assert other.stored() == []
    other.close()
    # Even under the other target's file name, the recorded path does not match.
    os.replace(journal.path, other.path)
    assert reopened(state, elsewhere) == []


def test_a_symlink_to_the_target_shares_its_journal(state: Path, target: Path,
                                                    tmp_path: Path) -> None:
    link = tmp_path / "link.img"
    link.symlink_to(target)
    journal = open_journal(state, link)
    journal.record(5)
    journal.flush(nothing)
    journal.close()
    assert reopened(state, target) == [5]


def garble(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "short header":
        path.write_bytes(data[:10])
    elif how == "short bitmap":
        path.write_bytes(data[:-1])
    elif how == "too long":
        path.write_bytes(data + b"\0")
    elif how == "bad magic":
        path.write_bytes(b"XXXX" + data[4:])
    elif how == "bad version":
        path.write_bytes(data[:4] + b"\x09\x00" + data[6:])
    elif how == "random":
        path.write_bytes(random.Random(3).randbytes(len(data)))
    elif how == "bits past the end":  # 11 blocks: bits 11..15 of the last byte do not exist
        path.write_bytes(data[:-1] + bytes([data[-1] | 0x80]))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["empty", "short header", "short bitmap", "too long", "bad magic",
                                 "bad version", "random", "bits past the end"])
def test_a_garbled_journal_starts_empty_and_works(state: Path, target: Path, how: str) -> None:
    journal = open_journal(state, target)
    journal.record(2)
    journal.flush(nothing)
    journal.close()
    garble(journal.path, how)
    fresh = open_journal(state, target)
    assert fresh.stored() == []
    fresh.record(10)
    fresh.flush(nothing)
    fresh.close()
    assert reopened(state, target) == [10]


def test_remove_deletes_the_file_and_is_idempotent(state: Path, target: Path) -> None:
    journal = open_journal(state, target)
    journal.record(1)
    journal.flush(nothing)
    journal.remove()
    assert not journal.path.exists()
    journal.remove()
    journal.close()
    assert reopened(state, target) == []


def test_close_is_idempotent_and_a_closed_journal_refuses_to_flush(state: Path,
                                                                     target: Path) -> None:
    journal = open_journal(state, target)
    journal.close()
    journal.close()
    journal.flush(nothing)  # nothing new: nothing to refuse
    journal.record(1)
    with pytest.raises(ValueError, match="closed"):
        journal.flush(nothing)


def test_an_unusable_state_dir_is_a_journal_error(tmp_path: Path, target: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    state = blocker / "state"
    with pytest.raises(JournalError) as caught:
        open_journal(state, target)
    message = str(caught.value)
    assert str(state) in message
    assert "--state-dir" in message
    with pytest.raises(JournalError):
        open_journal(blocker, target)  # the state dir is itself a regular file


def test_a_journal_that_cannot_be_replaced_is_a_journal_error(state: Path, target: Path) -> None:
    journal = open_journal(state, target)
    journal.close()
    journal.path.unlink()
    journal.path.mkdir()  # neither readable as a journal nor replaceable by one
    with pytest.raises(JournalError, match="--state-dir"):
        open_journal(state, target)


def test_the_state_dir_honours_mcast_state_dir(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("MCAST_STATE_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"


def test_the_state_dir_of_root_and_of_a_user(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.delenv("MCAST_STATE_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_dir() == Path("/var/lib/mcast-receive")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "mcast-receive"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unset in ("", "relative/ignored"):
        monkeypatch.setenv("XDG_STATE_HOME", unset)
        assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "mcast-receive"


@pytest.mark.parametrize("index", [-1, 11, 1 << 40])
def test_an_index_outside_the_image_is_a_value_error(state: Path, target: Path,
                                                     index: int) -> None:
    journal = open_journal(state, target)
    with pytest.raises(ValueError):
        journal.record(index)
    assert journal.unflushed == 0
    journal.close()


def test_bad_image_parameters_are_a_value_error(state: Path, target: Path) -> None:
    with pytest.raises(ValueError):
        open_journal(state, target, sha=b"short")
    with pytest.raises(ValueError):
        open_journal(state, target, block=0)
    with pytest.raises(ValueError):
        open_journal(state, target, size=-1)


def test_many_blocks_flush_and_reload(state: Path, target: Path) -> None:
    nblocks = 100_000
    journal = open_journal(state, target, size=nblocks * 4096 - 7, block=4096)
    assert journal.nblocks == nblocks
    rng = random.Random(11)
    chosen = rng.sample(range(nblocks), 60_000) + [0, nblocks - 1]
    for batch in (chosen[:20_000], chosen[20_000:]):
        for index in batch:
            journal.record(index)
        journal.flush(nothing)
    expected = sorted(set(chosen))
    assert journal.stored() == expected
    journal.close()
    again = open_journal(state, target, size=nblocks * 4096 - 7, block=4096)
    assert again.stored() == expected
    again.close()


def test_concurrent_records_and_flushes_lose_nothing(state: Path, target: Path) -> None:
    nblocks = 40_000
    journal = open_journal(state, target, size=nblocks * 512, block=512)
    threads_n = 8
    done = threading.Event()

    def writer(start: int) -> None:
        for index in range(start, nblocks, threads_n):
            journal.record(index)

    def flusher() -> None:
        while not done.is_set():
            journal.flush(nothing)

    flushing = threading.Thread(target=flusher)
    flushing.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    flushing.join()
    journal.flush(nothing)
    assert journal.unflushed == 0
    assert journal.stored() == list(range(nblocks))
    journal.close()
    again = open_journal(state, target, size=nblocks * 512, block=512)
    assert again.stored() == list(range(nblocks))
    again.close()
