"""What `qm` and `pct` share for snapshots: the calls behind snapshot|rollback|delsnapshot, and
listsnapshot's tree as pve-guest-common's print_snapshot_tree draws it."""

from __future__ import annotations

import time
from typing import Any

from pvelab.pve.api import direct

TASKS = {"snapshot": ("POST", "/snapshot"), "rollback": ("POST", "/snapshot/{snapname}/rollback"),
         "delsnapshot": ("DELETE", "/snapshot/{snapname}")}


def run_task(base: str, command: str, args: list[str], options: dict[str, str]) -> int:
    """`qm|pct snapshot|rollback|delsnapshot VMID SNAPNAME [OPTIONS]`: the task, waited for."""
    vmid, snapname = args
    method, path = TASKS[command]
    params = {**options, **({"snapname": snapname} if command == "snapshot" else {})}
    return direct.run_task(method, f"{base}/{vmid}{path.format(snapname=snapname)}", params)


def print_tree(snapshots: list[dict[str, Any]]) -> None:
    """pve-guest-common's print_snapshot_tree: children under their parent, oldest first, `current` last."""
    by_name = {s["name"]: dict(s) for s in snapshots}
    roots: list[str] = []
    for item in snapshots:
        parent = item.get("parent")
        if parent and parent in by_name:
            by_name[parent].setdefault("children", []).append(item["name"])
        else:
            roots.append(item["name"])

    def when(name: str) -> tuple[int, int]:  # `current` has no snaptime: it sorts last
        snaptime = by_name[name].get("snaptime")
        return (1, 0) if snaptime is None else (0, int(snaptime))

    def show(prefix: str, name: str) -> None:
        item = by_name[name]
        description = (item.get("description") or "no-description").split("\n")[0]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["snaptime"])) \
            if item.get("snaptime") is not None else ""
        width = max(30 - len(prefix), 0)
        print(f"{prefix} {name:<{width}} {stamp:<23} {description}")
        for child in sorted(item.get("children", []), key=when):
            show(f" {prefix}", child)

    for root in sorted(roots, key=when):
        show("`->", root)

