"""What the agent names files on the stick's FAT partition by: a laptop's MAC and its disk's
serial, which may hold characters FAT refuses."""

from __future__ import annotations

from stick.agent.main import fat_name


def test_a_mac_becomes_a_fat_file_name() -> None:
    assert fat_name("52:54:00:4D:43:00") == "52-54-00-4d-43-00"


def test_a_serial_with_slashes_and_spaces_cannot_leave_its_directory() -> None:
    assert fat_name("52:54:00:4d:43:00-WD/Blue SN5*0") == "52-54-00-4d-43-00-wd-blue-sn5-0"
