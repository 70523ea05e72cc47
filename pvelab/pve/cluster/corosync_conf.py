"""corosync.conf as PVE reads and writes it: parse, build (`pvecm create`), add and remove nodes.

Written the way PVE's writer does: keys sorted, two-space indent, node entries sorted by name,
a blank line after each top-level section; every write bumps config_version.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
import socket
from collections.abc import Callable
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


# -- checks -------------------------------------------------------------------------------------------
LINK_ADDR = re.compile(r"^(ring|link)(\d+)_addr$")


def resolve_like_corosync(host: str, conf: Conf) -> str | None:
    """PVE's resolve_hostname_like_corosync: an address as it is; a name through the resolver, the
    families in totem's ip_version order (ipv6-4 by default)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return None
    first = {family: str(addr[0]) for family, *_rest, addr in reversed(found)}  # the first of each family
    v4, v6 = first.get(socket.AF_INET), first.get(socket.AF_INET6)
    strategy = str(conf.get("totem", {}).get("ip_version", "ipv6-4")).lower()
    return {"ipv4": v4, "ipv6": v6, "ipv6-4": v6 or v4, "ipv4-6": v4 or v6}.get(strategy)


def verify(conf: Conf, resolve: Callable[[str, Conf], str | None] = resolve_like_corosync
           ) -> tuple[list[str], list[str]]:
    """PVE's verify_conf: (errors, warnings) - nodes and totem present, every link of a node matched
    by an interface (or, without interfaces, every link on every node), addresses that resolve."""
    errors: list[str] = []
    warnings: list[str] = []
    node_list = {n.get("name") or n.get("ring0_addr"): n for n in conf.get("nodelist", {}).get("node", [])}
    if not node_list:
        return ["no nodes found"], warnings
    totem = conf.get("totem")
    if not totem:
        return ["no totem found"], warnings
    if totem.get("secauth") != "on" and totem.get("crypto_cipher", "none") == "none":
        warnings.append("warning: authentication/encryption is not explicitly enabled (secauth / crypto_cipher / "
                        "crypto_hash)")
    interfaces = {str(i.get("linknumber", i.get("ringnumber"))): i for i in totem.get("interface", [])}

    def check_address(key: str, link: str, node: str) -> None:
        resolved = resolve(link, conf)
        if resolved is None:
            warnings.append(f"warning: unable to resolve {key} '{link}' for node '{node}' to an IP address according "
                            "to Corosync's resolve strategy - cluster could fail on restart!")
        elif resolved != link:
            warnings.append(f"warning: {key} '{link}' for node '{node}' resolves to '{resolved}' - consider replacing "
                            "it with the currently resolved IP address for stability")

    links = {node: {int(m.group(2)): (key, value) for key, value in options.items() if (m := LINK_ADDR.match(key))}
             for node, options in node_list.items()}
    names = sorted(node_list)
    for link in range(MAX_LINKS):
        holders = [n for n in names if link in links[n]]
        for node in holders:
            check_address(*links[node][link], node)
        if interfaces:
            for node in names:
                if node in holders and str(link) not in interfaces:
                    errors.append(f"node '{node}' has '{links[node][link][0]}', but there is no interface number "
                                  f"{link} configured")
                elif node not in holders and str(link) in interfaces:
                    errors.append(f"node '{node}' is missing address forinterface number {link}")  # sic, PVE's text
        elif holders:
            errors += [f"node '{node}' is missing link {link}, which is configured on other nodes"
                       for node in names if node not in holders]
    return errors, warnings
