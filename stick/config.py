"""`mcastd.conf`, the boot stick's settings file on its FAT partition.

The admin may edit it on any computer, so it is plain TOML with comments, and every mistake is
reported as one sentence naming the key. The builder writes it, the laptop's agent reads it at
every boot (a changed `target` takes effect on the next boot).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

CONFIG_NAME = "mcastd.conf"
TRUST_NAME = "trust.pub"  # the sender keys this stick follows, next to mcastd.conf
SECRET_NAME = "secret.key"  # the secret of encrypted sessions
THEN_ACTIONS = ("reboot", "poweroff", "wait")
_TARGET = re.compile(r"(auto|/dev/[A-Za-z0-9._/-]+|serial=\S+)")


class ConfigError(Exception):
    """mcastd.conf is wrong; the message says what and how to fix it, in one sentence."""


@dataclass(frozen=True, slots=True)
class StickConfig:
    session: str = ""  # "" follows the first session announced
    target: str = "auto"  # auto, /dev/NAME or serial=SERIAL
    then: str = "reboot"  # after a verified image
    trust: bool = False  # trust.pub is on the stick: follow only its keys
    secret: bool = False  # secret.key is on the stick: only sessions encrypted with it

    def __post_init__(self) -> None:
        if self.then not in THEN_ACTIONS:
            raise ConfigError(f"{CONFIG_NAME}: then = {self.then!r} is not one of "
                              f"{', '.join(THEN_ACTIONS)}.")
        if not _TARGET.fullmatch(self.target):
            raise ConfigError(f"{CONFIG_NAME}: target = {self.target!r} is not auto, a device "
                              "such as /dev/nvme0n1, or serial=SERIAL.")
        if (not self.session.isprintable() or any(c.isspace() for c in self.session)
                or len(self.session) > 64):
            raise ConfigError(f"{CONFIG_NAME}: session = {self.session!r} must be one word "
                              "of at most 64 printable characters.")

    def render(self) -> str:
        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        return "\n".join([
            "# mcastd boot stick. Edit on any computer; each laptop reads this at boot.",
            "",
            "# The session to join (mcastd serve --name); empty: the first one announced.",
            f"session = {quoted(self.session)}",
            "# The disk to write: auto (the one internal disk), /dev/nvme0n1, or",
            "# serial=SERIAL (as the laptop's screen lists it when it cannot choose).",
            f"target = {quoted(self.target)}",
            "# After a verified image: reboot, poweroff or wait. A failure always waits.",
            f"then = {quoted(self.then)}",
            f"# Follow only senders signing with a key in {TRUST_NAME} on this stick.",
            f"trust = {str(self.trust).lower()}",
            f"# Follow only sessions encrypted with {SECRET_NAME} on this stick.",
            f"secret = {str(self.secret).lower()}",
            "",
        ])


def parse_config(text: str) -> StickConfig:
    try:
        table = tomllib.loads(text.lstrip("\ufeff"))  # Notepad may add a byte-order mark
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_NAME} is not valid ({exc}): fix that line or build the "
                          "stick again.") from None
    known = {"session": str, "target": str, "then": str, "trust": bool, "secret": bool}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{CONFIG_NAME}: unknown setting {key!r} (known: "
                              f"{', '.join(known)}).")
        if not isinstance(value, known[key]):
            kind = "true or false" if known[key] is bool else "a quoted text"
            raise ConfigError(f"{CONFIG_NAME}: {key} must be {kind}, not {value!r}.")
    return StickConfig(**table)
