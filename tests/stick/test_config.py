"""mcastd.conf: what the builder renders is what a laptop parses back, and every mistake an
admin can make in it is refused with one sentence naming the setting."""

from __future__ import annotations

import pytest

from stick.config import ConfigError, StickConfig, parse_config

CONFIGS = [
    StickConfig(),
    StickConfig(session="win11.img", target="/dev/nvme0n1", then="poweroff", trust=True),
    StickConfig(session='odd"name\\x', target="serial=S4EWNX0R123456", then="wait",
                secret=True),
    StickConfig(target="/dev/disk/by-id/nvme-Samsung_SSD_980_1TB", trust=True, secret=True),
]


def refusal(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    return str(exc.value)


def one_sentence(message: str) -> bool:
    return message.endswith(".") and "\n" not in message


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.target)
def test_what_is_rendered_parses_back_to_the_same_settings(config: StickConfig) -> None:
    assert parse_config(config.render()) == config


def test_the_rendered_file_explains_every_setting_in_comments() -> None:
    text = StickConfig().render()
    for key in ("session", "target", "then", "trust", "secret"):
        assert f"\n{key} = " in text
    assert text.count("\n# ") >= 5
    assert text.endswith("\n")


def test_an_empty_file_means_every_default() -> None:
    assert parse_config("") == StickConfig()
    assert parse_config("# nothing set\n") == StickConfig(session="", target="auto",
                                                         then="reboot", trust=False, secret=False)


def test_notepads_byte_order_mark_is_accepted() -> None:
    config = StickConfig(session="lab", target="/dev/sda", then="wait")
    assert parse_config("\ufeff" + config.render()) == config
    assert parse_config(("\ufeff" + config.render()).replace("\n", "\r\n")) == config


def test_a_then_that_is_no_action_is_refused() -> None:
    message = refusal('then = "halt"\n')
    assert message == "mcastd.conf: then = 'halt' is not one of reboot, poweroff, wait."


@pytest.mark.parametrize("target", ["sda", "/etc/passwd", "serial=", "/dev/", "AUTO",
                                    "/dev/sda now"])
def test_a_target_that_is_no_disk_is_refused(target: str) -> None:
    message = refusal(f'target = "{target}"\n')
    assert message == (f"mcastd.conf: target = {target!r} is not auto, a device such as "
                       "/dev/nvme0n1, or serial=SERIAL.")


@pytest.mark.parametrize("session", ["two words", "x" * 65])
def test_a_session_that_is_not_one_short_word_is_refused(session: str) -> None:
    message = refusal(f'session = "{session}"\n')
    assert message.startswith(f"mcastd.conf: session = {session!r} must be one word")
    assert one_sentence(message)


def test_a_session_of_64_characters_is_fine() -> None:
    assert parse_config(f'session = "{"x" * 64}"\n').session == "x" * 64


def test_an_unknown_setting_is_refused_naming_the_known_ones() -> None:
    message = refusal('session = "a"\ntargett = "auto"\n')
    assert message == ("mcastd.conf: unknown setting 'targett' (known: session, target, then, "
                       "trust, secret).")


@pytest.mark.parametrize(("line", "says"), [
    ('trust = "yes"', "mcastd.conf: trust must be true or false, not 'yes'."),
    ("secret = 1", "mcastd.conf: secret must be true or false, not 1."),
    ("then = true", "mcastd.conf: then must be a quoted text, not True."),
    ("target = 0", "mcastd.conf: target must be a quoted text, not 0."),
    ("session = [1, 2]", "mcastd.conf: session must be a quoted text, not [1, 2]."),
])
def test_a_value_of_the_wrong_type_is_refused(line: str, says: str) -> None:
    assert refusal(line + "\n") == says


@pytest.mark.parametrize("text", ['target = "auto\n', "then reboot", 'then = "a"\nthen = "b"\n',
                                  "[section\n"])
def test_a_file_that_is_not_toml_is_refused(text: str) -> None:
    message = refusal(text)
    assert message.startswith("mcastd.conf is not valid (")
    assert message.endswith("): fix that line or build the stick again.")
    assert "line 1" in message or "line 2" in message


def test_the_builder_is_refused_the_same_mistakes() -> None:
    with pytest.raises(ConfigError, match="then = 'sleep'"):
        StickConfig(then="sleep")
    with pytest.raises(ConfigError, match="target = 'C:'"):
        StickConfig(target="C:")
