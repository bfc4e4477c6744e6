"""The launchers the stick builder copies into post-deploy/: found as package data, each a
script that starts its hook's main()."""

from __future__ import annotations

import ast
import importlib
import importlib.resources
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHERS = {"10-linux-hostname": "stick.hooks.linux_hostname",
             "20-windows-computername": "stick.hooks.windows_computername"}


def test_the_launchers_are_package_data() -> None:
    folder = importlib.resources.files("stick.hooks") / "post_deploy"
    assert sorted(p.name for p in folder.iterdir()) == sorted(LAUNCHERS)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "post_deploy/*" in config["tool"]["setuptools"]["package-data"]["stick.hooks"]


@pytest.mark.parametrize(("name", "module"), LAUNCHERS.items())
def test_a_launcher_runs_its_hook(name: str, module: str) -> None:
    text = (importlib.resources.files("stick.hooks") / "post_deploy" / name).read_text()
    assert text.startswith("#!/usr/bin/python3\n")  # the stick's Debian Python
    tree = ast.parse(text)
    imports = [(n.module, [a.name for a in n.names]) for n in ast.walk(tree)
               if isinstance(n, ast.ImportFrom)]
    assert imports == [(module, ["main"])]
    assert "raise SystemExit(main())" in text
    assert callable(importlib.import_module(module).main)
