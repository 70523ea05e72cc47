"""Hyper-converged Ceph through PVE's API (/nodes/{node}/ceph, /cluster/ceph): what the pve_ceph*
modules compare, create and remove, and how they wait — a monitor until it is in the quorum, an OSD
until it is up and in, a pool until its placement groups are active+clean. Every refusal comes
before check mode returns."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_poll import poll

POLL = 1.0
POOL_SETTINGS = ("size", "min_size", "pg_num", "pg_autoscale_mode", "application")


def not_initialised(exc: PveError) -> bool:
    return "configuration not initialized" in str(exc)


def no_monitor(exc: PveError) -> bool:
    return "rados_connect failed" in str(exc)


def init_hint(node: str) -> str:
    return f"Ceph is not initialised on node '{node}' — run pve_ceph (pveceph init) first"


def global_section(text: str) -> dict[str, str]:
    """The [global] keys of a ceph.conf (spaces in keys read as underscores, as Ceph reads them)."""
    section, out = "", {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]").strip()
        elif section == "global" and "=" in stripped and not stripped.startswith(("#", ";")):
            key, value = stripped.split("=", 1)
            out[re.sub(r"[ _]+", "_", key.strip())] = value.strip()
    return out


# -- init ----------------------------------------------------------------------------------------
def ensure_init(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api, node = PveApi.from_params(p), p["node"]
    try:
        current: dict[str, str] | None = global_section(api.get(f"/nodes/{node}/ceph/cfg/raw"))
    except PveError as exc:
        if not not_initialised(exc):
            raise
        current = None
    wanted = {}
    if p.get("network"):
        wanted = {"public_network": p["network"], "cluster_network": p.get("cluster_network") or p["network"]}
    elif p.get("cluster_network"):
        raise PveError("cluster_network needs network (the public network) — give both, or network alone")
    before = {k: current.get(k) for k in wanted} if current is not None else {}
    if current is not None and all(current.get(k) == v for k, v in wanted.items()):
        return {"changed": False, "node": node, "config": current}
    result = {"changed": True, "node": node,
              "diff": {"before": {"initialised": current is not None, **before},
                       "after": {"initialised": True, **wanted}}}
    if check_mode:
        return result
    api.post(f"/nodes/{node}/ceph/init", network=p.get("network"), **{"cluster-network": p.get("cluster_network")},
             size=p.get("size"), min_size=p.get("min_size"))
    return {**result, "config": global_section(api.get(f"/nodes/{node}/ceph/cfg/raw"))}


# -- monitors and managers -------------------------------------------------------------------------
def ceph_list(api: PveApi, node: str, path: str, check_mode: bool = False) -> list[dict[str, Any]]:
    """A Ceph list (mon, mgr, pool); empty before the first monitor. Before init it is refused with the
    fix, except in check mode, where an earlier task would have initialised Ceph: nothing exists yet."""
    try:
        return list(api.get(f"/nodes/{node}/ceph/{path}"))
    except PveError as exc:
        if not_initialised(exc) and not check_mode:
            raise PveError(init_hint(node)) from exc
        if no_monitor(exc) or not_initialised(exc):
            return []
        raise


def daemon_list(api: PveApi, node: str, kind: str, check_mode: bool = False) -> list[dict[str, Any]]:
    return ceph_list(api, node, kind, check_mode)


def ensure_daemon(p: dict[str, Any], check_mode: bool, kind: str) -> dict[str, Any]:
    """A monitor (kind mon) or manager (mgr) on p['node'] with id p['id'] (default: the node's name)."""
    api, node = PveApi.from_params(p), p["node"]
    ident = p.get("id") or node
    listed = {d["name"]: d for d in daemon_list(api, node, kind, check_mode)}
    present = ident in listed
    result: dict[str, Any] = {"changed": False, "node": node, "id": ident}
    if (p["state"] == "present") == present:
        if present and kind == "mon" and p["state"] == "present":
            wait_mon_quorum(api, node, ident, p["wait_timeout"])
        return result
    if p["state"] == "absent":
        if kind == "mon" and len(listed) == 1:
            raise PveError(f"can't remove last monitor '{ident}' — a cluster needs one; pveceph purge removes Ceph")
        result.update(changed=True, diff={"before": {kind: ident}, "after": {}})
        if not check_mode:
            upid = api.delete(f"/nodes/{node}/ceph/{kind}/{ident}")
            result["log"] = api.wait_for_task(node, upid, p["wait_timeout"])
        return result
    result.update(changed=True, diff={"before": {}, "after": {kind: ident}})
    if check_mode:
        return result
    key = "monid" if kind == "mon" else "id"
    extra = {"mon-address": p.get("address")} if kind == "mon" else {}
    upid = api.post(f"/nodes/{node}/ceph/{kind}/{ident}", **extra)
    result["log"] = api.wait_for_task(node, upid, p["wait_timeout"])
    if kind == "mon":
        wait_mon_quorum(api, node, ident, p["wait_timeout"])
    else:
        wait_for(lambda: any(m["name"] == ident and m["state"] in ("active", "standby")
                             for m in daemon_list(api, node, "mgr")),
                 p["wait_timeout"], f"manager '{ident}' to be active or standby")
    result[key] = ident
    return result


def wait_for(check: Any, timeout: float, what: str) -> None:
    def probe() -> bool | None:
        try:
            return True if check() else None
        except PveError:
            return None  # the cluster is busy (an election): ask again
    if poll(probe, timeout, POLL) is None:
        raise PveError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_mon_quorum(api: PveApi, node: str, ident: str, timeout: float) -> None:
    wait_for(lambda: any(m["name"] == ident and m.get("quorum") for m in daemon_list(api, node, "mon")),
             timeout, f"monitor '{ident}' to join the quorum")


# -- OSDs ----------------------------------------------------------------------------------------
def osd_leaves(tree: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "osd":
            found.append(node)
        for child in node.get("children", []):
            walk(child)
    walk(tree.get("root", {}))
    return found


def disk_entry(api: PveApi, node: str, dev: str) -> dict[str, Any]:
    path = dev if dev.startswith("/dev/") else f"/dev/{dev}"
    for disk in api.get(f"/nodes/{node}/disks/list"):
        if disk["devpath"] == path:
            return dict(disk)
    names = ", ".join(d["devpath"] for d in api.get(f"/nodes/{node}/disks/list")) or "none"
    raise PveError(f"node '{node}' has no disk '{path}' (its disks: {names})")


def ensure_osd(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api, node = PveApi.from_params(p), p["node"]
    daemon_list(api, node, "mon", check_mode)  # refuses before init, with the fix
    disk = disk_entry(api, node, p["dev"])
    osdid = int(disk.get("osdid", -1))
    result: dict[str, Any] = {"changed": False, "node": node, "dev": disk["devpath"], "osdid": osdid}
    if p["state"] == "present":
        if osdid >= 0:
            wait_osd(api, node, osdid, p["wait_timeout"])
            return result
        if disk.get("used"):
            raise PveError(f"device '{disk['devpath']}' on node '{node}' is already in use ({disk['used']}) — "
                           "wipe it first (e.g. pveceph osd destroy --cleanup, or wipefs) if its data may go")
        result.update(changed=True, diff={"before": {}, "after": {"osd_on": disk["devpath"]}})
        if check_mode:
            return result
        upid = api.post(f"/nodes/{node}/ceph/osd", dev=disk["devpath"],
                        **{"crush-device-class": p.get("crush_device_class")})
        result["log"] = api.wait_for_task(node, upid, p["wait_timeout"])
        osdid = int(disk_entry(api, node, p["dev"]).get("osdid", -1))
        wait_osd(api, node, osdid, p["wait_timeout"])
        return {**result, "osdid": osdid}
    if osdid < 0:
        return result
    result.update(changed=True, diff={"before": {"osd_on": disk["devpath"], "osdid": osdid}, "after": {}})
    if check_mode:
        return result
    api.post(f"/nodes/{node}/ceph/osd/{osdid}/out")
    api.wait_for_task(node, api.post(f"/nodes/{node}/ceph/stop", service=f"osd.{osdid}"), p["wait_timeout"])
    wait_for(lambda: all(o["status"] == "down" for o in osd_leaves(api.get(f"/nodes/{node}/ceph/osd"))
                         if o["id"] == osdid), p["wait_timeout"], f"osd.{osdid} to be down")
    upid = api.delete(f"/nodes/{node}/ceph/osd/{osdid}", cleanup=1)
    result["log"] = api.wait_for_task(node, upid, p["wait_timeout"])
    return result


def wait_osd(api: PveApi, node: str, osdid: int, timeout: float) -> None:
    wait_for(lambda: any(o["id"] == osdid and o["status"] == "up" and o["in"]
                         for o in osd_leaves(api.get(f"/nodes/{node}/ceph/osd"))),
             timeout, f"osd.{osdid} on node '{node}' to be up and in")


# -- pools ---------------------------------------------------------------------------------------
def pool_settings(p: dict[str, Any]) -> dict[str, Any]:
    return {k: p[k] for k in POOL_SETTINGS if p.get(k) is not None}


def current_pool(entry: dict[str, Any]) -> dict[str, Any]:
    apps = list((entry.get("application_metadata") or {}).keys())
    return {"size": entry["size"], "min_size": entry["min_size"], "pg_num": entry["pg_num"],
            "pg_autoscale_mode": entry.get("pg_autoscale_mode"), "application": apps[0] if apps else None}


def ensure_pool(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api, node, name = PveApi.from_params(p), p["node"], p["name"]
    wanted = pool_settings(p)
    size, min_size = wanted.get("size", 3), wanted.get("min_size", 2)
    if p["state"] == "present" and min_size > size:
        raise PveError(f"min_size {min_size} is larger than size {size}: a pool keeps at most size copies — "
                       "lower min_size (a 3-copy pool usually has min_size 2)")
    pools = {e["pool_name"]: e for e in ceph_list(api, node, "pool", check_mode)}
    storages = {s["storage"]: s for s in api.get("/storage")}
    result: dict[str, Any] = {"changed": False, "node": node, "name": name}
    if p["state"] == "absent":
        if name not in pools:
            return result
        result.update(changed=True, diff={"before": current_pool(pools[name]), "after": {}})
        if not check_mode:
            upid = api.delete(f"/nodes/{node}/ceph/pool/{name}", remove_storages=int(bool(p.get("add_storages"))))
            result["log"] = api.wait_for_task(node, upid, p["wait_timeout"])
        return result
    if name in pools:
        before = current_pool(pools[name])
        changes = {k: v for k, v in wanted.items() if before.get(k) != v}
        need_storage = bool(p.get("add_storages")) and name not in storages
        if not changes and not need_storage:
            wait_clean(api, node, p["wait_timeout"])
            return {**result, "pool": before}
        if need_storage:
            raise PveError(f"pool '{name}' exists but storage '{name}' does not — add it with pve_storage "
                           f"(type rbd, pool {name}); pveceph only adds it when it creates the pool")
        result.update(changed=True, diff={"before": {k: before.get(k) for k in changes}, "after": changes})
        if not check_mode:
            upid = api.put(f"/nodes/{node}/ceph/pool/{name}", **changes)
            result["log"] = api.wait_for_task(node, upid, p["wait_timeout"])
            wait_clean(api, node, p["wait_timeout"])
        return {**result, "pool": {**before, **changes}}
    if p.get("add_storages") and name in storages:
        raise PveError(f"storage '{name}' already exists — choose another pool name, or add_storages: false")
    result.update(changed=True, diff={"before": {}, "after": {"pool": name, **wanted,
                                                              "storage": name if p.get("add_storages") else None}})
    if check_mode:
        return result
    upid = api.post(f"/nodes/{node}/ceph/pool", name=name, add_storages=int(bool(p.get("add_storages"))), **wanted)
    result["log"] = api.wait_for_task(node, upid, p["wait_timeout"])
    failed = [line for line in result["log"] if line.startswith("Could not set")]
    if failed:
        raise PveError(f"pool '{name}' was created, but: {failed[0]} — see the log", result)
    wait_clean(api, node, p["wait_timeout"])
    return result


def pg_states(status: dict[str, Any]) -> dict[str, int]:
    return {s["state_name"]: s["count"] for s in status.get("pgmap", {}).get("pgs_by_state", [])}


def wait_clean(api: PveApi, node: str, timeout: float) -> None:
    def clean() -> bool:
        states = pg_states(api.get(f"/nodes/{node}/ceph/status"))
        return all(name == "active+clean" for name in states)
    wait_for(clean, timeout, "every placement group to be active+clean")


# -- facts ---------------------------------------------------------------------------------------
def ceph_info(p: dict[str, Any], _check_mode: bool) -> dict[str, Any]:
    """What a check or a drill looks at: health and its checks, monitors, OSDs, pools, PG states."""
    api, node = PveApi.from_params(p), p["node"]
    try:
        status = api.get(f"/nodes/{node}/ceph/status")
    except PveError as exc:
        if not_initialised(exc) or no_monitor(exc):
            return {"changed": False, "initialised": not not_initialised(exc), "health": None}
        raise
    mons = daemon_list(api, node, "mon")
    osds = osd_leaves(api.get(f"/nodes/{node}/ceph/osd"))
    pools = api.get(f"/nodes/{node}/ceph/pool")
    health = status.get("health", {})
    pgmap = status.get("pgmap", {})
    return {
        "changed": False, "initialised": True, "fsid": status.get("fsid"),
        "health": health.get("status"),
        "checks": {k: v.get("summary", {}).get("message", "") for k, v in (health.get("checks") or {}).items()},
        "mutes": [m.get("code") for m in health.get("mutes", [])],
        "mons": {m["name"]: {"quorum": bool(m.get("quorum")), "addr": m.get("addr")} for m in mons},
        "quorum": [m["name"] for m in mons if m.get("quorum")],
        "osds": {f"osd.{o['id']}": {"host": o.get("host"), "up": o["status"] == "up", "in": bool(o.get("in"))}
                 for o in osds},
        "pools": {e["pool_name"]: {"size": e["size"], "min_size": e["min_size"], "pg_num": e["pg_num"]}
                  for e in pools},
        "pgs": pg_states(status),
        "degraded_objects": int(pgmap.get("degraded_objects", 0)),
        "degraded_ratio": float(pgmap.get("degraded_ratio", 0.0)),
    }
