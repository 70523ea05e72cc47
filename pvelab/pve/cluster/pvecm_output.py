"""Parsers for `pvecm status`, `pvecm nodes` and `corosync-cfgtool -s` output, shared by the
modules, the Jinja filters and the Testinfra verify suite."""

from __future__ import annotations

import re
from typing import Any

FIELD = re.compile(r"^([A-Za-z][A-Za-z ]*?):\s*(.*?)\s*$")
MEMBER = re.compile(r"^\s*(0x[0-9a-fA-F]+|\d+)\s+(\d+)\s+(?:([A-Z,]+)\s+)?(\S+)(\s+\(local\))?\s*$")


def _int(value: str) -> int:
    return int(value, 16) if value.lower().startswith("0x") else int(value)


def parse_members(text: str) -> list[dict[str, Any]]:
    members = []
    in_block = False
    for line in text.splitlines():
        if line.strip().startswith("Nodeid"):
            in_block = True
            continue
        if in_block:
            m = MEMBER.match(line)
            if m:
                members.append({"nodeid": _int(m.group(1)), "votes": int(m.group(2)),
                                "qdevice_flags": m.group(3) or "", "name": m.group(4),
                                "local": bool(m.group(5))})
    return members


def parse_status(text: str) -> dict[str, Any]:
    """`pvecm status` -> {name, config_version, quorate, nodes, expected_votes, total_votes, quorum,
    flags: [...], members: [...]}; fields missing from the text are left out."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = FIELD.match(line)
        if m and not line.startswith(" "):
            fields.setdefault(m.group(1), m.group(2))
    out: dict[str, Any] = {}
    for key, name, conv in (("Name", "name", str), ("Config Version", "config_version", int),
                            ("Transport", "transport", str), ("Nodes", "nodes", int),
                            ("Expected votes", "expected_votes", int), ("Highest expected", "highest_expected", int),
                            ("Total votes", "total_votes", int), ("Node ID", "node_id", _int)):
        if key in fields:
            out[name] = conv(fields[key])
    if "Quorum" in fields:
        out["quorum"] = int(fields["Quorum"].split()[0])
        out["activity_blocked"] = "Activity blocked" in fields["Quorum"]
    if "Quorate" in fields:
        out["quorate"] = fields["Quorate"] == "Yes"
    out["flags"] = fields.get("Flags", "").split()
    out["members"] = parse_members(text)
    return out


def parse_nodes(text: str) -> list[dict[str, Any]]:
    return parse_members(text)


LINK = re.compile(r"^LINK ID (\d+)")
LINK_NODE = re.compile(r"^\s*nodeid:?\s+(\d+):\s*(.+?)\s*$")


def parse_cfgtool_status(text: str) -> dict[int, dict[int, str]]:
    """`corosync-cfgtool -s` -> {link number: {nodeid: "localhost"|"connected"|"disconnected"|...}}."""
    links: dict[int, dict[int, str]] = {}
    current: int | None = None
    for line in text.splitlines():
        m = LINK.match(line.strip())
        if m:
            current = int(m.group(1))
            links[current] = {}
            continue
        m = LINK_NODE.match(line)
        if m and current is not None:
            links[current][int(m.group(1))] = m.group(2)
    return links
