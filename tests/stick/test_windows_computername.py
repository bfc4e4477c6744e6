"""The Windows hook: unattend.xml edited as a pure function on real-looking sysprep files,
then real NTFS filesystems on loop devices edited by the hook as the agent runs it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stick.hooks.windows_computername import (
    UnattendError,
    computer_name_problem,
    set_computer_name,
)
from tests.stick.loopdisk import (
    hook_env,
    loop_device,
    make_ext4,
    make_ntfs,
    mounted,
    run,
    run_hook,
    skip_unless,
)

MODULE = "stick.hooks.windows_computername"
NS = "{urn:schemas-microsoft-com:unattend}"
WCM = ('xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State" '
       'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')
INBOX = 'publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS"'
AMD64 = f'processorArchitecture="amd64" {INBOX} {WCM}'
CPI = ('<cpi:offlineImage cpi:source="wim:c:/sources/install.wim#Windows 11 Pro" '
       'xmlns:cpi="urn:schemas-microsoft-com:cpi" />')

# What Windows SIM writes for a sysprep /generalize /oobe /unattend:... of a classroom image.
SYSPREP = f"""<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
    <settings pass="generalize">
        <component name="Microsoft-Windows-Security-SPP" {AMD64}>
            <SkipRearm>1</SkipRearm>
        </component>
    </settings>
    <settings pass="specialize">
        <component name="Microsoft-Windows-Shell-Setup" {AMD64}>
            <ComputerName>*</ComputerName>
            <RegisteredOrganization>Lycée Jean Moulin</RegisteredOrganization>
            <TimeZone>W. Europe Standard Time</TimeZone>
        </component>
        <component name="Microsoft-Windows-Deployment" {AMD64}>
            <RunSynchronous>
                <!-- log that specialize ran -->
                <RunSynchronousCommand wcm:action="add">
                    <Order>1</Order>
                    <Path>cmd /c echo specialize &gt; C:\\Windows\\Temp\\specialize.txt</Path>
                </RunSynchronousCommand>
            </RunSynchronous>
        </component>
    </settings>
    <settings pass="oobeSystem">
        <component name="Microsoft-Windows-Shell-Setup" {AMD64}>
            <OOBE>
                <HideEULAPage>true</HideEULAPage>
                <ProtectYourPC>3</ProtectYourPC>
            </OOBE>
            <UserAccounts>
                <LocalAccounts>
                    <LocalAccount wcm:action="add">
                        <Password>
                            <Value>UABhAHMAcwB3AG8AcgBkAA==</Value>
                            <PlainText>false</PlainText>
                        </Password>
                        <Name>student</Name>
                        <Group>Users</Group>
                    </LocalAccount>
                </LocalAccounts>
            </UserAccounts>
        </component>
    </settings>
    {CPI}
</unattend>
"""


def tree(data: bytes | str) -> object:
    """The document as ElementTree sees it (tags, attributes, text, comments), with no regard
    for where namespaces are declared or how empty elements are spelt."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.fromstring(data.encode() if isinstance(data, str) else data, parser)

    def shape(e: ET.Element) -> object:
        return (e.tag, e.attrib, e.text, e.tail, [shape(c) for c in e])
    return shape(root)


def computer_names(data: bytes) -> list[tuple[str | None, str | None]]:
    root = ET.fromstring(data)
    return [(settings.get("pass"), name.text)
            for settings in root.iter(f"{NS}settings")
            for component in settings.iter(f"{NS}component")
            if component.get("name") == "Microsoft-Windows-Shell-Setup"
            for name in component.iter(f"{NS}ComputerName")]


def test_the_existing_name_is_replaced_and_nothing_else_changes() -> None:
    out = set_computer_name(SYSPREP.encode(), "PC01")
    assert tree(out) == tree(SYSPREP.replace("<ComputerName>*</ComputerName>",
                                             "<ComputerName>PC01</ComputerName>"))
    text = out.decode()
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n'
                           '<unattend xmlns="urn:schemas-microsoft-com:unattend"')
    assert "ns0:" not in text and "ns1:" not in text
    assert '<RunSynchronousCommand wcm:action="add">' in text
    assert '<cpi:offlineImage cpi:source="wim:' in text
    assert "<!-- log that specialize ran -->" in text
    assert "Lycée Jean Moulin" in text


def test_setting_it_twice_is_setting_it_once() -> None:
    once = set_computer_name(SYSPREP.encode(), "PC01")
    assert set_computer_name(once, "PC01") == once
    assert computer_names(set_computer_name(once, "PC02")) == [("specialize", "PC02")]


def test_a_missing_name_is_added_in_order_and_indented() -> None:
    data = SYSPREP.replace("            <ComputerName>*</ComputerName>\n", "").encode()
    out = set_computer_name(data, "PC01").decode()
    assert computer_names(out.encode()) == [("specialize", "PC01")]
    assert ('versionScope="nonSxS">\n            <ComputerName>PC01</ComputerName>\n'
            '            <RegisteredOrganization>') in out


def test_a_missing_pass_is_added_between_its_neighbours() -> None:
    start = SYSPREP.index('    <settings pass="specialize">')
    end = SYSPREP.index('    <settings pass="oobeSystem">')
    data = (SYSPREP[:start] + SYSPREP[end:]).replace('processorArchitecture="amd64"',
                                                     'processorArchitecture="arm64"')
    out = set_computer_name(data.encode(), "PC01").decode()
    assert computer_names(out.encode()) == [("specialize", "PC01")]
    assert ('    </settings>\n'
            '    <settings pass="specialize">\n'
            '        <component name="Microsoft-Windows-Shell-Setup" '
            f'processorArchitecture="arm64" {INBOX}>\n'
            '            <ComputerName>PC01</ComputerName>\n'
            '        </component>\n'
            '    </settings>\n'
            '    <settings pass="oobeSystem">') in out
    # The oobeSystem pass' Shell-Setup is not where a ComputerName goes.
    assert out.count("<ComputerName>") == 1


def test_an_empty_unattend_file_gets_everything() -> None:
    out = set_computer_name(b'<unattend xmlns="urn:schemas-microsoft-com:unattend"/>', "PC01")
    assert computer_names(out) == [("specialize", "PC01")]
    assert ET.fromstring(out).find(f"{NS}settings/{NS}component").get(  # type: ignore[union-attr]
        "processorArchitecture") == "amd64"


def test_the_component_only_in_another_pass() -> None:
    data = SYSPREP.replace('<component name="Microsoft-Windows-Shell-Setup" '
                           'processorArchitecture="amd64"',
                           '<component name="Microsoft-Windows-Shell-Setup-Old" '
                           'processorArchitecture="amd64"', 1)
    names = computer_names(set_computer_name(data.encode(), "PC01"))
    assert names == [("specialize", "PC01")]


def test_every_architecture_gets_the_name() -> None:
    start = SYSPREP.index('        <component name="Microsoft-Windows-Shell-Setup"')
    end = SYSPREP.index("        </component>", start) + len("        </component>\n")
    x86 = SYSPREP[start:end].replace('"amd64"', '"x86"')
    out = set_computer_name((SYSPREP[:end] + x86 + SYSPREP[end:]).encode(), "PC01")
    assert computer_names(out) == [("specialize", "PC01"), ("specialize", "PC01")]


def test_crlf_and_a_bom_are_kept() -> None:
    data = b"\xef\xbb\xbf" + SYSPREP.replace("\n", "\r\n").encode()
    out = set_computer_name(data, "PC01")
    assert out.startswith(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>\r\n')
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert computer_names(out) == [("specialize", "PC01")]


def test_a_utf16_file_is_read_and_written_as_utf8() -> None:
    data = SYSPREP.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    out = set_computer_name(data, "PC01")
    assert out.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert "Lycée Jean Moulin" in out.decode()


@pytest.mark.parametrize(("data", "why"), [
    (b"<unattend", "it is not well-formed XML (unclosed token: line 1, column 0)"),
    (b"", "it is not well-formed XML (no element found: line 1, column 0)"),
    (b"<unattend><settings/></unattend>",
     'its root element is not <unattend xmlns="urn:schemas-microsoft-com:unattend">'),
])
def test_what_is_not_an_unattend_file(data: bytes, why: str) -> None:
    with pytest.raises(UnattendError) as caught:
        set_computer_name(data, "PC01")
    assert str(caught.value) == why


def test_computer_names() -> None:
    assert computer_name_problem("PC-ROOM12-SEAT1") is None  # 15
    assert computer_name_problem("PC-ROOM12-SEAT12") == (
        "the name 'PC-ROOM12-SEAT12' has 16 characters, more than the 15 a Windows "
        "ComputerName may")
    assert computer_name_problem("1234") == (
        "the name '1234' is only digits, which Windows refuses as a ComputerName")
    assert computer_name_problem("pc_1") is not None


@pytest.mark.disks
@skip_unless("mkfs.ntfs", "ntfs-3g")
def test_a_long_name_is_refused_where_there_is_a_windows(tmp_path: Path) -> None:
    image = make_ntfs(tmp_path / "windows.ntfs", {"Windows/Panther/unattend.xml": SYSPREP})
    with loop_device(image) as device:
        done = run_hook(MODULE, hook_env(device, name="classroom-laptop-17"))
        with mounted(device, "-t", "ntfs-3g", "-o", "ro") as root:
            assert (root / "Windows/Panther/unattend.xml").read_text() == SYSPREP
    assert done.returncode == 1
    assert done.stdout == ("the name 'classroom-laptop-17' has 19 characters, more than the "
                           "15 a Windows ComputerName may; Windows/Panther/unattend.xml on "
                           f"{device} was left as it is.\n")


def test_no_name_nothing_to_do() -> None:
    done = run_hook(MODULE, hook_env("/dev/nonexistent", name=""))
    assert (done.returncode, done.stdout) == (
        0, "no name for MAC 3c:52:82:1a:2b:3c, nothing to do.\n")


NTFS = ("mkfs.ntfs", "ntfs-3g", "ntfsfix")


@pytest.mark.disks
@skip_unless(*NTFS)
def test_the_windows_partition_gets_its_name(tmp_path: Path) -> None:
    image = make_ntfs(tmp_path / "windows.ntfs", {
        "Windows/Panther/Unattend.xml": SYSPREP,  # as sysprep spells it: case differs
        "Windows/System32/drivers/etc/hosts": "127.0.0.1 localhost\n",
        "Users/Public/readme.txt": "keep me\n",
    })
    with loop_device(image) as device:
        done = run_hook(MODULE, hook_env(device, device, name="PC01"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout == (f"set ComputerName PC01 in Windows/Panther/Unattend.xml on "
                               f"{device}.\n")
        with mounted(device, "-t", "ntfs-3g", "-o", "ro") as root:
            written = (root / "Windows" / "Panther" / "Unattend.xml").read_bytes()
            assert (root / "Users" / "Public" / "readme.txt").read_text() == "keep me\n"
            assert sorted(p.name for p in (root / "Windows" / "Panther").iterdir()) == [
                "Unattend.xml"]
        run(["ntfsfix", "-n", device])
    assert written == set_computer_name(SYSPREP.encode(), "PC01")
    assert computer_names(written) == [("specialize", "PC01")]


@pytest.mark.disks
@skip_unless("mkfs.ext4", *NTFS)
def test_only_ntfs_partitions_are_looked_at_and_no_windows_is_nothing_to_do(
        tmp_path: Path) -> None:
    linux = make_ext4(tmp_path / "linux.ext4", {"Windows/Panther/unattend.xml": SYSPREP})
    data = make_ntfs(tmp_path / "data.ntfs", {"Photos/a.txt": "x\n"})
    with loop_device(linux) as first, loop_device(data) as second:
        done = run_hook(MODULE, hook_env("/dev/whole-disk", f"{first} {second}"))
    assert done.returncode == 0  # a Linux image: the Linux hook names it
    assert done.stdout == ("no Windows/Panther/unattend.xml on /dev/whole-disk: not a "
                           "sysprepped Windows image, nothing to do.\n")


@pytest.mark.disks
@skip_unless(*NTFS)
def test_a_broken_unattend_file_is_left_alone_and_exit_1(tmp_path: Path) -> None:
    image = make_ntfs(tmp_path / "windows.ntfs", {"Windows/Panther/unattend.xml": "<unattend"})
    with loop_device(image) as device:
        done = run_hook(MODULE, hook_env(device))
        with mounted(device, "-t", "ntfs-3g", "-o", "ro") as root:
            assert (root / "Windows/Panther/unattend.xml").read_text() == "<unattend"
    assert done.returncode == 1
    assert done.stdout == (f"Windows/Panther/unattend.xml on {device} was left as it is: it "
                           "is not well-formed XML (unclosed token: line 1, column 0).\n")
