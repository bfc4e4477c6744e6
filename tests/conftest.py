"""Every test keeps the programs' files (the sender's signing key, receivers' resume journals)
in its own temporary directory, never in this machine's ~/.config or /var/lib."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_key_and_state(monkeypatch: pytest.MonkeyPatch,
                           tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("mcastd-home")
    monkeypatch.setenv("MCASTD_KEY", str(home / "sender.key"))
    monkeypatch.setenv("MCAST_STATE_DIR", str(home / "state"))
