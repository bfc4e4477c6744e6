"""The import contract (README, Layout): each top-level package has one job and may import only
what its row of the table names, besides the standard library. ``protocol`` is also kept free of
the clock, global randomness and I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package → the first- and third-party packages it may import (the standard library aside).
MAY_IMPORT: dict[str, frozenset[str]] = {
    # wire format, codecs, FEC, manifest, trust and the sans-I/O sessions
    "protocol": frozenset({"msgpack", "zstandard", "xxhash", "zfec", "cryptography"}),
    # the trio runtime both programs share: loop, sockets, console, options, key files
    "driver": frozenset({"protocol", "trio", "rich", "cryptography"}),
    # the sender program and the `mcastd` command
    "mcastd": frozenset({"protocol", "driver", "disk", "trio", "stick"}),
    # the receiver program: target safety, disk writing, journal
    "receiver": frozenset({"protocol", "driver", "disk", "trio"}),
    # disks as data: partition tables, used ranges (driving partclone), the image format
    "disk": frozenset({"protocol", "msgpack", "xxhash"}),
    # the boot stick: its builder (admin's machine), its agent and post-deploy hooks (laptop)
    "stick": frozenset({"protocol", "driver", "receiver"}),
    # the pure, seeded simulator: no root, no real sockets, no trio
    "netsim": frozenset({"protocol"}),
    # the root-only kernel lab and the hostile real-socket hosts
    "lab": frozenset({"protocol", "driver", "disk", "mcastd", "receiver", "netsim", "stick",
                      "pyroute2"}),
}
# benchmarks, against the peers in the same lab: everything
MAY_IMPORT["bench"] = frozenset({"lab"}).union(*MAY_IMPORT.values(), MAY_IMPORT)
# Standard-library modules that would give protocol/ I/O, threads or the clock.
STDLIB_BANNED_IN_PROTOCOL = {"socket", "asyncio", "selectors", "threading", "time", "os",
                             "subprocess"}
STDLIB_BANNED_IN_NETSIM = {"socket", "asyncio", "selectors", "subprocess"}
# Calls that would smuggle the clock or global randomness into the core.
FORBIDDEN_CALLS = {("time", "time"), ("time", "monotonic"), ("random", "random"),
                   ("random", "randint"), ("random", "choice"), ("random", "getrandbits"),
                   ("random", "uniform"), ("random", "shuffle"), ("os", "urandom")}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - {"__future__"}


def module_calls(path: Path) -> set[tuple[str, str]]:
    tree = ast.parse(path.read_text(), str(path))
    calls: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            calls.add((node.func.value.id, node.func.attr))
    return calls


def py_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_table_covers_every_top_level_package() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(MAY_IMPORT)


@pytest.mark.parametrize(
    "path", [p for package in MAY_IMPORT for p in py_files(package)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_a_module_imports_only_what_its_package_may(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    foreign = {
        name for name in imports_of(path)
        if name not in sys.stdlib_module_names and name != package
        and name not in MAY_IMPORT[package]
    }
    assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


@pytest.mark.parametrize("path", py_files("protocol"), ids=lambda p: p.name)
def test_protocol_has_no_io_clock_or_global_randomness(path: Path) -> None:
    assert not imports_of(path) & STDLIB_BANNED_IN_PROTOCOL
    assert not module_calls(path) & FORBIDDEN_CALLS


@pytest.mark.parametrize("path", py_files("netsim"), ids=lambda p: p.name)
def test_the_simulator_opens_no_sockets(path: Path) -> None:
    assert not imports_of(path) & STDLIB_BANNED_IN_NETSIM


def test_pyroute2_is_imported_only_by_the_lab() -> None:
    users = {path.relative_to(ROOT).parts[0] for package in MAY_IMPORT
             for path in py_files(package) if "pyroute2" in imports_of(path)}
    assert users <= {"lab"}


def test_the_installed_distribution_is_the_programs_alone() -> None:
    """What a boot stick installs: the programs, their runtime and the protocol."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(config["tool"]["setuptools"]["packages"])
    assert packages == {"protocol", "driver", "disk", "mcastd", "receiver", "stick",
                        "stick.agent", "stick.hooks", "stick.build"}
    dependencies = " ".join(config["project"]["dependencies"])
    assert "pyroute2" not in dependencies
