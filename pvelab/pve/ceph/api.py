"""/nodes/{node}/ceph/*, /cluster/ceph/* and /nodes/{node}/disks/list, as PVE serves them: reads
from the cluster (`ceph ... --format json`) in PVE's shapes; writes as PVE's tasks (cephcreatemon, ...)
or, for init, flags and in/out, directly."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pvelab.pve import certs, members
from pvelab.pve.api import tasks
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.ceph import daemons, pools, rados
from pvelab.pve.ceph.pool import PoolError
from pvelab.pve.ceph.tools import PVE_CONF, CephError
from pvelab.pve.refusal import Refusal

FLAGS = {
    "nobackfill": "Backfilling of PGs is suspended.",
    "nodeep-scrub": "Deep Scrubbing is disabled.",
    "nodown": "OSD failure reports are being ignored, such that the monitors will not mark OSDs down.",
    "noin": "OSDs that were previously marked out will not be marked back in when they start.",
    "noout": "OSDs will not automatically be marked out after the configured interval.",
    "norebalance": "Rebalancing of PGs is suspended.",
    "norecover": "Recovery of PGs is suspended.",
    "noscrub": "Scrubbing is disabled.",
    "notieragent": "Cache tiering activity is suspended.",
    "noup": "OSDs are not allowed to start.",
    "pause": "Pauses read and writes.",
}


def ceph_call(fn: Any) -> Any:
    """Run a handler's work; Ceph's and PVE's refusals become API errors (500, as PVE's die)."""
    try:
        return fn()
    except (CephError, PoolError) as exc:
        raise ApiException(500, str(exc)) from exc
    except Refusal as exc:
        raise ApiException(exc.status, str(exc)) from exc


def check_quorum() -> None:
    if not members.quorate():
        raise CephError("cluster not ready - no quorum?")


def cluster_ip(node: str) -> str:
    info = (members.read().get("nodelist") or {}).get(node)
    return str(info["ip"]) if info else certs.local_addresses()[0]


def flag(params: dict[str, Any], name: str) -> bool:
    return pools.truthy(params.get(name))


# -- index, init, status, config -------------------------------------------------------------------
@route("GET /nodes/{node}/ceph")
def ceph_index(_ctx: Context, _params: dict[str, Any]) -> list[dict[str, str]]:
    names = ("cfg", "cmd-safety", "crush", "fs", "init", "log", "mds", "mgr", "mon", "osd", "pool", "restart",
             "rules", "start", "status", "stop")
    return [{"name": n} for n in names]


@route("POST /nodes/{node}/ceph/init")
def ceph_init(_ctx: Context, params: dict[str, Any]) -> None:
    def work() -> None:
        check_quorum()
        daemons.init(params.get("network"), params.get("cluster-network"), int(params.get("size", 3)),
                     int(params.get("min_size", 2)), flag(params, "disable_cephx"))
    ceph_call(work)


def status_object() -> dict[str, Any]:
    """`ceph status` with its health replaced by `health detail`, as PVE::Ceph::Tools::ceph_cluster_status."""
    daemons.PATHS.check_inited()
    status = rados.command(["status"])
    status["health"] = rados.command(["health", "detail"])
    if "monmap" not in status:
        status["monmap"] = rados.command(["mon", "dump"])
    if "mgrmap" not in status:
        status["mgrmap"] = rados.command(["mgr", "dump"])
    return dict(status)


@route("GET /nodes/{node}/ceph/status")
def node_status(_ctx: Context, _params: dict[str, Any]) -> dict[str, Any]:
    return ceph_call(status_object)


@route("GET /cluster/ceph/status")
def cluster_status(_ctx: Context, _params: dict[str, Any]) -> dict[str, Any]:
    return ceph_call(status_object)


@route("GET /nodes/{node}/ceph/cfg/raw")
def cfg_raw(_ctx: Context, _params: dict[str, Any]) -> str:
    def work() -> str:
        daemons.PATHS.check_inited()
        return Path(PVE_CONF).read_text()
    return ceph_call(work)


@route("GET /nodes/{node}/ceph/rules")
def rules(_ctx: Context, _params: dict[str, Any]) -> list[dict[str, str]]:
    return ceph_call(lambda: [{"name": n} for n in rados.command(["osd", "crush", "rule", "ls"])])


# -- monitors and managers -------------------------------------------------------------------------
@route("GET /nodes/{node}/ceph/mon")
def mon_list(_ctx: Context, _params: dict[str, Any]) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        daemons.PATHS.check_inited()
        dump = rados.command(["mon", "dump"])
        quorum = set(rados.command(["quorum_status"]).get("quorum_names", []))
        meta = {m.get("name"): m for m in rados.command(["mon", "metadata"]) or []}
        out = []
        for m in dump.get("mons", []):
            name = m["name"]
            entry: dict[str, Any] = {"name": name, "addr": m.get("public_addr") or m.get("addr", ""),
                                     "rank": m.get("rank"), "quorum": name in quorum, "service": 1,
                                     "direxists": "1", "state": "running" if name in quorum else "stopped"}
            version = meta.get(name, {}).get("ceph_version")
            if version:
                entry["ceph_version"] = version
                short = re.search(r"(\d+\.\d+\.\d+)", version)
                entry["ceph_version_short"] = short.group(1) if short else version
            out.append(entry)
        return out
    return ceph_call(work)


def monitor_task(ctx: Context, params: dict[str, Any], create: bool) -> str:
    monid = params.get("monid") or ctx.node
    if create:
        def prepare() -> list[str]:
            check_quorum()
            addrs = [a for a in re.split(r"[,; ]+", params.get("mon-address") or "") if a]
            return daemons.mon_prepare(ctx.node, monid, addrs, certs.local_addresses(), cluster_ip(ctx.node))
        ips = ceph_call(prepare)
        return tasks.start(ctx.node, "cephcreatemon", f"mon.{monid}", ctx.caller.name,
                           lambda say: daemons.mon_create(ctx.node, monid, ips, say))
    ceph_call(daemons.PATHS.check_inited)
    return tasks.start(ctx.node, "cephdestroymon", f"mon.{monid}", ctx.caller.name,
                       lambda say: daemons.mon_destroy(monid, say))


@route("POST /nodes/{node}/ceph/mon/{monid}")
def mon_create(ctx: Context, params: dict[str, Any]) -> str:
    return monitor_task(ctx, params, create=True)


@route("DELETE /nodes/{node}/ceph/mon/{monid}")
def mon_destroy(ctx: Context, params: dict[str, Any]) -> str:
    return monitor_task(ctx, params, create=False)


@route("GET /nodes/{node}/ceph/mgr")
def mgr_list(_ctx: Context, _params: dict[str, Any]) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        daemons.PATHS.check_inited()
        dump = rados.command(["mgr", "dump"])
        meta = {m.get("name"): m for m in rados.command(["mgr", "metadata"]) or []}
        out = []
        if dump.get("active_name"):
            out.append({"name": dump["active_name"], "state": "active", "addr": dump.get("active_addr", "")})
        out += [{"name": s["name"], "state": "standby"} for s in dump.get("standbys", [])]
        for entry in out:
            host = meta.get(entry["name"], {}).get("hostname")
            if host:
                entry["host"] = host
        listed = {e["name"] for e in out}
        for directory in sorted(Path("/var/lib/ceph/mgr").glob("ceph-*")):
            name = directory.name.removeprefix("ceph-")
            if name not in listed:
                out.append({"name": name, "state": "stopped", "host": os.uname().nodename})
        return out
    return ceph_call(work)


@route("POST /nodes/{node}/ceph/mgr/{id}")
def mgr_create(ctx: Context, params: dict[str, Any]) -> str:
    mgrid = params.get("id") or ctx.node
    ceph_call(daemons.PATHS.check_inited)
    ceph_call(daemons.setup_pve_symlinks)
    return tasks.start(ctx.node, "cephcreatemgr", f"mgr.{mgrid}", ctx.caller.name,
                       lambda say: daemons.mgr_create(mgrid, say))


@route("DELETE /nodes/{node}/ceph/mgr/{id}")
def mgr_destroy(ctx: Context, params: dict[str, Any]) -> str:
    mgrid = params["id"]
    ceph_call(daemons.PATHS.check_inited)
    return tasks.start(ctx.node, "cephdestroymgr", f"mgr.{mgrid}", ctx.caller.name,
                       lambda say: daemons.mgr_destroy(mgrid, say))


# -- OSDs and disks --------------------------------------------------------------------------------
@route("GET /nodes/{node}/disks/list")
def disk_list(_ctx: Context, params: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(daemons.disks().values())
    if params.get("type") == "unused":
        found = [d for d in found if not d.get("used")]
    for disk in found:
        disk["gpt"] = bool(disk["gpt"])
        disk["mounted"] = disk.get("used") == "mounted"
        disk["osdid-list"] = disk["osdid-list"] or []
    return found


def osd_tree() -> dict[str, Any]:
    """GET /nodes/{node}/ceph/osd: the CRUSH tree with each OSD's state and usage."""
    daemons.PATHS.check_inited()
    tree = rados.command(["osd", "tree"])
    usage = {n["id"]: n for n in (rados.command(["osd", "df"]) or {}).get("nodes", [])}
    meta = {m["id"]: m for m in rados.command(["osd", "metadata"]) or []}
    dump = rados.command(["osd", "dump"])
    states = {o["osd"]: o for o in dump.get("osds", [])}
    nodes = {n["id"]: n for n in tree.get("nodes", [])}

    def build(node_id: int, host: str | None) -> dict[str, Any]:
        n = nodes[node_id]
        entry: dict[str, Any] = {"id": n["id"], "name": n["name"], "type": n["type"]}
        if n["type"] == "osd":
            state = states.get(n["id"], {})
            use = usage.get(n["id"], {})
            info = meta.get(n["id"], {})
            entry.update({"leaf": 1, "status": "up" if state.get("up") else "down", "in": int(bool(state.get("in"))),
                          "crush_weight": n.get("crush_weight", 0), "reweight": n.get("reweight", 0),
                          "device_class": n.get("device_class", "hdd"), "host": host,
                          "pgs": use.get("pgs", 0), "total_space": use.get("kb", 0) * 1024,
                          "bytes_used": use.get("kb_used", 0) * 1024, "percent_used": use.get("utilization", 0),
                          "osdtype": info.get("osd_objectstore", "bluestore"),
                          "blfsdev": info.get("bluestore_bdev_dev_node", "")})
            if info.get("ceph_version"):
                entry["ceph_version"] = info["ceph_version"]
                short = re.search(r"(\d+\.\d+\.\d+)", info["ceph_version"])
                entry["ceph_version_short"] = short.group(1) if short else ""
        else:
            entry["leaf"] = 0
            entry["children"] = [build(c, n["name"] if n["type"] == "host" else host)
                                 for c in n.get("children", []) if c in nodes]
        return entry

    roots = [build(n["id"], None) for n in tree.get("nodes", []) if n["type"] == "root"]
    result: dict[str, Any] = {"root": {"leaf": 0, "children": roots}}
    if dump.get("flags"):
        result["flags"] = dump["flags"]
    return result


@route("GET /nodes/{node}/ceph/osd")
def osd_list(_ctx: Context, _params: dict[str, Any]) -> dict[str, Any]:
    return ceph_call(osd_tree)


@route("POST /nodes/{node}/ceph/osd")
def osd_create(ctx: Context, params: dict[str, Any]) -> str:
    def prepare() -> str:
        check_quorum()
        for unsupported in ("db_dev", "wal_dev", "encrypted", "osds-per-device"):
            if params.get(unsupported):
                raise CephError(f"the twin's OSDs are raw bluestore on one disk: '{unsupported}' is not supported")
        return daemons.osd_prepare(ctx.node, params["dev"], certs.local_addresses())
    dev = ceph_call(prepare)
    return tasks.start(ctx.node, "cephcreateosd", dev.removeprefix("/dev/"), ctx.caller.name,
                       lambda say: daemons.osd_create(dev, say, params.get("crush-device-class")))


@route("DELETE /nodes/{node}/ceph/osd/{osdid}")
def osd_destroy(ctx: Context, params: dict[str, Any]) -> str:
    osdid = int(params["osdid"])
    ceph_call(lambda: daemons.osd_check_destroy(ctx.node, osdid))
    return tasks.start(ctx.node, "cephdestroyosd", f"osd.{osdid}", ctx.caller.name,
                       lambda say: daemons.osd_destroy(osdid, flag(params, "cleanup"), say))


@route("POST /nodes/{node}/ceph/osd/{osdid}/in")
def osd_in(_ctx: Context, params: dict[str, Any]) -> None:
    ceph_call(lambda: rados.command(["osd", "in", str(params["osdid"])]))


@route("POST /nodes/{node}/ceph/osd/{osdid}/out")
def osd_out(_ctx: Context, params: dict[str, Any]) -> None:
    ceph_call(lambda: rados.command(["osd", "out", str(params["osdid"])]))


# -- pools -----------------------------------------------------------------------------------------
@route("GET /nodes/{node}/ceph/pool")
def pool_list(_ctx: Context, _params: dict[str, Any]) -> list[dict[str, Any]]:
    return ceph_call(pools.listing)


@route("GET /nodes/{node}/ceph/pool/{name}/status")
def pool_status(_ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return ceph_call(lambda: pools.status(params["name"]))


@route("POST /nodes/{node}/ceph/pool")
def pool_create(ctx: Context, params: dict[str, Any]) -> str:
    def prepare() -> None:
        check_quorum()
        pools.check_create(params)
    ceph_call(prepare)
    return tasks.start(ctx.node, "cephcreatepool", params["name"], ctx.caller.name,
                       lambda say: pools.create(ctx.node, params, say))


@route("PUT /nodes/{node}/ceph/pool/{name}")
def pool_set(ctx: Context, params: dict[str, Any]) -> str:
    ceph_call(daemons.PATHS.check_configured)
    return tasks.start(ctx.node, "cephsetpool", params["name"], ctx.caller.name,
                       lambda say: pools.update(params, say))


@route("DELETE /nodes/{node}/ceph/pool/{name}")
def pool_destroy(ctx: Context, params: dict[str, Any]) -> str:
    ceph_call(lambda: pools.check_destroy(params))
    return tasks.start(ctx.node, "cephdestroypool", params["name"], ctx.caller.name,
                       lambda say: pools.destroy(params, say))


# -- services -------------------------------------------------------------------------------------
def unit_of(service: str) -> str:
    """pveceph's service names as systemd units: ceph (all), mon, osd.3, mgr.pve1, ..."""
    kind, _, ident = service.partition(".")
    if kind == "ceph":
        return "ceph.target"
    return f"ceph-{kind}@{ident}" if ident else f"ceph-{kind}.target"


def service_task(ctx: Context, params: dict[str, Any], action: str) -> str:
    service = params.get("service") or "ceph.target"
    unit = service if service == "ceph.target" else unit_of(service)
    ceph_call(daemons.PATHS.check_inited)

    def work(say: Any) -> None:
        daemons.systemctl(action, unit, say)
    return tasks.start(ctx.node, f"srv{action}", service, ctx.caller.name, work)


@route("POST /nodes/{node}/ceph/start")
def start_service(ctx: Context, params: dict[str, Any]) -> str:
    return service_task(ctx, params, "start")


@route("POST /nodes/{node}/ceph/stop")
def stop_service(ctx: Context, params: dict[str, Any]) -> str:
    return service_task(ctx, params, "stop")


# -- cluster-wide ----------------------------------------------------------------------------------
@route("GET /cluster/ceph")
def cluster_index(_ctx: Context, _params: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": "metadata"}, {"name": "status"}, {"name": "flags"}]


@route("GET /cluster/ceph/metadata")
def metadata(_ctx: Context, _params: dict[str, Any]) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        daemons.PATHS.check_inited()
        out: dict[str, Any] = {"mon": {}, "mgr": {}, "mds": {}, "osd": [], "node": {}}
        for kind in ("mon", "mgr", "mds"):
            for item in rados.command([kind, "metadata"]) or []:
                # Ceph gives memory sizes as strings; the schema has them as integers
                item.update({k: int(v) for k, v in item.items() if k.endswith("_kb") and str(v).isdigit()})
                out[kind][f"{item.get('name')}@{item.get('hostname')}"] = item
        out["osd"] = rados.command(["osd", "metadata"]) or []
        version = daemons.run(["ceph", "--version"]).strip()
        parsed = re.search(r"version (\S+) \((\w+)\)", version)
        if parsed:
            node = os.uname().nodename
            out["node"][node] = {"version": {"str": parsed.group(1),
                                             "parts": [int(p) for p in re.findall(r"\d+", parsed.group(1))[:3]]},
                                 "buildcommit": parsed.group(2)}
        return out
    return ceph_call(work)


@route("GET /cluster/ceph/flags")
def flags(_ctx: Context, _params: dict[str, Any]) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        daemons.PATHS.check_configured()
        active = set((rados.command(["osd", "dump"]).get("flags") or "").split(","))
        return [{"name": name, "description": text, "value": name in active} for name, text in FLAGS.items()]
    return ceph_call(work)


@route("PUT /cluster/ceph/flags/{flag}")
def set_flag(_ctx: Context, params: dict[str, Any]) -> None:
    def work() -> None:
        daemons.PATHS.check_configured()
        rados.command(["osd", "set" if flag(params, "value") else "unset", params["flag"]])
    ceph_call(work)
