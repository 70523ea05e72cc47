"""pve-ha-manager's regression scenarios (tests/fixtures/pve-ha-manager/scenarios/, SOURCES.md there) as
data: what each sets up (hardware, manager status, services, rules, groups, datacenter.cfg, stats),
the commands it runs round by round, and what its log.expect says happened - each service's state
changes and its last state and node, each node's state changes. The measures issue 24 names
(final state and node of every service and node; the sequence of service state changes) are read
from these, so a harness that runs the scenarios against pvelab's HA stack compares like with like.

Reading only: running a scenario needs the simulated cluster (hardware, CRM and LRM rounds,
locks, watchdog) that drives pvelab.pve.ha, which is not built yet."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = Path(__file__).resolve().parent / "fixtures" / "pve-ha-manager" / "scenarios"
PVE8_GROUP_SCENARIOS = SCENARIOS.with_name("scenarios-pve8")  # PVE 8's suite: its scenarios with HA groups
# a log line: level, time, who (node/crm, node/lrm, hardware, cmdlist, watchdog, ...), message
LOG_LINE = re.compile(r"^(\w+)\s+(\d+)\s+(\S+):\s?(.*)$")
SERVICE_CHANGE = re.compile(r"^service '([^']+)': state changed from '([^']+)' to '([^']+)'(?:\s+\(node = ([^,)\s]+))?")
NODE_CHANGE = re.compile(r"^node '([^']+)': state changed from '([^']+)' => '([^']+)'")
RECOVERY = re.compile(r"^recover service '([^']+)' from fenced node '[^']+' to node '([^']+)'")


@dataclass
class Expected:
    """What a scenario's log.expect says happened."""

    service_changes: list[tuple[str, str, str]] = field(default_factory=list)  # (sid, from, to), in order
    services: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # sid -> (last state, last node)
    nodes: dict[str, str] = field(default_factory=dict)  # node -> last state the CRM gave it
    lines: list[tuple[str, int, str, str]] = field(default_factory=list)  # (level, time, who, message)


@dataclass
class Scenario:
    name: str
    readme: str
    commands: list[list[str]]  # one list per round of the command list
    hardware: dict[str, dict[str, str]]
    manager_status: dict[str, Any]
    services: dict[str, dict[str, str]]
    files: dict[str, str]  # the others as text: rules_config, groups, datacenter.cfg, *_service_stats
    expected: Expected


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}


def expected_from(log: str, initial: dict[str, dict[str, str]]) -> Expected:
    """The changes the log records; a service's node is its config's until a line names another."""
    out = Expected()
    nodes = {sid: conf.get("node") for sid, conf in initial.items()}
    for raw in log.splitlines():
        found = LOG_LINE.match(raw)
        if not found:
            continue
        level, when, who, message = found.group(1), int(found.group(2)), found.group(3), found.group(4)
        out.lines.append((level, when, who, message))
        if not who.endswith("/crm"):
            continue
        if change := SERVICE_CHANGE.match(message):
            sid, old, new, node = change.groups()
            nodes[sid] = node or nodes.get(sid)
            out.service_changes.append((sid, old, new))
            out.services[sid] = (new, nodes[sid])
        elif recovery := RECOVERY.match(message):
            nodes[recovery.group(1)] = recovery.group(2)
        elif node_change := NODE_CHANGE.match(message):
            out.nodes[node_change.group(1)] = node_change.group(3)
    return out


def load(directory: Path) -> Scenario:
    services = read_json(directory / "service_config")
    others = {p.name: p.read_text() for p in sorted(directory.iterdir())
              if p.name not in ("cmdlist", "hardware_status", "manager_status", "service_config", "log.expect",
                                "README")}
    return Scenario(name=directory.name, readme=(directory / "README").read_text() if (directory / "README").exists()
                    else "", commands=read_json(directory / "cmdlist") or [], hardware=read_json(directory /
                    "hardware_status"), manager_status=read_json(directory / "manager_status"), services=services,
                    files=others, expected=expected_from((directory / "log.expect").read_text(), services))


def all_scenarios(folder: Path = SCENARIOS) -> list[Scenario]:
    return [load(d) for d in sorted(folder.iterdir()) if d.is_dir()]
