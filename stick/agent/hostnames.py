"""The stick's optional ``hostnames.csv``: which name each laptop gets, by MAC address.

Admins edit it in Excel or Notepad, so the reader is forgiving about form (UTF-8 with or
without BOM, CRLF, ``,`` ``;`` or tab between the columns, quotes, a header row, ``#``
comments, blank lines, MACs written any way) and strict about content: a line it cannot
read is an error that names the line, never a laptop silently left unnamed. Columns after
the name are ignored (room for the admin's notes).
"""

from __future__ import annotations

import re
from pathlib import Path

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_MAC_SEPARATORS = re.compile(r"[:.\-\s]")
_HEX = frozenset("0123456789abcdefABCDEF")


class HostnamesError(ValueError):
    """hostnames.csv cannot be read; the message is one sentence naming the line."""


def normalize_mac(text: str) -> str | None:
    """``3c:52:82:1a:2b:3c`` for any spelling of that MAC address, None if it is not one."""
    digits = _MAC_SEPARATORS.sub("", text.strip())
    if len(digits) != 12 or not set(digits) <= _HEX:
        return None
    digits = digits.lower()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def hostname_problem(name: str) -> str | None:
    """Why ``name`` is not a host name (one RFC 1123 label), as a clause; None if it is one."""
    if not name:
        return "the name is empty"
    if "." in name:
        return f"the name {name!r} has a dot: give the short host name, one label"
    if len(name) > 63:
        return f"the name {name!r} has {len(name)} characters, more than the 63 a host name may"
    if not _LABEL.fullmatch(name):
        return (f"the name {name!r} is not a host name: only letters, digits and '-', "
                "not first or last")
    return None


def _is_header(field: str) -> bool:
    """A first column such as "MAC" or "Adresse MAC"; one with a digit or only hex digits is a
    MAC address, perhaps mistyped, and must not be skipped silently as a header."""
    return (bool(field) and not any(c.isdigit() for c in field)
            and not set(_MAC_SEPARATORS.sub("", field)) <= _HEX)


def _fields(line: str) -> list[str]:
    separator = next((s for s in ";,\t" if s in line), ",")  # tabs may also align columns
    return [field.strip().strip('"').strip() for field in line.split(separator)]


def parse_hostnames(text: str, source: str = "hostnames.csv") -> dict[str, str]:
    """MAC (as :func:`normalize_mac` writes it) → host name, from the text of the file."""
    names: dict[str, str] = {}
    first_line_of: dict[str, int] = {}
    seen_data = False
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.partition("#")[0].strip()  # neither MACs nor host names hold a '#'
        if not line:
            continue
        fields = _fields(line)
        if not any(fields):
            continue  # an empty row of Excel's: ";;"
        where = f"{source}, line {number}"
        if not seen_data:
            seen_data = True
            if _is_header(fields[0]):
                continue
        mac = normalize_mac(fields[0])
        if not fields[0]:
            raise HostnamesError(f"{where}: the first column holds no MAC address.")
        if mac is None:
            raise HostnamesError(f"{where}: {fields[0]!r} is not a MAC address "
                                 "(12 hex digits, e.g. 3c:52:82:1a:2b:3c).")
        if len(fields) < 2 or not fields[1]:
            raise HostnamesError(f"{where}: the MAC address {mac} has no name after it.")
        name = fields[1]
        problem = hostname_problem(name)
        if problem is not None:
            raise HostnamesError(f"{where}: {problem}.")
        if mac in names and names[mac].lower() != name.lower():
            raise HostnamesError(f"{where}: the MAC address {mac} is named {names[mac]} "
                                 f"on line {first_line_of[mac]} already.")
        names.setdefault(mac, name)
        first_line_of.setdefault(mac, number)
    return names


def read_hostnames(path: Path | str) -> dict[str, str]:
    """The file at ``path`` parsed; an empty map when there is none (the file is optional)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise HostnamesError(f"{path} cannot be read: {e.strerror}.") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise HostnamesError(f"{path.name}, line {line}: the text is not UTF-8 "
                             "(save it as \"CSV UTF-8\").") from e
    return parse_hostnames(text, path.name)


def name_for(mac: str, path: Path | str) -> str | None:
    """The name ``hostnames.csv`` at ``path`` gives the laptop with ``mac``, if any."""
    wanted = normalize_mac(mac)
    if wanted is None:
        raise ValueError(f"{mac!r} is not a MAC address")
    return read_hostnames(path).get(wanted)
