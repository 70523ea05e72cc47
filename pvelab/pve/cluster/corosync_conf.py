"""corosync.conf as PVE reads and writes it: parse, build (`pvecm create`), add and remove nodes.

Written the way PVE's writer does: keys sorted, two-space indent, node entries sorted by name,
a blank line after each top-level section; every write bumps config_version.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

Conf = dict[str, Any]
LIST_SECTIONS = ("node", "interface")
MAX_LINKS = 8


class ConfError(Exception):
    pass


def parse(text: str) -> Conf:
    root: Conf = {}
    stack: list[Conf] = [root]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            name = line[:-1].strip()
            section: Conf = {}
            parent = stack[-1]
            if name in LIST_SECTIONS:
                parent.setdefault(name, []).append(section)
            else:
                parent[name] = section
            stack.append(section)
        elif line == "}":
            if len(stack) == 1:
                raise ConfError(f"line {lineno}: unbalanced '}}'")
            stack.pop()
        elif ":" in line:
            key, value = line.split(":", 1)
            stack[-1][key.strip()] = value.strip()
        else:
            raise ConfError(f"line {lineno}: cannot parse '{line}'")
    if len(stack) != 1:
        raise ConfError("unexpected end of file: a section is not closed")
    return root


def _sort_key(section: str, item: Conf) -> Any:
    if section == "node":
        return item.get("name", "")
    if section == "interface":
        return int(item.get("linknumber", 0))
    return 0


def _write_section(lines: list[str], data: Conf, depth: int) -> None:
    pad = "  " * depth
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list):
            for item in sorted(value, key=functools.partial(_sort_key, key)):
                lines.append(f"{pad}{key} {{")
                _write_section(lines, item, depth + 1)
                lines.append(f"{pad}}}")
        elif isinstance(value, dict):
            lines.append(f"{pad}{key} {{")
            _write_section(lines, value, depth + 1)
            lines.append(f"{pad}}}")
        else:
            lines.append(f"{pad}{key}: {value}")


def dump(conf: Conf) -> str:
    lines: list[str] = []
    for key in sorted(conf):
        part: list[str] = []
        _write_section(part, {key: conf[key]}, 0)
        lines += [*part, ""]
    return "\n".join(lines) + "\n"


def nodes(conf: Conf) -> list[Conf]:
    return sorted(conf.get("nodelist", {}).get("node", []), key=lambda n: n.get("name", ""))


def config_version(conf: Conf) -> int:
    return int(conf.get("totem", {}).get("config_version", 0))


def cluster_name(conf: Conf) -> str:
    return str(conf.get("totem", {}).get("cluster_name", ""))


def parse_link(text: str) -> tuple[str, int | None]:
    """`[address=]<IP>[,priority=<int>]` -> (address, priority)."""
    address, priority = "", None
    for part in text.split(","):
        key, _sep, value = part.partition("=")
        if not value:
            key, value = "address", key
        if key == "address":
            address = value
        elif key == "priority":
            if not value.isdigit():
                raise ConfError(f"invalid link priority '{value}'")
            priority = int(value)
        else:
            raise ConfError(f"invalid link option '{key}'")
    if not address:
        raise ConfError(f"link '{text}' has no address")
    return address, priority


def create(name: str, nodename: str, nodeid: int, votes: int, links: dict[int, tuple[str, int | None]],
           token_coefficient: int | None) -> Conf:
    """What `pvecm create` writes (config_version 1)."""
    interfaces = []
    for number in sorted(links):
        iface: Conf = {"linknumber": str(number)}
        if links[number][1] is not None:
            iface["knet_link_priority"] = str(links[number][1])
        interfaces.append(iface)
    node: Conf = {"name": nodename, "nodeid": str(nodeid), "quorum_votes": str(votes)}
    node.update({f"ring{number}_addr": links[number][0] for number in links})
    totem: Conf = {"cluster_name": name, "config_version": "1", "interface": interfaces,
                   "ip_version": "ipv4-6", "link_mode": "passive", "secauth": "on", "version": "2"}
    if token_coefficient is not None:
        totem["token_coefficient"] = str(token_coefficient)
    return {"logging": {"debug": "off", "to_syslog": "yes"}, "nodelist": {"node": [node]},
            "quorum": {"provider": "corosync_votequorum"}, "totem": totem}


def bump(conf: Conf) -> Conf:
    new = copy.deepcopy(conf)
    new["totem"]["config_version"] = str(config_version(conf) + 1)
    return new


def with_node(conf: Conf, name: str, nodeid: int | None, votes: int, links: dict[int, str]) -> Conf:
    existing = nodes(conf)
    used = {int(n["nodeid"]) for n in existing}
    if nodeid is None:
        nodeid = next(i for i in range(1, len(used) + 2) if i not in used)
    node: Conf = {"name": name, "nodeid": str(nodeid), "quorum_votes": str(votes)}
    node.update({f"ring{number}_addr": addr for number, addr in links.items()})
    new = bump(conf)
    new["nodelist"]["node"] = [*existing, node]
    return new


def without_node(conf: Conf, name: str) -> Conf:
    new = bump(conf)
    new["nodelist"]["node"] = [n for n in nodes(conf) if n.get("name") != name]
    return new


def link_numbers(conf: Conf) -> list[int]:
    return sorted(int(i.get("linknumber", 0)) for i in conf.get("totem", {}).get("interface", []))
