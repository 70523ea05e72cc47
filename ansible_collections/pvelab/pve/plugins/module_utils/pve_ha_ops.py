"""HA through the API (/cluster/ha): a resource and its requested state (pve_ha_resource), where its
guests may run (pve_ha_placement: rules on PVE 9, groups on PVE 8) and the read-only view (pve_ha_info).
Every refusal comes before check mode returns; waits poll the CRM's view, as `ha-manager status` does."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_poll import poll

SID = re.compile(r"^(vm|ct):([1-9][0-9]*)$")
DEFAULTS = {"state": "started", "max_restart": "1", "max_relocate": "1", "failback": "1"}
# The displayed state (`ha-manager status`) each requested state settles in.
SETTLED = {"started": "started", "stopped": "stopped", "disabled": "disabled", "ignored": "ignored"}
STATUS_POLL = 2.0


def parse_sid(sid: str) -> tuple[str, int]:
    m = SID.match(sid)
    if not m:
        raise PveError(f"'{sid}' is not an HA resource id: use vm:VMID or ct:VMID (e.g. vm:100)")
    return m.group(1), int(m.group(2))


def resources(api: PveApi) -> dict[str, dict[str, Any]]:
    """{sid: the raw entry (explicitly set keys, digest)}."""
    return {e["sid"]: e for e in api.get("/cluster/ha/resources")}


def guests(api: PveApi) -> dict[int, dict[str, Any]]:
    return {int(g["vmid"]): g for g in api.get("/cluster/resources", type="vm")}


def check_guest(api: PveApi, sid: str) -> None:
    kind, vmid = parse_sid(sid)
    guest = guests(api).get(vmid)
    wanted = "qemu" if kind == "vm" else "lxc"
    if guest is None:
        raise PveError(f"guest {vmid} does not exist in the cluster: create it before making '{sid}' an HA resource")
    if guest.get("type") != wanted:
        raise PveError(f"guest {vmid} is a {'VM' if guest.get('type') == 'qemu' else 'CT'}, so its HA resource "
                       f"id is '{'vm' if guest.get('type') == 'qemu' else 'ct'}:{vmid}', not '{sid}'")


# -- pve_ha_resource ----------------------------------------------------------------------------
def wanted_resource(p: dict[str, Any], major: int) -> dict[str, str]:
    out: dict[str, str] = {}
    if p.get("resource_state") is not None:
        out["state"] = p["resource_state"]
    for key in ("max_restart", "max_relocate", "comment"):
        if p.get(key) is not None:
            out[key] = str(p[key])
    if p.get("failback") is not None:
        if major < 9:
            raise PveError("failback is a resource option from PVE 9 on; on PVE 8 it belongs to the HA group: "
                           "use pve_ha_placement with failback: false")
        out["failback"] = str(int(p["failback"]))
    return out


def current_resource(entry: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in entry.items() if k in ("state", "max_restart", "max_relocate", "failback", "comment")}


def ensure_resource(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    sid = p["sid"]
    parse_sid(sid)
    entry = resources(api).get(sid)
    if p["state"] == "absent":
        if entry is None:
            return {"changed": False, "sid": sid}
        result = {"changed": True, "sid": sid, "diff": {"before": current_resource(entry), "after": {}}}
        if check_mode:
            return {**result, "msg": f"HA resource '{sid}' would be removed (the guest itself stays as it is)"}
        api.delete(f"/cluster/ha/resources/{sid}")
        return result
    want = wanted_resource(p, api.major_version())
    if entry is None:
        check_guest(api, sid)
        result = {"changed": True, "sid": sid, "config": want, "diff": {"before": {}, "after": want}}
        if check_mode:
            return {**result, "msg": f"HA resource '{sid}' would be added"}
        api.post("/cluster/ha/resources", sid=sid, **want)
        return {**result, "status": wait_settled(api, sid, want.get("state", "started"), p)}
    have = current_resource(entry)
    changes = {k: v for k, v in want.items() if {**DEFAULTS, **have}.get(k) != v}
    if changes.get("state") not in (None, "disabled") and service_state(api, sid) == "error":
        raise PveError(f"HA resource '{sid}' is in the error state: set resource_state: disabled first, fix the "
                       "guest, then ask for started again (PVE refuses anything else)")
    if not changes:
        return {"changed": False, "sid": sid, "config": have,
                "status": wait_settled(api, sid, {**DEFAULTS, **have}["state"], p) if not check_mode else None}
    after = {**have, **changes}
    result = {"changed": True, "sid": sid, "config": after, "diff": {"before": have, "after": after}}
    if check_mode:
        return {**result, "msg": f"HA resource '{sid}' would be updated ({', '.join(sorted(changes))})"}
    api.put(f"/cluster/ha/resources/{sid}", digest=entry.get("digest"), **changes)
    return {**result, "status": wait_settled(api, sid, after.get("state", "started"), p)}


def service_entry(api: PveApi, sid: str) -> dict[str, Any] | None:
    return next((e for e in api.get("/cluster/ha/status/current") if e.get("sid") == sid), None)


def service_state(api: PveApi, sid: str) -> str | None:
    entry = service_entry(api, sid)
    return None if entry is None else entry.get("state")


def wait_settled(api: PveApi, sid: str, requested: str, p: dict[str, Any]) -> str | None:
    """Wait until the CRM shows the requested state (the LRM started or stopped the guest)."""
    if not p.get("wait", True):
        return service_state(api, sid)
    goal = SETTLED[requested]
    seen: list[str | None] = [None]

    def settled() -> bool:
        seen[0] = service_state(api, sid)
        if seen[0] == "error":
            raise PveError(f"HA resource '{sid}' went into the error state: its guest failed to start on every node "
                           "tried (see `ha-manager status` and the pve-ha-lrm journal)", {"changed": True})
        return seen[0] == goal

    if poll(lambda: True if settled() else None, p.get("wait_timeout", 180), STATUS_POLL) is None:
        raise PveError(f"HA resource '{sid}' is '{seen[0]}', not '{goal}', after {p.get('wait_timeout', 180)} s: "
                       "are pve-ha-crm and pve-ha-lrm running and the cluster quorate? (`ha-manager status`)",
                       {"changed": True})
    return goal


# -- pve_ha_placement -----------------------------------------------------------------------------
def node_list(nodes: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in nodes:
        name, _sep, prio = str(item).partition(":")
        if prio and not prio.isdigit():
            raise PveError(f"'{item}' is not a node with a priority: use NODE or NODE:PRIORITY (e.g. pve1:2)")
        out[name] = int(prio) if prio else 0
    return out


def print_nodes(nodes: dict[str, int]) -> str:
    return ",".join(f"{n}:{p}" if p else n for n, p in sorted(nodes.items()))


def cluster_nodes(api: PveApi) -> list[str]:
    return sorted(e["name"] for e in api.get("/cluster/status") if e.get("type") == "node")


def ensure_placement(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    major = api.major_version()
    managed = resources(api)
    if p["state"] == "present":
        if not p.get("nodes"):
            raise PveError(f"placement '{p['name']}' needs nodes (NODE or NODE:PRIORITY; higher runs first)")
        unknown = sorted(set(node_list(p["nodes"])) - set(cluster_nodes(api)))
        if unknown:
            raise PveError(f"placement '{p['name']}' names node(s) {', '.join(unknown)}, which are not cluster nodes")
        unmanaged = [s for s in p.get("resources") or [] if s not in managed]
        if unmanaged:
            what = "is not an HA resource: add it" if len(unmanaged) == 1 else "are not HA resources: add them"
            raise PveError(f"{', '.join(unmanaged)} {what} with pve_ha_resource first")
    if major >= 9:
        return placement_as_rule(api, p, managed, check_mode)
    return placement_as_group(api, p, managed, check_mode)


def placement_as_rule(api: PveApi, p: dict[str, Any], managed: dict[str, dict[str, Any]],
                      check_mode: bool) -> dict[str, Any]:
    """PVE 9: a node-affinity rule; failback is each resource's own option."""
    name = p["name"]
    rule = next((r for r in api.get("/cluster/ha/rules") if r.get("rule") == name), None)
    if rule is not None and rule.get("type") != "node-affinity":
        raise PveError(f"HA rule '{name}' is a {rule.get('type')} rule, not a placement (node-affinity) rule")
    if p["state"] == "absent":
        if rule is None:
            return {"changed": False, "name": name, "kind": "rule"}
        before = rule_view(rule)
        result = {"changed": True, "name": name, "kind": "rule", "diff": {"before": before, "after": {}}}
        if check_mode:
            return {**result, "msg": f"HA rule '{name}' would be removed"}
        api.delete(f"/cluster/ha/rules/{name}")
        return result
    want = {"nodes": print_nodes(node_list(p["nodes"])), "resources": ",".join(sorted(p.get("resources") or [])),
            "strict": str(int(bool(p.get("strict"))))}
    if p.get("comment") is not None:
        want["comment"] = p["comment"]
    have = rule_view(rule) if rule is not None else {}
    changes = {k: v for k, v in want.items() if have.get(k, "0" if k == "strict" else None) != v}
    failback = [] if p.get("failback") is None else [
        s for s in p.get("resources") or [] if str(managed[s].get("failback", 1)) != str(int(p["failback"]))]
    if not changes and not failback:
        return {"changed": False, "name": name, "kind": "rule", "config": have}
    after = {**have, **want}
    result = {"changed": True, "name": name, "kind": "rule", "config": after,
              "diff": {"before": have, "after": after}}
    if check_mode:
        return {**result, "msg": f"HA rule '{name}' would be {'created' if rule is None else 'updated'}"}
    if rule is None:
        api.post("/cluster/ha/rules", type="node-affinity", rule=name, **want)
    elif changes:
        api.put(f"/cluster/ha/rules/{name}", type="node-affinity", digest=rule.get("digest"), **changes)
    for sid in failback:
        api.put(f"/cluster/ha/resources/{sid}", failback=int(p["failback"]))
    return result


def rule_view(rule: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in rule.items() if k in ("nodes", "resources", "strict", "comment")}


def placement_as_group(api: PveApi, p: dict[str, Any], managed: dict[str, dict[str, Any]],
                       check_mode: bool) -> dict[str, Any]:
    """PVE 8: an HA group (restricted = strict, nofailback = not failback), set as each resource's group."""
    name = p["name"]
    group = next((g for g in api.get("/cluster/ha/groups") if g.get("group") == name), None)
    members = sorted(s for s, e in managed.items() if e.get("group") == name)
    if p["state"] == "absent":
        if group is None:
            return {"changed": False, "name": name, "kind": "group"}
        result = {"changed": True, "name": name, "kind": "group",
                  "diff": {"before": {**group_view(group), "resources": ",".join(members)}, "after": {}}}
        if check_mode:
            unset = ", ".join(members) or "none"
            return {**result, "msg": f"HA group '{name}' would be removed (and unset on {unset})"}
        for sid in members:
            api.put(f"/cluster/ha/resources/{sid}", delete="group")
        api.delete(f"/cluster/ha/groups/{name}")
        return result
    want = {"nodes": print_nodes(node_list(p["nodes"])), "restricted": str(int(bool(p.get("strict")))),
            "nofailback": str(int(p.get("failback") is False))}
    if p.get("comment") is not None:
        want["comment"] = p["comment"]
    have = group_view(group) if group is not None else {}
    changes = {k: v for k, v in want.items() if have.get(k, "0" if k in ("restricted", "nofailback") else None) != v}
    wanted_members = sorted(p.get("resources") or [])
    join = [s for s in wanted_members if s not in members]
    leave = [s for s in members if s not in wanted_members]
    if not changes and not join and not leave:
        return {"changed": False, "name": name, "kind": "group", "config": {**have, "resources": ",".join(members)}}
    after = {**have, **want, "resources": ",".join(wanted_members)}
    result = {"changed": True, "name": name, "kind": "group", "config": after,
              "diff": {"before": {**have, "resources": ",".join(members)}, "after": after}}
    if check_mode:
        return {**result, "msg": f"HA group '{name}' would be {'created' if group is None else 'updated'}"}
    if group is None:
        api.post("/cluster/ha/groups", group=name, **want)
    elif changes:
        api.put(f"/cluster/ha/groups/{name}", digest=group.get("digest"), **changes)
    for sid in join:
        api.put(f"/cluster/ha/resources/{sid}", group=name)
    for sid in leave:
        api.put(f"/cluster/ha/resources/{sid}", delete="group")
    return result


def group_view(group: dict[str, Any]) -> dict[str, str]:
    nodes = print_nodes(node_list(str(group.get("nodes", "")).split(",")))
    return {"nodes": nodes, **{k: str(v) for k, v in group.items() if k in ("restricted", "nofailback", "comment")}}


# -- pve_ha_info ---------------------------------------------------------------------------------
def ha_info(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    major = api.major_version()
    current = api.get("/cluster/ha/status/current")
    services = {e["sid"]: {k: e[k] for k in ("node", "state", "crm_state", "request_state") if k in e}
                for e in current if e.get("type") == "service"}
    lrm = {e["node"]: e.get("status") for e in current if e.get("type") == "lrm"}
    master = next((e["node"] for e in current if e.get("type") == "master"), None)
    placement = api.get("/cluster/ha/rules") if major >= 9 else api.get("/cluster/ha/groups")
    manager = api.get("/cluster/ha/status/manager_status").get("manager_status") or {}
    return {"changed": False, "quorate": bool(next(e for e in current if e["type"] == "quorum")["quorate"]),
            "master": master, "lrm": lrm, "services": services, "nodes": manager.get("node_status") or {},
            "resources": {sid: current_resource(e) for sid, e in resources(api).items()},
            "placement": placement, "status_lines": [f"{e['type']} {e.get('status', '')}".rstrip() for e in current]}
