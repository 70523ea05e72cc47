"""A node's network interfaces through its API (/nodes/{node}/network): what the pve_network module
compares, creates, changes and removes, and the reload that applies it (PVE's "Apply Configuration").
Edits on PVE wait in /etc/network/interfaces.new until the reload; the module reloads after its own
change unless told not to. Every refusal comes before check mode returns."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

# what the module sets, as the API names it; compared as PVE lists it
FIELDS = ("cidr", "cidr6", "gateway", "gateway6", "bridge_ports", "bridge_vlan_aware", "bridge_vids", "mtu",
          "autostart", "comments", "vlan-raw-device", "vlan-id", "slaves", "bond_mode")
OPTION_OF = {"vlan-raw-device": "vlan_raw_device", "vlan-id": "vlan_id"}
RELOAD_TIMEOUT = 120


def state_of(entry: dict[str, Any] | None) -> dict[str, Any]:
    """An interface as the module compares it: the fields it manages, as PVE lists them."""
    if entry is None:
        return {}
    state: dict[str, Any] = {"type": entry.get("type")}
    for key in FIELDS:
        value = entry.get(key)
        if value in (None, ""):
            continue
        if key in ("bridge_ports", "slaves"):
            value = sorted(str(value).split())
        elif key in ("autostart", "bridge_vlan_aware", "mtu", "vlan-id"):
            value = int(value)
        elif key == "comments":
            value = str(value).rstrip("\n")
        state[key] = value
    state.setdefault("autostart", 0)
    return state


def wanted_state(p: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    after: dict[str, Any] = dict(before) if before else {"type": p["type"], "autostart": 0}
    after["type"] = p["type"]
    for key in FIELDS:
        value = p.get(OPTION_OF.get(key, key))
        if value is None:
            continue
        if key in ("bridge_ports", "slaves"):
            value = sorted(value)
            if not value:
                after.pop(key, None)
                continue
        elif isinstance(value, bool):
            value = int(value)
        elif key == "comments":
            value = value.rstrip("\n")
        after[key] = value
    return after


def as_params(state: dict[str, Any]) -> dict[str, Any]:
    params = {k: (" ".join(v) if isinstance(v, list) else v) for k, v in state.items()}
    if "comments" in params:
        params["comments"] = params["comments"] + "\n"
    return params


def ensure_network(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    node, iface = p["node"], p["iface"]
    listed = {entry["iface"]: entry for entry in api.get(f"/nodes/{node}/network")}
    entry = listed.get(iface)
    before = state_of(entry)
    if p["state"] == "absent":
        after: dict[str, Any] = {}
    else:
        if entry is not None and entry.get("type") != p["type"]:
            raise PveError(f"interface '{iface}' on node '{node}' is a {entry.get('type')}, not a {p['type']}: "
                           "its type cannot change; remove it first (state=absent)")
        missing = [port for port in p.get("bridge_ports") or () if port not in listed]
        if missing:
            raise PveError(f"bridge '{iface}' cannot take port {', '.join(missing)}: node '{node}' has no such "
                           "interface (see GET /nodes/{node}/network)")
        used = {port: name for name, e in listed.items() if name != iface
                for port in str(e.get("bridge_ports") or "").split()}
        taken = [f"{port} (on {used[port]})" for port in p.get("bridge_ports") or () if port in used]
        if taken:
            raise PveError(f"bridge '{iface}' cannot take port {', '.join(taken)}: a port belongs to one bridge")
        after = wanted_state(p, before)
    result: dict[str, Any] = {"changed": before != after, "iface": iface, "node": node}
    if before == after:
        return result
    result["diff"] = {"before": before, "after": after}
    if check_mode:
        verb = "removed" if not after else ("created" if not before else "changed")
        return {**result, "msg": f"interface '{iface}' on node '{node}' would be {verb}"
                                 + (" and the network reloaded" if p["apply"] else "")}
    if not after:
        api.delete(f"/nodes/{node}/network/{iface}")
    elif not before:
        api.post(f"/nodes/{node}/network", iface=iface, **as_params(after))
    else:
        # the whole state, not only what changed: PVE's update makes an interface `manual` (no address)
        # unless it is given its address again
        removed = [key for key in before if key not in after]
        api.put(f"/nodes/{node}/network/{iface}", delete=",".join(removed) or None, **as_params(after))
    if p["apply"]:
        upid = api.put(f"/nodes/{node}/network")
        result["reload_log"] = api.wait_for_task(node, upid, RELOAD_TIMEOUT)
    return result
