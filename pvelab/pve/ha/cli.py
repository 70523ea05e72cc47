"""ha-manager: the HA CLI, over the same API handlers (status, config, add/set/remove, migrate/relocate,
crm-command, the groups of PVE 8 and the rules of PVE 9)."""

from __future__ import annotations

import json
import sys
from typing import Any

from pvelab.pve import members, version
from pvelab.pve.api import direct
from pvelab.pve.ha import config, status
from pvelab.pve.ha.api import resolve_sid
from pvelab.pve.ha.config import HaConfigError

USAGE = """USAGE: ha-manager <COMMAND> [ARGS] [OPTIONS]
       ha-manager add <sid> [OPTIONS]
       ha-manager config [OPTIONS]
       ha-manager crm-command migrate|relocate|stop|node-maintenance|disarm-ha|arm-ha ...
       ha-manager migrate <sid> <node>
       ha-manager relocate <sid> <node>
       ha-manager remove <sid> [OPTIONS]
       ha-manager set <sid> [OPTIONS]
       ha-manager groupadd|groupconfig|groupremove|groupset ...
       ha-manager rules add|config|list|remove|set ...
       ha-manager status [OPTIONS]
       ha-manager help [<extra-args>] [OPTIONS]"""
SKIPPED_KEYS = ("digest", "sid", "type", "errors", "group", "rule", "order")


def call(method: str, path: str, params: dict[str, Any]) -> Any:
    return direct.call(method, path, params)


def print_config(options: dict[str, str]) -> None:
    for sid, entry in sorted((e["sid"], e) for e in call("GET", "/cluster/ha/resources", options)):
        for field, message in (entry.get("errors") or {}).items():
            print(f"error: property '{field}' - {message}", file=sys.stderr)
        lines = [f"\t{k} {v}" for k, v in sorted(entry.items()) if k not in SKIPPED_KEYS or
                 (k == "group" and "errors" not in entry)]
        print("\n".join([sid, *lines, ""]))


def crm_command(args: list[str], options: dict[str, str]) -> int:
    sub, *rest = args
    if sub in ("migrate", "relocate"):
        sid, node = rest
        call("POST", f"/cluster/ha/resources/{resolve_sid(sid)}/{sub}", {"node": node})
    elif sub == "stop":
        sid, timeout = rest
        sid = resolve_sid(sid)
        if sid not in config.resources():
            raise HaConfigError(f"resource '{sid}' is not HA managed")
        config.queue_crm_command(f"stop {sid} {int(timeout)}")
    elif sub == "node-maintenance":
        action, node = rest
        if node not in (members.read().get("nodelist") or {}):
            raise HaConfigError(f"no such cluster node '{node}'")
        if action not in ("enable", "disable"):
            raise ValueError(action)
        config.queue_crm_command(f"{action}-node-maintenance {node}")
    elif sub == "disarm-ha":
        (mode,) = rest
        call("POST", "/cluster/ha/status/disarm-ha", {"resource-mode": mode})
    elif sub == "arm-ha" and not rest:
        call("POST", "/cluster/ha/status/arm-ha", {})
    else:
        raise ValueError(sub)
    return 0


def groups_command(command: str, args: list[str], options: dict[str, str]) -> int:
    if command == "groupconfig":
        for entry in call("GET", "/cluster/ha/groups", {}):
            lines = [f"\t{k} {v}" for k, v in sorted(entry.items()) if k not in ("digest", "group", "type")]
            print("\n".join([f"group: {entry['group']}", *lines, ""]))
        return 0
    (group,) = args
    method = {"groupadd": "POST", "groupset": "PUT", "groupremove": "DELETE"}[command]
    path = "/cluster/ha/groups" if command == "groupadd" else f"/cluster/ha/groups/{group}"
    call(method, path, {**options, **({"group": group} if command == "groupadd" else {})})
    return 0


def rules_command(args: list[str], options: dict[str, str]) -> int:
    sub, *rest = args
    if sub in ("list", "config"):
        fmt = options.pop("output-format", "text")
        rules = call("GET", "/cluster/ha/rules", options)
        if fmt.startswith("json"):
            print(json.dumps(rules, indent=4 if fmt == "json-pretty" else None, sort_keys=True))
        else:
            print_rules_table(rules, sub == "config")
    elif sub == "add":
        kind, rule = rest
        call("POST", "/cluster/ha/rules", {**options, "type": kind, "rule": rule})
    elif sub == "set":
        kind, rule = rest
        call("PUT", f"/cluster/ha/rules/{rule}", {**options, "type": kind})
    elif sub == "remove":
        (rule,) = rest
        call("DELETE", f"/cluster/ha/rules/{rule}", {})
    else:
        raise ValueError(sub)
    return 0


def print_rules_table(rules: list[dict[str, Any]], with_state: bool) -> None:
    """PVE's text formatter: a box table, one row per rule."""
    head = ["enabled", "state", "rule", "type", "resources", "comment"] if with_state else \
        ["rule", "type", "resources", "nodes", "affinity", "strict", "disable", "comment"]
    rows: list[list[str]] = []
    for rule in rules:
        cells = {**{k: str(v) for k, v in rule.items()}, "enabled": "0" if rule.get("disable") else "1",
                 "state": "ignored (conflicts)" if rule.get("errors") else "in use"}
        rows.append([cells.get(h, "") for h in head])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda left, mid, right: left + mid.join("─" * (w + 2) for w in widths) + right  # noqa: E731
    out = [line("┌", "┬", "┐"), "│" + "│".join(f" {h:<{w}} " for h, w in zip(head, widths, strict=True)) + "│",
           line("╞", "╪", "╡").replace("─", "═")]
    for n, row in enumerate(rows):
        out.append("│" + "│".join(f" {c:<{w}} " for c, w in zip(row, widths, strict=True)) + "│")
        if n < len(rows) - 1:
            out.append(line("├", "┼", "┤"))
    out.append(line("└", "┴", "┘"))
    print("\n".join(out))


def run(command: str, args: list[str], options: dict[str, str]) -> int:
    if command == "status":
        print("\n".join(status.status_lines(options.get("verbose") in ("1", "true"))))
        return 0
    if command == "config":
        print_config(options)
        return 0
    if command == "add":
        (sid,) = args
        call("POST", "/cluster/ha/resources", {**options, "sid": resolve_sid(sid, options.pop("type", None))})
        return 0
    if command == "set":
        (sid,) = args
        call("PUT", f"/cluster/ha/resources/{resolve_sid(sid)}", options)
        return 0
    if command == "remove":
        (sid,) = args
        call("DELETE", f"/cluster/ha/resources/{resolve_sid(sid)}", options)
        return 0
    if command in ("migrate", "relocate"):
        sid, node = args
        result = call("POST", f"/cluster/ha/resources/{resolve_sid(sid)}/{command}", {"node": node})
        return print_motion(result, command, node)
    if command == "crm-command":
        return crm_command(args, options)
    if command in ("groupadd", "groupconfig", "groupremove", "groupset"):
        return groups_command(command, args, options)
    if command == "rules" and version.major() != "8":
        return rules_command(args, options)
    raise ValueError(command)


def print_motion(result: Any, task: str, node: str) -> int:
    if not isinstance(result, dict):
        return 0
    for sid in result.get("comigrated-resources") or []:
        print(f"also {task} resource '{sid}' in positive affinity with resource '{result['sid']}'"
              f" to target node '{node}'")
    blocking = result.get("blocking-resources") or []
    if blocking:
        print(f"cannot {task} resource '{result['sid']}' to node '{node}':", file=sys.stderr)
        for item in blocking:
            print(f"- resource '{item['sid']}' on target node '{node}' in negative affinity with resource"
                  f" '{result['sid']}'", file=sys.stderr)
        return direct.ERROR_EXIT
    return 0


def main(argv: list[str] | None = None) -> int:
    return direct.cli_main(USAGE, run, (HaConfigError, OSError), argv)


if __name__ == "__main__":
    raise SystemExit(main())
