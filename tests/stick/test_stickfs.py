"""The kernel command line GRUB gives the stick's RAM system: which FAT volume is the stick,
and whether the laptop receives or captures; the refusal when GRUB gave no volume; and the
firmware the laptop booted with."""

from __future__ import annotations

from pathlib import Path

import pytest

from stick.agent.stickfs import (
    SECURE_BOOT_VAR,
    BootArgs,
    StickError,
    boot_args,
    firmware,
    mount_stick,
)

GRUB_LINE = ("BOOT_IMAGE=/mcastd/vmlinuz quiet loglevel=3 console=ttyS0,115200 console=tty1 "
             "mcastd.stick=1A2B-3C4D")


def test_the_receive_entry_names_the_volume_and_receives() -> None:
    assert boot_args(GRUB_LINE + "\n") == BootArgs(volume_id="1A2B-3C4D", mode="receive")


def test_the_capture_entry_captures() -> None:
    assert boot_args(GRUB_LINE + " mcastd.mode=capture") == BootArgs("1A2B-3C4D", "capture")


def test_a_kernel_started_some_other_way_has_no_volume() -> None:
    assert boot_args("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet") == BootArgs("", "receive")
    assert boot_args("") == BootArgs("", "receive")


def test_words_with_more_equal_signs_and_the_last_of_a_repeated_word() -> None:
    args = boot_args("root=UUID=1234 mcastd.stick=AAAA-0000 mcastd.stick=1A2B-3C4D init=/init")
    assert args == BootArgs("1A2B-3C4D", "receive")


def test_no_volume_id_is_refused_with_one_sentence_before_looking_for_it() -> None:
    with pytest.raises(StickError) as exc:
        mount_stick("")
    assert str(exc.value) == ("the kernel was started without mcastd.stick=VOLUME-ID: boot it "
                              "from the stick's own menu.")


def _efi(tmp_path: Path, value: int | None) -> Path:
    efivars = tmp_path / "firmware/efi/efivars"
    efivars.mkdir(parents=True)
    if value is not None:
        (efivars / SECURE_BOOT_VAR).write_bytes(b"\x06\x00\x00\x00" + bytes([value]))
    return tmp_path


def test_the_firmware_and_secure_boot_state_are_told(tmp_path: Path) -> None:
    assert firmware(tmp_path / "bios") == "BIOS"
    assert firmware(_efi(tmp_path / "on", 1)) == "UEFI, Secure Boot on"
    assert firmware(_efi(tmp_path / "off", 0)) == "UEFI, Secure Boot off"
    assert firmware(_efi(tmp_path / "none", None)) == "UEFI, Secure Boot off"
