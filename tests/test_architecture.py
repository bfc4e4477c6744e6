"""The import contract of ARCHITECTURE.md §2: protocol/ stays pure, daemons never use netsim."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIRD_PARTY_PROTOCOL = {"msgpack", "zstandard", "xxhash", "zfec", "cryptography"}
FORBIDDEN_IN_PROTOCOL = {"trio", "socket", "asyncio", "selectors", "threading", "netsim",
                         "mcastd", "receiver", "time", "os", "subprocess"}
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
    return names


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


@pytest.mark.parametrize("path", py_files("protocol"), ids=lambda p: p.name)
def test_protocol_imports_only_stdlib_and_its_codecs(path: Path) -> None:
    found = imports_of(path)
    assert not found & FORBIDDEN_IN_PROTOCOL, f"{path.name} imports {found & FORBIDDEN_IN_PROTOCOL}"
    foreign = {
        name for name in found
        if name not in sys.stdlib_module_names and name not in THIRD_PARTY_PROTOCOL
        and name not in {"protocol", "__future__"}
    }
    assert not foreign, f"{path.name} imports {foreign}"
    assert not module_calls(path) & FORBIDDEN_CALLS


@pytest.mark.parametrize("package", ["mcastd", "receiver"])
def test_daemons_never_import_netsim(package: str) -> None:
    for path in py_files(package):
        assert "netsim" not in imports_of(path), path


SHARED_DRIVER_MODULES = {"mcastd.endpoint", "mcastd.driver", "mcastd.udp", "mcastd.console",
                         "mcastd.report", "mcastd.units", "mcastd.options", "mcastd.keys",
                         "mcastd.secret"}


def test_the_receiver_uses_only_the_shared_driver_modules_of_mcastd() -> None:
    """The receiver shares sockets, the session loop and the console with the sender, never
    the sender's own logic (serve, image reading, its CLI)."""
    for path in py_files("receiver"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == "mcastd":
                    assert node.module in SHARED_DRIVER_MODULES, (path.name, node.module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("mcastd") for a in node.names), path.name
