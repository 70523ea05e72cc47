"""HA's files in /etc/pve/ha (resources.cfg, groups.cfg, rules.cfg, manager_status, crm_commands) and
each node's lrm_status: their formats, defaults and the reads and writes every part of the stack shares."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from pvelab.pve.cluster.locks import cfs_lock
from pvelab.pve.refusal import Refusal

PVE_DIR = Path("/etc/pve")
HA_DIR = PVE_DIR / "ha"
RESOURCES = HA_DIR / "resources.cfg"
GROUPS = HA_DIR / "groups.cfg"
RULES = HA_DIR / "rules.cfg"
MANAGER_STATUS = HA_DIR / "manager_status"
CRM_COMMANDS = HA_DIR / "crm_commands"
LOCK_DIR = PVE_DIR / "priv" / "lock"
DATACENTER = PVE_DIR / "datacenter.cfg"

RESOURCE_DEFAULTS = {"state": "started", "max_restart": "1", "max_relocate": "1", "failback": "1"}
REQUESTED_STATES = ("started", "stopped", "disabled", "ignored")
SID_RE = re.compile(r"^(vm|ct):([1-9][0-9]+)$")
# Keys each section type must have; SectionConfig writes them before the optional ones.
REQUIRED = {"vm": (), "ct": (), "group": ("nodes",), "node-affinity": ("nodes", "resources"),
            "resource-affinity": ("affinity", "resources")}


class HaConfigError(Refusal):
    """A refused HA request; the message is PVE's."""


class Section:
    """One `type: id` section and its options (a plain class: the daemons avoid dataclasses' imports)."""

    def __init__(self, type: str, id: str, options: dict[str, str] | None = None) -> None:  # noqa: A002
        self.type, self.id, self.options = type, id, dict(options or {})

    @property
    def key(self) -> str:
        """The section's identity in its file: `vm:100` for resources, the plain id otherwise."""
        return f"{self.type}:{self.id}" if self.type in ("vm", "ct") else self.id


def parse_sections(text: str) -> list[Section]:
    """A SectionConfig file: `type: id` headers, then TAB-indented `key value` lines (a bare key is 1)."""
    sections: list[Section] = []
    current: Section | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            current = None if not line.strip() else current
            continue
        if not line[0].isspace():
            kind, _, ident = line.partition(":")
            current = Section(kind.strip(), ident.strip())
            sections.append(current)
        elif current is not None:
            name, _, value = line.strip().partition(" ")
            current.options[name] = value.strip() if value.strip() else "1"
    return sections


def print_sections(sections: list[Section]) -> str:
    """As PVE's SectionConfig writes: comment, a bare `disable`, required keys sorted, the rest sorted,
    each as TAB key SPACE value; a blank line after each section."""
    out = []
    for section in sections:
        lines = [f"{section.type}: {section.id}"]
        opts = dict(section.options)
        if "comment" in opts:
            lines.append(f"\tcomment {opts.pop('comment')}")
        if opts.pop("disable", "0") == "1":
            lines.append("\tdisable")
        required = REQUIRED.get(section.type, ())
        for name in [*sorted(k for k in opts if k in required), *sorted(k for k in opts if k not in required)]:
            lines.append(f"\t{name} {opts[name]}")
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def digest_of(text: str) -> str:
    import hashlib  # here, not at the top: OpenSSL's pages would count in every idle HA daemon

    return hashlib.sha1(text.encode()).hexdigest()


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def write_text(path: Path, text: str) -> None:
    """A whole-file write through pmxcfs: a temporary file renamed over the old one."""
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def read_sections(path: Path) -> tuple[list[Section], str]:
    text = read_text(path)
    return parse_sections(text), digest_of(text)


def write_sections(path: Path, sections: list[Section]) -> None:
    write_text(path, print_sections(sections))


# -- resources --------------------------------------------------------------------------------------
def parse_sid(sid: str) -> tuple[str, int]:
    m = SID_RE.match(sid)
    if not m:
        raise HaConfigError(f"unable to parse service id '{sid}'", "sid")
    return m.group(1), int(m.group(2))


def resources() -> dict[str, dict[str, str]]:
    """{sid: options as written} in file order."""
    return {s.key: dict(s.options) for s in read_sections(RESOURCES)[0] if s.type in ("vm", "ct")}


def with_defaults(options: dict[str, str]) -> dict[str, str]:
    merged = {**RESOURCE_DEFAULTS, **options}
    if merged["state"] == "enabled":
        merged["state"] = "started"
    return merged


def write_resources(entries: dict[str, dict[str, str]]) -> None:
    sections = [Section(sid.split(":")[0], sid.split(":")[1], dict(opts)) for sid, opts in entries.items()]
    write_sections(RESOURCES, sections)


def set_requested_state(sid: str, state: str) -> None:
    """The CRM's and the stop command's rewrite of one resource's `state`."""
    with domain_lock():
        entries = resources()
        if sid in entries:
            entries[sid]["state"] = state
            write_resources(entries)


# -- groups and rules -------------------------------------------------------------------------------
def parse_node_list(text: str) -> dict[str, int]:
    """`pve1:2,pve2,pve3:1` as {node: priority} (priority 0 when not given)."""
    nodes: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, prio = item.partition(":")
        nodes[name] = int(prio) if prio else 0
    return nodes


def print_node_list(nodes: dict[str, int]) -> str:
    return ",".join(f"{n}:{p}" if p else n for n, p in sorted(nodes.items()))


def groups() -> dict[str, dict[str, str]]:
    return {s.id: dict(s.options) for s in read_sections(GROUPS)[0] if s.type == "group"}


def rules() -> list[Section]:
    return [s for s in read_sections(RULES)[0] if s.type in ("node-affinity", "resource-affinity")]


# -- the manager's and LRMs' status files -----------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text() or "{}")
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def manager_status() -> dict[str, Any]:
    return read_json(MANAGER_STATUS)


def write_manager_status(status: dict[str, Any]) -> None:
    write_text(MANAGER_STATUS, json.dumps(status, separators=(",", ":")))


def lrm_status_path(node: str) -> Path:
    return PVE_DIR / "nodes" / node / "lrm_status"


def lrm_status(node: str) -> dict[str, Any] | None:
    """A node's last lrm_status, None when it has none (the CRM then calls its mode unknown)."""
    path = lrm_status_path(node)
    return read_json(path) if path.exists() else None


def write_lrm_status(node: str, status: dict[str, Any]) -> None:
    write_text(lrm_status_path(node), json.dumps(status, separators=(",", ":")))


def queue_crm_command(command: str) -> None:
    with domain_lock():
        write_text(CRM_COMMANDS, read_text(CRM_COMMANDS) + command + "\n")


def take_crm_commands() -> list[str]:
    """The master's read-and-truncate of the queue, once per round (the lock only when there is work)."""
    if not read_text(CRM_COMMANDS).strip():
        return []
    with domain_lock():
        text = read_text(CRM_COMMANDS)
        if text:
            write_text(CRM_COMMANDS, "")
    return [line for line in text.splitlines() if line.strip()]


def datacenter_option(key: str) -> dict[str, str]:
    """A property-string option of datacenter.cfg (`ha: shutdown_policy=migrate`) as a dict."""
    for line in read_text(DATACENTER).splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            props = {}
            for part in value.strip().split(","):
                k, sep, v = part.partition("=")
                props[k.strip() if sep else "_"] = v.strip() if sep else k.strip()
            return props
    return {}


def domain_lock(timeout: float = 10.0) -> contextlib.AbstractContextManager[None]:
    """pve-cluster's cfs_lock_domain('ha'): a cluster-wide lock held while HA config changes."""
    return cfs_lock("domain-ha", timeout, HaConfigError)
