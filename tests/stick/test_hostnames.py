"""hostnames.csv as admins write it in Excel and Notepad, and the sentences for what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from stick.agent.hostnames import (
    HostnamesError,
    hostname_problem,
    name_for,
    normalize_mac,
    parse_hostnames,
    read_hostnames,
)

MAC = "3c:52:82:1a:2b:3c"


@pytest.mark.parametrize("spelling", [
    "3c:52:82:1a:2b:3c", "3C:52:82:1A:2B:3C", "3c-52-82-1a-2b-3c", "3c52821a2b3c",
    "3C52.821A.2B3C", " 3c:52:82:1a:2b:3c ",
])
def test_a_mac_is_read_in_any_spelling(spelling: str) -> None:
    assert normalize_mac(spelling) == MAC


@pytest.mark.parametrize("text", ["", "3c:52:82:1a:2b", "3c:52:82:1a:2b:3g", "MAC",
                                  "3c:52:82:1a:2b:3c:4d"])
def test_what_is_not_a_mac(text: str) -> None:
    assert normalize_mac(text) is None


def test_the_excel_file_bom_crlf_semicolons_header_and_quotes() -> None:
    text = ('\ufeff"MAC";"Name"\r\n"3C-52-82-1A-2B-3C";"pc01"\r\n'
            '3c:52:82:1a:2b:3d;pc02;;\r\n;;\r\n')
    assert parse_hostnames(text) == {MAC: "pc01", "3c:52:82:1a:2b:3d": "pc02"}


def test_the_notepad_file_commas_comments_and_blank_lines() -> None:
    text = ("# room 12, row by row\n\n3c52821a2b3c, pc01   # by the window\n"
            "   \n3c:52:82:1a:2b:3d,pc02,spare laptop\n# the end\n")
    assert parse_hostnames(text) == {MAC: "pc01", "3c:52:82:1a:2b:3d": "pc02"}


def test_tabs_as_excel_saves_text() -> None:
    assert parse_hostnames(f"MAC address\tHost\n{MAC}\tpc01\n") == {MAC: "pc01"}


def test_a_header_is_taken_only_on_the_first_line() -> None:
    with pytest.raises(HostnamesError) as caught:
        parse_hostnames(f"{MAC},pc01\nMAC,Name\n")
    assert str(caught.value) == ("hostnames.csv, line 2: 'MAC' is not a MAC address "
                                 "(12 hex digits, e.g. 3c:52:82:1a:2b:3c).")


def test_a_mistyped_mac_on_the_first_line_is_no_header() -> None:
    with pytest.raises(HostnamesError, match=r"line 1: '3c:52:82:1a:2b:3g' is not a MAC"):
        parse_hostnames("3c:52:82:1a:2b:3g,pc01\n")


def test_the_same_mac_twice_with_the_same_name_is_fine() -> None:
    assert parse_hostnames(f"{MAC},pc01\n3C52821A2B3C,PC01\n") == {MAC: "pc01"}


def test_two_macs_may_share_a_name() -> None:
    # Wi-Fi and Ethernet of one laptop.
    assert parse_hostnames(f"{MAC},pc01\n3c:52:82:1a:2b:3d,pc01\n") == {
        MAC: "pc01", "3c:52:82:1a:2b:3d": "pc01"}


@pytest.mark.parametrize(("text", "sentence"), [
    ("MAC;Name\n3c:52:82:1a:2b;pc01\n",
     "hostnames.csv, line 2: '3c:52:82:1a:2b' is not a MAC address (12 hex digits, e.g. "
     "3c:52:82:1a:2b:3c)."),
    (f"# list\n{MAC}\n", f"hostnames.csv, line 2: the MAC address {MAC} has no name after it."),
    (f"{MAC};\n", f"hostnames.csv, line 1: the MAC address {MAC} has no name after it."),
    (";pc01\n", "hostnames.csv, line 1: the first column holds no MAC address."),
    (f"{MAC},pc_01\n", "hostnames.csv, line 1: the name 'pc_01' is not a host name: only "
                       "letters, digits and '-', not first or last."),
    (f"{MAC},-pc01\n", "hostnames.csv, line 1: the name '-pc01' is not a host name: only "
                       "letters, digits and '-', not first or last."),
    (f"{MAC},pc01.school.lan\n", "hostnames.csv, line 1: the name 'pc01.school.lan' has a "
                                 "dot: give the short host name, one label."),
    (f"{MAC},{'a' * 64}\n", f"hostnames.csv, line 1: the name '{'a' * 64}' has 64 "
                            "characters, more than the 63 a host name may."),
    (f"{MAC},pc01\r\n\r\n{MAC.upper()},pc02\r\n", f"hostnames.csv, line 3: the MAC address "
                                                  f"{MAC} is named pc01 on line 1 already."),
])
def test_a_malformed_line_is_one_sentence_naming_it(text: str, sentence: str) -> None:
    with pytest.raises(HostnamesError) as caught:
        parse_hostnames(text)
    assert str(caught.value) == sentence


def test_host_names() -> None:
    assert hostname_problem("a") is None
    assert hostname_problem("PC-01") is None
    assert hostname_problem("a" * 63) is None
    assert hostname_problem("") == "the name is empty"
    assert hostname_problem("pc-") is not None
    assert hostname_problem("pc 01") is not None
    assert hostname_problem("pcé") is not None


def test_the_file_is_optional(tmp_path: Path) -> None:
    assert read_hostnames(tmp_path / "hostnames.csv") == {}
    assert name_for(MAC, tmp_path / "hostnames.csv") is None


def test_name_for_looks_the_mac_up_in_any_spelling(tmp_path: Path) -> None:
    path = tmp_path / "hostnames.csv"
    path.write_bytes(b"\xef\xbb\xbfMAC;Name\r\n3C-52-82-1A-2B-3C;pc01\r\n")
    assert name_for("3c:52:82:1a:2b:3c", path) == "pc01"
    assert name_for("3C52821A2B3C", path) == "pc01"
    assert name_for("3c:52:82:1a:2b:3d", path) is None
    with pytest.raises(ValueError, match="not a MAC address"):
        name_for("eth0", path)


def test_a_file_not_in_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "hostnames.csv"
    path.write_bytes(f"MAC;Name\n{MAC};pc01\n# salle ".encode() + "é".encode("cp1252") + b"\n")
    with pytest.raises(HostnamesError) as caught:
        read_hostnames(path)
    assert str(caught.value) == ('hostnames.csv, line 3: the text is not UTF-8 '
                                 '(save it as "CSV UTF-8").')


def test_a_malformed_file_is_an_error_for_name_for_too(tmp_path: Path) -> None:
    path = tmp_path / "hostnames.csv"
    path.write_text(f"{MAC},pc01\nnonsense-line-here\n")
    with pytest.raises(HostnamesError, match="line 2"):
        name_for(MAC, path)


def test_columns_aligned_with_tabs_after_the_separator() -> None:
    assert parse_hostnames(f"{MAC},\tpc01\n3c:52:82:1a:2b:3d;\t\tpc02\n") == {
        MAC: "pc01", "3c:52:82:1a:2b:3d": "pc02"}
