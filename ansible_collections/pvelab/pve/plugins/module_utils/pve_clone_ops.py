"""A clone of a VM or template through the API (POST /nodes/{node}/qemu/{vmid}/clone), waiting for the
task. A clone that exists already is left alone (PVE keeps no record of where a VM came from);
refusals (no source, a linked clone of a VM that is not a template) come before check mode."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_guest_ops import find, run_task

CLONE_OPTIONS = ("name", "description", "pool", "snapname", "storage", "format")


def ensure_clone(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    vmid, newid = p["vmid"], p["newid"]
    existing = find(api, newid)
    if existing is not None:
        return {"changed": False, "vmid": newid, "node": str(existing["node"]),
                "msg": f"VM {newid} exists already: left as it is"}
    source = find(api, vmid)
    if source is None or source.get("type") != "qemu":
        raise PveError(f"VM {vmid}, the clone's source, does not exist in the cluster")
    node = str(source["node"])
    config = api.get(f"/nodes/{node}/qemu/{vmid}/config")
    template = str(config.get("template", "0")) == "1"
    full = p["full"] if p.get("full") is not None else not template
    if not full and not template:
        raise PveError(f"a linked clone needs a template: VM {vmid} is not one (make it one with pve_guest "
                       "template: true, or clone it with full: true)")
    if not full and (p.get("storage") or p.get("format")):
        raise PveError("storage and format choose where a full copy goes: a linked clone stays on its template's "
                       "storage (set full: true, or leave them out)")
    target = p.get("target_node") or node
    params: dict[str, Any] = {"newid": newid, "full": int(full),
                              **{k: p[k] for k in CLONE_OPTIONS if p.get(k) is not None}}
    if target != node:
        params["target"] = target
    kind = "full" if full else "linked"
    result = {"changed": True, "vmid": newid, "node": target, "full": full,
              "diff": {"before": {}, "after": {"vmid": newid, "node": target, "clone_of": vmid, "kind": kind}}}
    if check_mode:
        return {**result, "msg": f"VM {newid} would be made on '{target}' as a {kind} clone of VM {vmid}"}
    return {**result, "task_log": run_task(api, node, f"/nodes/{node}/qemu/{vmid}/clone", p, **params)}
