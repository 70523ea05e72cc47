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

from pvelab.nested.disc import write_answer_disc
from pvelab.nested.plan import NestedClass, NestedNode, PlanError, plan_class
from pvelab.nested.vm import after_install_params


def add_parser(top: Any) -> None:
    nested = top.add_parser("nested", help="nested PVE labs on a real PVE host (docs/nested.md)")
    cmds = nested.add_subparsers(dest="command", required=True)
    plan = cmds.add_parser("plan", help="plan a class's nested labs (JSON on stdout)")
    plan.add_argument("settings", help="the class's settings, YAML or JSON (`-`: stdin)")
    plan.add_argument("--discs", type=Path, metavar="DIR", help="write each node's answer disc into DIR")
    plan.set_defaults(func=cmd_plan)


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
            "address": node.address, "link1_address": node.link1_address, "gateway": node.gateway,
            "bridges": list(node.bridges), "disc": str(disc) if disc else None, "disc_name": node.disc_name,
            "create": node.create_params(), "after_install": after_install_params()}


def write_disc(node: NestedNode, directory: Path) -> Path:
    """The node's disc, left as it is when its answer has not changed (a second run uploads nothing)."""
    disc, kept = directory / node.disc_name, directory / f"{node.disc_name}.answer.toml"
    if disc.exists() and kept.exists() and kept.read_text() == node.answer:
        return disc
    write_answer_disc(node.answer, disc)
    kept.write_text(node.answer)
    return disc


def cmd_plan(_lab: Any, args: argparse.Namespace) -> None:
    nodes = plan_class(NestedClass.of(read_settings(args.settings)))
    entries = [node_entry(node, write_disc(node, args.discs) if args.discs else None) for node in nodes]
    print(json.dumps({"nodes": entries}, indent=1))
