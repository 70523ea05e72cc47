"""Placement rules: PVE 8's HA groups and PVE 9's node-affinity and resource-affinity rules, compiled into
what node selection needs (allowed nodes with priorities; resources to keep together or apart)."""

from __future__ import annotations

from pvelab.pve.ha import config
from pvelab.pve.ha.config import Section


class NodeAffinity:
    def __init__(self, nodes: dict[str, int], strict: bool) -> None:
        self.nodes = nodes  # node -> priority, higher wins
        self.strict = strict


class CompiledRules:
    def __init__(self) -> None:
        self.node_affinity: dict[str, NodeAffinity] = {}
        self.together: dict[str, set[str]] = {}
        self.apart: dict[str, set[str]] = {}
        self.errors: dict[str, dict[str, list[str]]] = {}  # rule id -> field -> messages


def from_groups(resources: dict[str, dict[str, str]], groups: dict[str, dict[str, str]]) -> CompiledRules:
    """PVE 8: a resource's `group` is its node affinity (`restricted` = strict)."""
    compiled = CompiledRules()
    for sid, options in resources.items():
        group = groups.get(options.get("group", ""))
        if group is not None:
            compiled.node_affinity[sid] = NodeAffinity(config.parse_node_list(group.get("nodes", "")),
                                                       group.get("restricted") == "1")
    return compiled


def group_nofailback(options: dict[str, str], groups: dict[str, dict[str, str]]) -> bool:
    """A resource whose HA group has `nofailback` stays where it is: PVE 8 reads the group when it
    places the resource, PVE 9 turns it into the resource's `failback 0` when it migrates groups."""
    return (groups.get(options.get("group", "")) or {}).get("nofailback") == "1"


def rule_errors(rule: Section, rules: list[Section], cluster_nodes: list[str]) -> list[str]:
    """Why a rule cannot be used (it is then ignored, not deleted), as PVE's checks word it."""
    members = set(filter(None, rule.options.get("resources", "").split(",")))
    errors = []
    if rule.type == "node-affinity":
        for other in rules:
            if other is rule or other.type != "node-affinity" or other.options.get("disable") == "1":
                continue
            shared = members & set(other.options.get("resources", "").split(","))
            if shared and rules.index(other) < rules.index(rule):
                errors += [f"resource '{sid}' is already used in another node affinity rule" for sid in sorted(shared)]
    elif len(members) < 2:
        errors.append("rule is ineffective as there are less than two resources")
    elif rule.options.get("affinity") == "negative" and len(members) > len(cluster_nodes):
        errors.append("rule defines more resources than available nodes")
    return errors


def from_rules(rules: list[Section], cluster_nodes: list[str]) -> CompiledRules:
    """PVE 9: enabled, feasible rules; positive resource-affinity rules sharing a resource are merged."""
    compiled = CompiledRules()
    for rule in rules:
        if rule.options.get("disable") == "1":
            continue
        errors = rule_errors(rule, rules, cluster_nodes)
        if errors:
            compiled.errors[rule.id] = {"resources": errors}
            continue
        members = [sid for sid in rule.options.get("resources", "").split(",") if sid]
        if rule.type == "node-affinity":
            affinity = NodeAffinity(config.parse_node_list(rule.options.get("nodes", "")),
                                    rule.options.get("strict") == "1")
            for sid in members:
                compiled.node_affinity[sid] = affinity
        else:
            relation = compiled.together if rule.options.get("affinity") == "positive" else compiled.apart
            for sid in members:
                relation.setdefault(sid, set()).update(set(members) - {sid})
    merge_positive(compiled.together)
    for sid, mates in compiled.together.items():  # members of a positive rule inherit its negative relations
        for mate in mates:
            compiled.apart.setdefault(sid, set()).update(compiled.apart.get(mate, set()))
    for sid, others in list(compiled.apart.items()):  # PVE's implicit negative rules hold both ways
        for other in others:
            compiled.apart.setdefault(other, set()).add(sid)
    for sid, mates in compiled.together.items():  # a positive rule's resources share a member's node affinity
        shared = next((compiled.node_affinity[m] for m in sorted({sid, *mates}) if m in compiled.node_affinity),
                      None)
        if shared is not None:
            compiled.node_affinity.setdefault(sid, shared)
    return compiled


def merge_positive(together: dict[str, set[str]]) -> None:
    changed = True
    while changed:
        changed = False
        for sid, mates in together.items():
            closure = set(mates)
            for mate in mates:
                closure |= together.get(mate, set())
            closure.discard(sid)
            if closure != mates:
                together[sid] = closure
                changed = True


def compile_rules(resources: dict[str, dict[str, str]], pve_major: int, cluster_nodes: list[str]) -> CompiledRules:
    if pve_major >= 9:
        return from_rules(config.rules(), cluster_nodes)
    return from_groups(resources, config.groups())
