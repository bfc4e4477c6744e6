"""The builder's plumbing: a failed build step as one sentence naming the step and the tool's
last words, the host packages a build needs, and the system cache's key and place."""

from __future__ import annotations

import importlib
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from stick.build import python_packages
from stick.build.system import _wheel_contents, default_cache
from stick.build.tools import HOST_FILES, HOST_TOOLS, BuildError, missing_host_tools, run


def test_a_step_gives_its_output() -> None:
    assert run([sys.executable, "-c", "print('hello')"], "say hello") == "hello\n"


def test_a_failed_step_is_one_sentence_with_the_tools_last_three_lines(tmp_path: Path) -> None:
    script = "import sys\nfor n in range(5): print(f'line {n}', file=sys.stderr)\nsys.exit(3)\n"
    with pytest.raises(BuildError) as exc:
        run([sys.executable, "-c", script], "pack the RAM disk", cwd=tmp_path)
    assert str(exc.value) == (f"cannot pack the RAM disk: {sys.executable} failed "
                              "(line 2 / line 3 / line 4).")


def test_a_silent_failure_says_so() -> None:
    with pytest.raises(BuildError, match=r"^cannot fail: \S+ failed \(no output\)\.$"):
        run([sys.executable, "-c", "raise SystemExit(1)"], "fail")


def test_a_missing_program_is_one_sentence() -> None:
    with pytest.raises(BuildError) as exc:
        run(["/nonexistent/mmdebstrap", "--version"], "build the userland")
    assert str(exc.value) == ("cannot build the userland: /nonexistent/mmdebstrap: No such "
                              "file or directory.")


def test_the_missing_packages_are_named_by_their_debian_names() -> None:
    known = set(HOST_TOOLS.values()) | set(HOST_FILES.values())
    missing = missing_host_tools()
    assert set(missing) <= known
    assert missing == sorted(set(missing))


def test_the_system_cache_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache() == tmp_path / "mcastd/stick"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache() == tmp_path / "home/.cache/mcastd/stick"


def test_a_rebuilt_wheel_of_the_same_files_keeps_the_cache_key(tmp_path: Path) -> None:
    """pip stamps every build with new zip timestamps: the cached system is keyed on the
    files in the wheel, so an unchanged checkout reuses it."""
    def wheel(name: str, date: tuple[int, int, int, int, int, int], body: bytes) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(zipfile.ZipInfo("stick/config.py", date), body)
            archive.writestr(zipfile.ZipInfo("mcastd-0.1.dist-info/RECORD", date), b"r")
        return path

    first = wheel("a.whl", (2026, 1, 1, 0, 0, 0), b"x = 1\n")
    again = wheel("b.whl", (2026, 6, 1, 12, 0, 0), b"x = 1\n")
    changed = wheel("c.whl", (2026, 1, 1, 0, 0, 0), b"x = 2\n")
    assert first.read_bytes() != again.read_bytes()
    assert _wheel_contents(first) == _wheel_contents(again)
    assert _wheel_contents(first) != _wheel_contents(changed)


def test_the_wheel_is_built_from_this_checkout() -> None:
    assert (python_packages.project_root() / "pyproject.toml").is_file()
    assert python_packages.project_root() == Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "module"), sorted(python_packages.LAUNCHERS.items()))
def test_every_launcher_starts_a_main_that_exists(name: str, module: str) -> None:
    assert callable(importlib.import_module(module).main), name


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here")
def test_the_wheel_the_stick_installs_carries_the_compiled_data_path(tmp_path: Path) -> None:
    wheel = python_packages.build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert set(python_packages.COMPILED) <= names
    assert wheel.name.endswith("-linux_x86_64.whl")  # a tag the stick's install accepts
    assert "linux_x86_64" in python_packages.PLATFORMS
