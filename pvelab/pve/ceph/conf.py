"""/etc/pve/ceph.conf as PVE reads and writes it (pve-storage's CephConfig).

Reading follows Ceph's grammar as PVE does: `[section]` headers, `key = value` lines, `#` and `;`
comments (a backslash makes them literal), single- or double-quoted values, a trailing backslash
continuing a line; whitespace inside a key is squeezed and becomes `_` (Ceph treats `mon host` and
`mon_host` alike). A line PVE cannot parse is skipped with a warning, as PVE does.

Writing puts sections in PVE's order - global, client, client.*, mds, mds.*, mon, mon.*, osd,
osd.*, mgr, mgr.*, then the rest, each group sorted - keys sorted, each `<TAB>key = value`, a blank
line after every section, and escapes `;` and `#` that are not escaped yet (PVE 8.2+ and 9)."""

from __future__ import annotations

import re
from collections.abc import Callable

Config = dict[str, dict[str, str]]
Warn = Callable[[str], None]

COMMENT = "#;"
SECTION_ORDER = (r"global", r"client", r"client\..*", r"mds", r"mds\..*", r"mon", r"mon\..*", r"osd", r"osd\..*",
                 r"mgr", r"mgr\..*", r".*")


def parse(text: str | None, warnings: list[str] | None = None) -> Config:
    """The sections of a ceph.conf: {section: {key: value}}; unparsable lines go to `warnings`."""
    warn: Warn = warnings.append if warnings is not None else (lambda _line: None)
    config: Config = {}
    section: str | None = None
    lines = (text or "").split("\n")
    while lines:
        line = lines.pop(0)
        while line.endswith("\\") and not line.endswith("\\\\") and lines:  # a continued line
            line = line[:-1] + lines.pop(0).lstrip()
        stripped = line.strip()
        if not stripped or stripped[0] in COMMENT:
            continue
        if stripped.startswith("["):
            section = _section_header(stripped, warn)
            if section is not None:
                config.setdefault(section, {})
            continue
        if section is None:
            warn(f"no section header - skip: {line}")
            continue
        parsed = _key_value(stripped, line, warn)
        if parsed is not None:
            config[section][parsed[0]] = parsed[1]
    return config


def _section_header(line: str, warn: Warn) -> str | None:
    match = re.match(r"\[((?:\\.|[^\]#;])+)\](.*)$", line)
    rest = match.group(2).strip() if match else ""
    if match is None:
        warn(f"failed to parse section - skip: {line}")
        return None
    if rest and rest[0] not in COMMENT:
        warn(f"unexpected remainder after section - skip: {line}")
        return None
    return _unescape(match.group(1))


def _key_value(text: str, line: str, warn: Warn) -> tuple[str, str] | None:
    """`text` is the line without surrounding whitespace; warnings quote the line as it was."""
    match = re.match(r"((?:\\.|[^=\[#;])+?)\s*=\s*(.*)$", text)
    if match is None:
        warn(f"expected '=' after key - skip: {line}")
        return None
    key = re.sub(r"\s+", " ", match.group(1).strip()).replace(" ", "_")
    raw = match.group(2)
    quoted = re.match(r"""(['"])((?:\\.|(?!\1)[^#;])*)\1\s*(.*)$""", raw)
    if raw[:1] in ("'", '"'):
        if quoted is None or (quoted.group(3) and quoted.group(3)[0] not in COMMENT):
            warn(f"failed to parse quoted value - skip: {line}")
            return None
        value = quoted.group(2)
    else:
        unquoted = re.match(r"((?:\\.|[^#;])*)", raw)
        value = unquoted.group(1).rstrip() if unquoted else ""
    if value == "":
        warn(f"failed to parse value - skip: {line}")
        return None
    return _unescape(key), _unescape(value)


def _unescape(text: str) -> str:
    return re.sub(r"\\([#;])", r"\1", text)


def dump(config: Config) -> str:
    """ceph.conf text as PVE writes it."""
    out: list[str] = []
    written: set[str] = set()
    for pattern in SECTION_ORDER:
        for section in sorted(config):
            if section in written or not re.fullmatch(pattern, section):
                continue
            written.add(section)
            out.append(f"[{section}]\n")
            out += [f"\t{key} = {config[section][key]}\n" for key in sorted(config[section])]
            out.append("\n")
    return re.sub(r"(?<!\\)([;#])", r"\\\1", "".join(out))
