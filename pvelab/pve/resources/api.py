"""/cluster/resources and /cluster/nextid: what the cluster holds, seen from any node.

PVE fills /cluster/resources from the status every node's pvestatd broadcasts through pmxcfs every
10 s. The twin asks each online peer's own API instead (with a ticket signed by the cluster key, as
any node's is good on every node): the same figures, without the broadcast's lag."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.pve import members
from pvelab.pve.access import guard as access
from pvelab.pve.access import store as access_store
from pvelab.pve.api import auth, tasks
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.apiclient import ApiError, PinnedClient
from pvelab.pve.cluster.api import node_memory, node_rootfs, node_uptime
from pvelab.pve.guests import api as guests_api
from pvelab.pve.guests import lxc_api
from pvelab.pve.guests import store as guest_store
from pvelab.pve.ha import config as ha_config
from pvelab.pve.ha import redirect
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.api import status_entry

PEER_TIMEOUT = 3.0
VMLIST = Path("/etc/pve/.vmlist")


def peer_get(address: str, path: str) -> Any:
    client = PinnedClient(address, None, timeout=PEER_TIMEOUT)  # node to node inside the cluster
    client.ticket = auth.make_ticket("root@pam")
    return client.request("GET", path)


def node_figures() -> dict[str, Any]:
    """This node's own line of figures, as its pvestatd would report them."""
    mem, disk = node_memory(), node_rootfs()
    return {"status": "online", "uptime": node_uptime(), "cpu": 0.0, "maxcpu": os.cpu_count() or 1,
            "mem": mem["used"], "maxmem": mem["total"], "disk": disk["used"], "maxdisk": disk["total"], "level": ""}


def per_node(ctx: Context, sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{node: {"online": bool, "node": figures or None, "storage": {id: status} or None,
    "qemu"/"lxc": {vmid: status} or None}}; None where a node did not answer."""
    nodelist = members.read().get("nodelist") or {ctx.node: {"online": 1}}
    out: dict[str, dict[str, Any]] = {}
    for name, info in sorted(nodelist.items()):
        online = bool(info.get("online")) or name == ctx.node
        entry: dict[str, Any] = {"online": online, "node": None, "storage": None, "qemu": None, "lxc": None}
        if name == ctx.node:
            entry["node"] = node_figures()
            entry["storage"] = {sid: status_entry(sid, opts) for sid, opts in sections.items()}
            entry["qemu"] = {vm["vmid"]: vm for vm in guests_api.vm_index(ctx, {})}
            entry["lxc"] = {ct["vmid"]: ct for ct in lxc_api.ct_index(ctx, {})}
        elif online:
            try:
                status = peer_get(info["ip"], f"/nodes/{name}/status")
                entry["node"] = {"status": "online", "uptime": status.get("uptime", 0), "cpu": status.get("cpu", 0),
                                 "maxcpu": status["cpuinfo"]["cpus"], "mem": status["memory"]["used"],
                                 "maxmem": status["memory"]["total"], "disk": status["rootfs"]["used"],
                                 "maxdisk": status["rootfs"]["total"], "level": ""}
                entry["storage"] = {s["storage"]: s for s in peer_get(info["ip"], f"/nodes/{name}/storage")}
                entry["qemu"] = {vm["vmid"]: vm for vm in peer_get(info["ip"], f"/nodes/{name}/qemu")}
                entry["lxc"] = {ct["vmid"]: ct for ct in peer_get(info["ip"], f"/nodes/{name}/lxc")}
            except (ApiError, OSError, KeyError, ValueError):
                pass  # the peer is in the membership but does not answer: its figures are unknown
        out[name] = entry
    return out


@route("GET /cluster/resources")
def resources(ctx: Context, params: dict[str, Any]) -> Any:
    kind = params.get("type")
    sections = storage_config.read()
    nodes = per_node(ctx, sections)
    out: list[dict[str, Any]] = []
    if kind in (None, "node"):
        for name, seen in nodes.items():
            entry: dict[str, Any] = {"id": f"node/{name}", "node": name, "type": "node",
                                     "status": "unknown" if seen["online"] else "offline"}
            if seen["node"]:
                entry.update(seen["node"])
            out.append(entry)
    if kind in (None, "vm"):
        out += guest_entries(nodes)
    if kind in (None, "storage"):
        for sid, options in sections.items():
            for name, seen in nodes.items():
                if not storage_config.is_enabled(options) or not storage_config.available_on(options, name):
                    continue
                entry = {"id": f"storage/{name}/{sid}", "storage": sid, "node": name, "type": "storage",
                         "plugintype": options["type"], "status": "unknown",
                         "shared": int(storage_config.is_shared(options)),
                         "content": ",".join(storage_config.content_of(options))}
                status = (seen["storage"] or {}).get(sid)
                if status and status.get("active"):
                    entry.update(status="available", disk=int(status["used"]), maxdisk=int(status["total"]))
                out.append(entry)
    if kind is None:
        out += [{"id": f"pool/{pool}", "pool": pool, "type": "pool"} for pool in sorted(access_store.read().pools)]
    return visible_to(ctx.caller.name, out)


NODE_FIGURES = ("cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk", "uptime")


def visible_to(who: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What PVE lists to a caller: every node (its figures only with Sys.Audit there), guests with
    VM.Audit (their `pool` only with Pool.Audit on it), storages with Datastore.Audit, pools with
    Pool.Audit."""
    may = access.checker_for(who)
    shown = (shown_entry(entry, may) for entry in entries)
    return [entry for entry in shown if entry is not None]


def shown_entry(entry: dict[str, Any], may: Callable[[str, list[str]], bool]) -> dict[str, Any] | None:
    kind = entry["type"]
    if kind == "node" and not may(f"/nodes/{entry['node']}", ["Sys.Audit"]):
        return {k: v for k, v in entry.items() if k not in NODE_FIGURES}
    if kind in ("qemu", "lxc"):
        if not may(f"/vms/{entry['vmid']}", ["VM.Audit"]):
            return None
        if entry.get("pool") and not may(f"/pool/{entry['pool']}", ["Pool.Audit"]):
            return {k: v for k, v in entry.items() if k != "pool"}
    if kind == "storage" and not may(f"/storage/{entry['storage']}", ["Datastore.Audit"]):
        return None
    if kind == "pool" and not may(f"/pool/{entry['pool']}", ["Pool.Audit"]):
        return None
    return entry


def guest_entries(nodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A line per guest of the cluster (pmxcfs's .vmlist); a guest whose node does not answer is
    `unknown`, with what its config says, as PVE lists guests of a node it has no status from."""
    out = []
    ha_services = ha_config.manager_status().get("service_status") or {}
    ha_resources = ha_config.resources()
    pools = access_store.read().vms
    for vmid, info in sorted(guest_store.vmlist().items()):
        kind, node = info.get("type", "qemu"), info["node"]
        entry: dict[str, Any] = {"id": f"{kind}/{vmid}", "type": kind, "vmid": vmid, "node": node,
                                 "template": 0, "status": "unknown"}
        if vmid in pools:
            entry["pool"] = pools[vmid]
        hastate = redirect.hastate(f"{'vm' if kind == 'qemu' else 'ct'}:{vmid}", ha_services, ha_resources)
        if hastate is not None:
            entry["hastate"] = hastate
        seen = ((nodes.get(node) or {}).get(kind) or {}).get(vmid)
        if seen is not None:
            entry.update({k: seen[k] for k in ("status", "name", "maxmem", "maxdisk", "mem", "disk", "cpu",
                                               "uptime", "netin", "netout", "diskread", "diskwrite", "lock", "tags")
                          if k in seen})
            entry["maxcpu"] = seen.get("cpus", 1)
        else:
            with contextlib.suppress(guest_store.GuestError):
                options = guest_store.load(node, vmid, kind).main.options
                entry["name"] = options.get("name" if kind == "qemu" else "hostname", f"VM {vmid}")
        out.append(entry)
    return out


def guest_ids() -> set[int]:
    """Every VMID in the cluster, from pmxcfs's .vmlist (as PVE's get_vmlist reads it)."""
    try:
        return {int(vmid) for vmid in json.loads(VMLIST.read_text()).get("ids", {})}
    except (OSError, ValueError):
        return set()


@route("GET /cluster/nextid")
def nextid(ctx: Context, params: dict[str, Any]) -> Any:
    taken = guest_ids()
    if params.get("vmid"):
        if params["vmid"] in taken:
            raise ApiException(400, "Parameter verification failed.", {"vmid": f"VM {params['vmid']} already exists"})
        return params["vmid"]
    return next(vmid for vmid in range(100, 1_000_000) if vmid not in taken)


@route("GET /cluster/tasks")
def cluster_tasks(ctx: Context, params: dict[str, Any]) -> Any:
    """Recent tasks of every node that answers (PVE keeps them in a cluster-wide task list)."""
    nodelist = members.read().get("nodelist") or {ctx.node: {"online": 1}}
    found = list(tasks.recent(ctx.node))
    for name, info in sorted(nodelist.items()):
        if name != ctx.node and info.get("online"):
            with contextlib.suppress(ApiError, OSError, ValueError):
                found += peer_get(info["ip"], f"/nodes/{name}/tasks")
    found.sort(key=lambda t: t["starttime"], reverse=True)
    if not access.allowed(ctx.caller.name, "/", ["Sys.Audit"]):  # others' tasks need Sys.Audit on /
        found = [t for t in found if t.get("user") == ctx.caller.name]
    return found
