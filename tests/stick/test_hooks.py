"""The post-deploy runner with real scripts in a temporary directory, and the partitions of a
disk read from a fake sysfs tree (this machine's disks are never looked at)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stick.agent.hooks import (
    HookResult,
    Outcome,
    hook_environment,
    partitions_of,
    reread_partition_table,
    run_hooks,
)

ENV = hook_environment("/dev/nvme0n1", ["/dev/nvme0n1p1", "/dev/nvme0n1p2"],
                       "3c:52:82:1a:2b:3c", "pc01")


def script(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text(body)
    path.chmod(mode)
    return path


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan stays one where PID 1 does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def run(directory: Path, env: dict[str, str] = ENV,
        timeout: float = 30) -> tuple[list[HookResult], list[str]]:
    lines: list[str] = []
    return run_hooks(directory, env, lines.append, timeout=timeout), lines


def test_the_environment_a_hook_gets() -> None:
    assert ENV == {"MCASTD_TARGET": "/dev/nvme0n1",
                   "MCASTD_PARTITIONS": "/dev/nvme0n1p1 /dev/nvme0n1p2",
                   "MCASTD_MAC": "3c:52:82:1a:2b:3c", "MCASTD_HOSTNAME": "pc01"}
    assert hook_environment("/dev/sda", [], "3c:52:82:1a:2b:3c", None)["MCASTD_HOSTNAME"] == ""
    assert hook_environment("/dev/sda", [], "", None)["MCASTD_PARTITIONS"] == ""


def test_hooks_run_in_name_order_with_the_environment_and_path(tmp_path: Path) -> None:
    script(tmp_path, "20-second", "#!/bin/sh\necho second\n")
    script(tmp_path, "10-first", '#!/bin/sh\necho "$MCASTD_TARGET|$MCASTD_PARTITIONS|'
                                 '$MCASTD_MAC|$MCASTD_HOSTNAME"\nenv | sort >&2\n')
    results, lines = run(tmp_path)
    assert [(r.name, r.outcome, r.returncode) for r in results] == [
        ("10-first", Outcome.OK, 0), ("20-second", Outcome.OK, 0)]
    assert lines[:2] == ["running 10-first",
                         "10-first: /dev/nvme0n1|/dev/nvme0n1p1 /dev/nvme0n1p2|"
                         "3c:52:82:1a:2b:3c|pc01"]
    env_lines = {line.removeprefix("10-first: ") for line in lines if "=" in line}
    names = {line.split("=", 1)[0] for line in env_lines}
    # Only what the hook needs (sh adds PWD, SHLVL and _ itself).
    assert names - {"PWD", "SHLVL", "_", "OLDPWD"} == {
        "PATH", "MCASTD_TARGET", "MCASTD_PARTITIONS", "MCASTD_MAC", "MCASTD_HOSTNAME"}
    assert lines[-3:] == ["running 20-second", "20-second: second", "20-second succeeded."]


def test_output_is_passed_on_line_by_line_stdout_and_stderr(tmp_path: Path) -> None:
    script(tmp_path, "hook", "#!/bin/sh\nprintf 'one\\r\\ntwo\\n'\necho three >&2\n"
                             "printf 'no end of line'\n")
    _, lines = run(tmp_path)
    assert lines == ["running hook", "hook: one", "hook: two", "hook: three",
                     "hook: no end of line", "hook succeeded."]


def test_files_that_are_not_scripts_are_skipped_saying_so(tmp_path: Path) -> None:
    script(tmp_path, "README.txt", "These hooks run after the image is verified.\n")
    script(tmp_path, "10-hook", "#!/bin/sh\nexit 0\n")
    script(tmp_path, "10-hook~", "#!/bin/sh\nexit 1\n")
    script(tmp_path, ".10-hook.swp", "#!/bin/sh\nexit 1\n")
    (tmp_path / "a-directory").mkdir()
    results, lines = run(tmp_path)
    assert [(r.name, r.outcome) for r in results] == [
        (".10-hook.swp", Outcome.SKIPPED), ("10-hook", Outcome.OK),
        ("10-hook~", Outcome.SKIPPED), ("README.txt", Outcome.SKIPPED)]
    assert "skipped README.txt: not a script (its first line is no #! line)." in lines
    assert "skipped 10-hook~: a hidden or backup file." in lines
    assert not any(r.failed for r in results)


def test_a_failing_hook_is_reported_and_the_next_one_still_runs(tmp_path: Path) -> None:
    script(tmp_path, "10-fails", "#!/bin/sh\necho 'cannot find it'\nexit 3\n")
    script(tmp_path, "20-killed", "#!/bin/sh\nkill -9 $$\n")
    script(tmp_path, "30-fine", "#!/bin/sh\ntrue\n")
    results, lines = run(tmp_path)
    assert [(r.outcome, r.returncode, r.message) for r in results] == [
        (Outcome.FAILED, 3, "10-fails exited with status 3."),
        (Outcome.FAILED, -9, "20-killed was killed by SIGKILL."),
        (Outcome.OK, 0, "30-fine succeeded."),
    ]
    assert [r.failed for r in results] == [True, True, False]
    assert "10-fails: cannot find it" in lines


def test_a_hook_that_runs_too_long_is_stopped_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script(tmp_path, "hook", f"#!/bin/sh\necho started\nsleep 60 &\necho $! > {pidfile}\n"
                             "wait\n")
    results, lines = run(tmp_path, timeout=3)  # time for the child to start on a busy machine
    (result,) = results
    assert result.outcome is Outcome.TIMED_OUT and result.returncode is None
    assert result.message == "hook did not finish in 3 s and was stopped."
    assert 3 <= result.seconds < 15
    assert "hook: started" in lines
    assert not running(int(pidfile.read_text()))


def test_a_hook_that_closes_its_output_is_still_timed(tmp_path: Path) -> None:
    script(tmp_path, "hook", "#!/bin/sh\nexec >/dev/null 2>&1\nsleep 60\n")
    (result,) = run(tmp_path, timeout=1)[0]
    assert result.outcome is Outcome.TIMED_OUT


def test_a_background_child_holding_the_output_does_not_hold_the_runner(tmp_path: Path) -> None:
    script(tmp_path, "hook", "#!/bin/sh\nsleep 30 &\necho done\n")
    (result,) = run(tmp_path, timeout=20)[0]
    assert result.outcome is Outcome.OK and result.seconds < 10


def test_a_script_whose_interpreter_is_missing_cannot_run(tmp_path: Path) -> None:
    script(tmp_path, "hook", "#!/nonexistent/interpreter\n")
    script(tmp_path, "notepad", "#!/bin/sh\r\necho hi\r\n")
    results, _ = run(tmp_path)
    assert [(r.name, r.outcome) for r in results] == [
        ("hook", Outcome.CANNOT_RUN), ("notepad", Outcome.CANNOT_RUN)]
    assert results[0].message == "hook cannot be run: No such file or directory."
    assert results[1].message == ("notepad cannot be run: No such file or directory (its #! "
                                  "line ends in CR: save it with Unix line ends).")
    assert all(r.failed for r in results)


def test_a_script_without_exec_bits_runs_through_its_interpreter(tmp_path: Path) -> None:
    # Even root is refused exec of a file with no x bit at all (and on a noexec stick).
    script(tmp_path, "hook", "#!/bin/sh\necho ran\n", mode=0o644)
    results, lines = run(tmp_path)
    assert results[0].outcome is Outcome.OK and "hook: ran" in lines


def test_no_directory_no_hooks(tmp_path: Path) -> None:
    assert run(tmp_path / "post-deploy")[0] == []


def test_the_hook_runs_in_its_directory(tmp_path: Path) -> None:
    script(tmp_path, "hook", "#!/bin/sh\npwd\n")
    _, lines = run(tmp_path)
    assert f"hook: {tmp_path}" in lines


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    """/sys/class/block for nvme0n1 (p1..p10, out of order), sda (1, 2), mmcblk0 with its
    boot areas (separate devices, not partitions) and loop0 with none."""
    block = tmp_path / "sys" / "class" / "block"
    for disk, parts in (("nvme0n1", [f"p{n}" for n in (2, 10, 1)]), ("sda", ["2", "1"]),
                        ("mmcblk0", ["p1"]), ("loop0", [])):
        (block / disk / "queue").mkdir(parents=True)
        (block / disk / "holders").mkdir()
        (block / disk / "dev").write_text("259:0\n")
        for suffix in parts:
            part = block / disk / f"{disk}{suffix}"
            part.mkdir()
            (part / "partition").write_text(suffix.lstrip("p") + "\n")
    (block / "mmcblk0boot0").mkdir()
    (block / "mmcblk0" / "mmcblk0boot0").mkdir()  # not a partition (no number pattern)
    return tmp_path / "sys"


def test_partitions_of_a_disk_by_number(sysfs: Path) -> None:
    assert partitions_of("/dev/nvme0n1", sysfs) == [
        "/dev/nvme0n1p1", "/dev/nvme0n1p2", "/dev/nvme0n1p10"]
    assert partitions_of("/dev/sda", sysfs) == ["/dev/sda1", "/dev/sda2"]
    assert partitions_of("/dev/mmcblk0", sysfs) == ["/dev/mmcblk0p1"]
    assert partitions_of("/dev/loop0", sysfs, dev=Path("/tmp/dev")) == []


def test_partitions_of_other_devices(sysfs: Path, tmp_path: Path) -> None:
    assert partitions_of("/dev/sdz", sysfs) == []  # unknown to the kernel
    assert partitions_of("/dev/sda", sysfs, dev=Path("/x")) == ["/x/sda1", "/x/sda2"]
    # A by-id link names the disk it points to.
    link = tmp_path / "usb-Laptop_Disk"
    link.symlink_to("/dev/nvme0n1")
    if Path("/dev/nvme0n1").exists():
        pytest.skip("this machine has an nvme0n1: the link would resolve to a real disk")
    assert partitions_of(str(link), sysfs) == [
        "/dev/nvme0n1p1", "/dev/nvme0n1p2", "/dev/nvme0n1p10"]


def test_a_partition_without_its_number_file_is_ordered_by_name(sysfs: Path) -> None:
    (sysfs / "class" / "block" / "sda" / "sda2" / "partition").unlink()
    assert partitions_of("/dev/sda", sysfs) == ["/dev/sda1", "/dev/sda2"]


def test_rereading_a_table_that_cannot_be_reread_is_a_note(tmp_path: Path) -> None:
    notes: list[str] = []
    assert not reread_partition_table(str(tmp_path / "no-such-disk"), notes.append)
    assert len(notes) == 1
    assert notes[0].startswith(f"note: could not re-read the partition table of "
                               f"{tmp_path / 'no-such-disk'}: ")


def test_rereading_without_blockdev_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(subprocess, "run", missing)
    notes: list[str] = []
    assert not reread_partition_table("/dev/sda", notes.append)
    assert notes == ["note: could not re-read the partition table of /dev/sda: "
                     "No such file or directory"]
