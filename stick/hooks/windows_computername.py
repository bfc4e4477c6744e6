"""Post-deploy hook: give the Windows system just written to this laptop its ComputerName.

A sysprep'd image finishes its setup at first boot from ``Windows/Panther/unattend.xml``;
the name goes there, in the ``specialize`` pass' ``Microsoft-Windows-Shell-Setup``
component. Exit 0 when every such file found was updated or there is no name for this
laptop, 1 otherwise (none found, a bad name, a file that is not an unattend file).
"""

from __future__ import annotations

import contextlib
import io
import xml.etree.ElementTree as ET

from stick.agent.hostnames import hostname_problem
from stick.hooks.mounting import (
    HookError,
    device_failed,
    filesystem_type,
    find_casefold,
    mounted,
    read_file,
    say,
    target_from_env,
    unmount_on_sigterm,
    write_file,
)

UNATTEND_PATH = "Windows/Panther/unattend.xml"
NS = "urn:schemas-microsoft-com:unattend"
SHELL_SETUP = "Microsoft-Windows-Shell-Setup"
PASSES = ("windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem",
          "auditUser", "oobeSystem")  # the order Windows runs them, and SIM writes them
_COMPONENT = {"publicKeyToken": "31bf3856ad364e35", "language": "neutral",
              "versionScope": "nonSxS"}  # every inbox component carries these
_BOM = b"\xef\xbb\xbf"


class UnattendError(ValueError):
    """The file is not an unattend file this hook can edit."""


def computer_name_problem(name: str) -> str | None:
    """Why Windows would refuse ``name`` as its ComputerName (NetBIOS rules), as a clause."""
    problem = hostname_problem(name)
    if problem is not None:
        return problem
    if len(name) > 15:
        return (f"the name {name!r} has {len(name)} characters, more than the 15 a Windows "
                "ComputerName may")
    if name.isdigit():
        return f"the name {name!r} is only digits, which Windows refuses as a ComputerName"
    return None


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2] if isinstance(element.tag, str) else ""


def _insert(parent: ET.Element, index: int, child: ET.Element, depth: int, unit: str) -> None:
    """Insert ``child`` (its parent at ``depth``) indented like a file Windows SIM writes, so
    it stays readable in Notepad."""
    inner, outer = "\n" + unit * (depth + 1), "\n" + unit * depth
    if len(parent) == 0:
        parent.text, child.tail = inner, outer
    elif index >= len(parent):
        child.tail, parent[-1].tail = parent[-1].tail, inner
    else:
        child.tail = inner
    parent.insert(index, child)


def _specialize(root: ET.Element, unit: str) -> list[ET.Element]:
    found = [s for s in root.findall(_q("settings")) if s.get("pass") == "specialize"]
    if found:
        return found
    later = set(PASSES[PASSES.index("specialize") + 1:])
    index = next((i for i, e in enumerate(root)
                  if _local(e) == "settings" and e.get("pass") in later), len(root))
    settings = ET.Element(_q("settings"), {"pass": "specialize"})
    _insert(root, index, settings, 0, unit)
    return [settings]


def _shell_setup(root: ET.Element, settings: list[ET.Element], unit: str) -> list[ET.Element]:
    found = [c for s in settings for c in s.findall(_q("component"))
             if c.get("name") == SHELL_SETUP]
    if found:
        return found
    other = root.find(f".//{_q('component')}[@processorArchitecture]")
    arch = "amd64" if other is None else other.get("processorArchitecture", "amd64")
    component = ET.Element(_q("component"), {"name": SHELL_SETUP,
                                             "processorArchitecture": arch, **_COMPONENT})
    _insert(settings[0], len(settings[0]), component, 1, unit)
    return [component]


def _set_in(component: ET.Element, name: str, unit: str) -> None:
    element = component.find(_q("ComputerName"))
    if element is None:
        element = ET.Element(_q("ComputerName"))
        # SIM sorts a component's settings by name.
        index = next((i for i, e in enumerate(component)
                      if _local(e) and _local(e).lower() > "computername"), len(component))
        _insert(component, index, element, 2, unit)
    element.text = name


def _parse(data: bytes) -> tuple[ET.Element, list[tuple[str, str]]]:
    try:
        namespaces = [ns for _, ns in ET.iterparse(io.BytesIO(data), events=["start-ns"])]
        parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
        root = ET.fromstring(data, parser)
    except ET.ParseError as e:
        raise UnattendError(f"it is not well-formed XML ({e})") from e
    if root.tag != _q("unattend"):
        raise UnattendError(f"its root element is not <unattend xmlns=\"{NS}\">")
    return root, namespaces


def set_computer_name(data: bytes, name: str) -> bytes:
    """The unattend file ``data`` with ``name`` as the ComputerName of its specialize pass
    (the pass, component and setting made where missing); the rest of the document, its
    namespace prefixes, comments and line ends kept."""
    root, namespaces = _parse(data)
    for prefix, uri in namespaces:
        # "" keeps the default namespace (no ns0: prefixes); a reserved one such as "ns0"
        # is refused, and ElementTree names that namespace itself.
        with contextlib.suppress(ValueError):
            ET.register_namespace(prefix, uri)
    text = root.text or ""
    unit = text.lstrip("\r\n") if text.strip() == "" and text.lstrip("\r\n") else "    "
    settings = _specialize(root, unit)
    for component in _shell_setup(root, settings, unit):
        _set_in(component, name, unit)
    body = ET.tostring(root, encoding="unicode")
    out = '<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n"
    if b"\r\n" in data:  # the parser made every line end \n
        out = out.replace("\n", "\r\n")
    return (_BOM if data.startswith(_BOM) else b"") + out.encode("utf-8")


def name_filesystem(device: str, name: str) -> tuple[int, int]:
    """Whether ``device`` holds an unattend.xml, and whether it now names ``name`` (0 or 1
    each)."""
    if filesystem_type(device) != "ntfs":
        return 0, 0
    with mounted(device, "ntfs") as mountpoint:
        path = find_casefold(mountpoint, UNATTEND_PATH)
        if path is None or not path.is_file():
            return 0, 0
        where = f"{path.relative_to(mountpoint)} on {device}"
        problem = computer_name_problem(name)
        if problem is not None:  # refused only where there is a Windows to name
            say(f"{problem}; {where} was left as it is.")
            return 1, 0
        try:
            data = read_file(path) or b""
            write_file(path, set_computer_name(data, name))
        except (UnattendError, HookError) as e:
            say(f"{where} was left as it is: {str(e).rstrip('.')}.")
            return 1, 0
        say(f"set ComputerName {name} in {where}.")
        return 1, 1


def main() -> int:
    unmount_on_sigterm()
    target = target_from_env()
    if not target.hostname:
        say(f"no name for MAC {target.mac or '(unknown)'}, nothing to do.")
        return 0
    if not target.devices:
        say("MCASTD_TARGET is not set: there is no disk to look at.")
        return 1
    found = updated = 0
    for device in target.devices:
        try:
            found_here, updated_here = name_filesystem(device, target.hostname)
        except HookError as e:
            say(str(e))
            continue
        except OSError as e:
            say(device_failed(device, e))
            continue
        found += found_here
        updated += updated_here
    if not found:  # a Linux image: the other hook's business, not a failure
        say(f"no {UNATTEND_PATH} on {target.device or target.devices[0]}: not a sysprepped "
            "Windows image, nothing to do.")
        return 0
    return 0 if updated == found else 1


if __name__ == "__main__":
    raise SystemExit(main())
