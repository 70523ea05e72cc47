"""`pvelab nested plan`: a class of nested labs on an L0 host planned from its settings (YAML or JSON, a file
or `-` for stdin), as JSON for the nested-lab playbook; with --discs, each node's answer disc written there
(rewritten only when its answer changed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from pvelab.nested import first_boot_hook
from pvelab.nested.disc import write_answer_disc
from pvelab.nested.l0 import L0Facts, bridge_comment, refusals
from pvelab.nested.plan import NestedClass, NestedNode, PlanError, plan_class
from pvelab.nested.vm import after_install_params


def add_parser(top: Any) -> None:
    nested = top.add_parser("nested", help="nested PVE labs on a real PVE host (docs/nested.md)")
    cmds = nested.add_subparsers(dest="command", required=True)
    plan = cmds.add_parser("plan", help="plan a class's nested labs (JSON on stdout)")
    plan.add_argument("settings", help="the class's settings, YAML or JSON (`-`: stdin)")
    plan.add_argument("--discs", type=Path, metavar="DIR", help="write each node's answer disc into DIR")
    plan.add_argument("--l0-facts", type=Path, metavar="FILE",
                      help="what the L0 hosts have (JSON: guests, and for each host by node name nested, network, "
                           "storages, isos, as pvesh prints them): a plan that runs into it is refused")
    plan.set_defaults(func=cmd_plan)
    hook = cmds.add_parser("first-boot-hook", help="print pvelab's first-boot hook, for prepare-iso --on-first-boot")
    hook.set_defaults(func=cmd_first_boot_hook)


def cmd_first_boot_hook(_lab: Any, _args: argparse.Namespace) -> None:
    sys.stdout.buffer.write(first_boot_hook())


def read_settings(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise PlanError(f"cannot read the settings: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(f"the settings are not YAML or JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PlanError("the settings are a mapping (students, root_password_hashed, installer_iso, ...)")
    return data


def node_entry(node: NestedNode, disc: Path | None) -> dict[str, Any]:
    return {"student": node.student, "name": node.name, "vmid": node.vmid, "fqdn": node.plan.fqdn,
            "l0_node": node.l0_node, "address": node.address, "link1_address": node.link1_address,
            "gateway": node.gateway,
            "bridges": list(node.bridges),
            "bridge_comments": [bridge_comment(node, k) for k in range(len(node.bridges))],
            "disc": str(disc) if disc else None, "disc_name": node.disc_name,
            "create": {k: v for k, v in node.create_params().items() if k != "vmid"},
            "after_install": after_install_params()}


def write_disc(node: NestedNode, directory: Path) -> Path:
    """The node's disc, left as it is when its answer has not changed (a second run uploads nothing)."""
    disc, kept = directory / node.disc_name, directory / f"{node.disc_name}.answer.toml"
    if disc.exists() and kept.exists() and kept.read_text() == node.answer:
        return disc
    write_answer_disc(node.answer, disc)
    kept.write_text(node.answer)
    return disc


def read_facts(path: Path) -> L0Facts:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlanError(f"cannot read the L0 host's facts {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PlanError(f"the L0 host's facts {path} are not a JSON object")
    return L0Facts.of(data)


def cmd_plan(_lab: Any, args: argparse.Namespace) -> None:
    klass = NestedClass.of(read_settings(args.settings))
    nodes = plan_class(klass)
    if args.l0_facts:
        found = refusals(klass, nodes, read_facts(args.l0_facts))
        if found:
            raise PlanError("the L0 hosts cannot take this plan:\n- " + "\n- ".join(found))
    if args.discs:
        args.discs.mkdir(parents=True, exist_ok=True)
    entries = [node_entry(node, write_disc(node, args.discs) if args.discs else None) for node in nodes]
    print(json.dumps({"nodes": entries, "inventories": inventories(nodes)}, indent=1))


def inventories(nodes: list[NestedNode]) -> dict[str, Any]:
    """Each student's inventory as site.yml reads one (inventory/example-hardware's shape): the three
    nodes, their link0 (management, SSH, API) and link1 addresses; the cluster is named after the student."""
    out: dict[str, Any] = {}
    for node in nodes:
        settings = {"ansible_user": "root", "pve_cluster_name": node.student}
        entry = out.setdefault(node.student, {"all": {"children": {"pve_nodes": {"hosts": {}}}, "vars": settings}})
        entry["all"]["children"]["pve_nodes"]["hosts"][node.name] = {
            "ansible_host": node.address, "link0_addr": node.address, "link1_addr": node.link1_address}
    return out
