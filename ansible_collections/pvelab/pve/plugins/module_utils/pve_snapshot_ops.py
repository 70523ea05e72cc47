"""A guest's snapshot through the API (/nodes/{node}/qemu|lxc/{vmid}/snapshot): made, its description
kept in step, removed, or rolled back to, waiting for each task. Refusals come before check mode."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_guest_ops import find, run_task

RESERVED = {"qemu": ("current", "pending"), "lxc": ("current", "vzdump")}  # names each API refuses, as written


def is_reserved(name: str, kind: str) -> bool:
    """Whether the guest's API refuses the name: as written, and qemu-server's 'pending' in any case."""
    return name in RESERVED[kind] or ("pending" in RESERVED[kind] and name.lower() == "pending")


def ensure_snapshot(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    vmid, name, state = p["vmid"], p["name"], p["state"]
    guest = find(api, vmid)
    if guest is None:
        raise PveError(f"guest {vmid} does not exist in the cluster - nothing to snapshot")
    node = str(guest["node"])
    base = f"/nodes/{node}/{guest['type']}/{vmid}/snapshot"
    listed = {s["name"]: s for s in api.get(base) if s["name"] != "current"}
    names = sorted(listed)
    result: dict[str, Any] = {"changed": False, "vmid": vmid, "node": node, "snapshots": names}
    if is_reserved(name, str(guest["type"])):
        raise PveError(f"snapshot name '{name}' is reserved by PVE - choose another")
    if p.get("vmstate") and guest["type"] == "lxc":
        raise PveError(f"guest {vmid} is a container, whose snapshots hold no RAM - vmstate is for VMs; leave it "
                       "unset")
    if state == "rollback":
        if name not in listed:
            raise PveError(f"guest {vmid} has no snapshot '{name}' to roll back to (it has: "
                           f"{', '.join(names) or 'none'})")
        if check_mode:
            return {**result, "changed": True, "msg": f"guest {vmid} would be rolled back to '{name}'"}
        log = run_task(api, node, f"{base}/{name}/rollback", p, **({"start": 1} if p.get("start") else {}))
        return {**result, "changed": True, "task_log": log}
    if state == "absent":
        if name not in listed:
            return result
        after = [n for n in names if n != name]
        diff = {"before": {"snapshots": names}, "after": {"snapshots": after}}
        changed = {**result, "changed": True, "snapshots": after, "diff": diff}
        if check_mode:
            return {**changed, "msg": f"snapshot '{name}' of guest {vmid} would be removed"}
        upid = api.delete(f"{base}/{name}", **({"force": 1} if p.get("force") else {}))
        return {**changed, "task_log": api.wait_for_task(node, upid, p["task_timeout"])}
    if name in listed:
        have = listed[name].get("description") or ""
        if p.get("description") is None or p["description"] == have:
            return result
        changed = {**result, "changed": True, "diff": {"before": {"description": have},
                                                       "after": {"description": p["description"]}}}
        if not check_mode:
            api.put(f"{base}/{name}/config", description=p["description"])
        return changed
    after = sorted([*names, name])
    diff = {"before": {"snapshots": names}, "after": {"snapshots": after}}
    changed = {**result, "changed": True, "snapshots": after, "diff": diff}
    if check_mode:
        return {**changed, "msg": f"snapshot '{name}' of guest {vmid} would be taken"
                                  + (" with its RAM" if p.get("vmstate") else "")}
    params: dict[str, Any] = {"snapname": name}
    if p.get("description") is not None:
        params["description"] = p["description"]
    if p.get("vmstate"):
        params["vmstate"] = 1
    return {**changed, "task_log": run_task(api, node, base, p, **params)}
