"""The cluster subsystem's API: version, access, /cluster/status|options|config, nodes and tasks.
Every handler takes (ctx, params) and returns the `data` value."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.procfs import cpuinfo, running_for
from pvelab.pve import certs, members, version
from pvelab.pve.access import guard as access
from pvelab.pve.api import tasks
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.cluster import clusterlog
from pvelab.pve.cluster import corosync_conf as cc
from pvelab.pve.cluster import ops as cluster

DATACENTER_CFG = Path("/etc/pve/datacenter.cfg")


def cluster_call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except cluster.ClusterError as exc:
        raise ApiException(exc.status, str(exc)) from exc
    except PermissionError as exc:
        raise ApiException(500, "cluster not ready - no quorum?") from exc


if clusterlog.log_msg not in tasks.TASK_LOGGERS:  # PVE logs every task's start and end in the cluster log
    tasks.TASK_LOGGERS.append(clusterlog.log_msg)


def worker(ctx: Context, kind: str, ident: str, work: Callable[[Callable[[str], None]], None]) -> str:
    return tasks.start(ctx.node, kind, ident, ctx.caller.name, work)


# -- version, nodes -----------------------------------------------------------------------------
@route("GET /version")
def get_version(ctx: Context, params: dict[str, Any]) -> Any:
    return version.version_info()


def node_uptime() -> int:
    return int(running_for(1))  # the node's own systemd: its boot, not the host's


def node_memory() -> dict[str, int]:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0]) * 1024
    return {"total": info["MemTotal"], "free": info["MemAvailable"], "used": info["MemTotal"] - info["MemAvailable"],
            "available": info["MemAvailable"]}


@route("GET /nodes")
def nodes_index(ctx: Context, params: dict[str, Any]) -> Any:
    nodelist = members.read().get("nodelist") or {ctx.node: {"online": 1}}
    out = []
    for name, info in sorted(nodelist.items()):
        entry: dict[str, Any] = {"node": name, "id": f"node/{name}", "type": "node", "level": "",
                                 "status": "online" if info.get("online") or name == ctx.node else "offline"}
        fp = _fingerprint(name)
        if fp:
            entry["ssl_fingerprint"] = fp
        if name == ctx.node and access.allowed(ctx.caller.name, f"/nodes/{name}", ["Sys.Audit"]):
            mem = node_memory()
            entry.update({"uptime": node_uptime(), "maxcpu": os.cpu_count() or 1, "cpu": 0.0,
                          "maxmem": mem["total"], "mem": mem["used"]})
        out.append(entry)
    return out


@route("GET /nodes/{node}/status")
def node_status(ctx: Context, params: dict[str, Any]) -> Any:
    load = Path("/proc/loadavg").read_text().split()[:3]
    uname = os.uname()
    return {"uptime": node_uptime(), "loadavg": load, "kversion": f"{uname.sysname} {uname.release} {uname.version}",
            "cpuinfo": cpuinfo(),
            "cpu": 0.0, "wait": 0.0, "memory": node_memory(), "swap": {"total": 0, "used": 0, "free": 0},
            "ksm": {"shared": 0}, "pveversion": version.pveversion_line().split(" ")[0],
            "rootfs": node_rootfs(), "boot-info": {"mode": "legacy-bios"}, "current-kernel": {"release": uname.release,
                                                                    "sysname": uname.sysname,
                                                                    "version": uname.version,
                                                                    "machine": uname.machine}}


def node_rootfs() -> dict[str, int]:
    """The root filesystem's figures, as PVE's df('/') gives them (the node's overlay disk here)."""
    st = os.statvfs("/")
    total, free, avail = st.f_blocks * st.f_frsize, st.f_bfree * st.f_frsize, st.f_bavail * st.f_frsize
    return {"total": total, "used": total - free, "free": free, "avail": avail}


@route("GET /nodes/{node}/tasks")
def task_index(ctx: Context, params: dict[str, Any]) -> Any:
    """The node's tasks, newest first, filtered as pve-manager's node_tasks filters them (user, type,
    VMID, start time, status; `start` skips, `limit` caps); only one's own without Sys.Audit."""
    auditor = access.allowed(ctx.caller.name, f"/nodes/{ctx.node}", ["Sys.Audit"])
    wanted: set[str] | None = None  # no status asked for: every task, the running ones too
    if params.get("errors"):
        wanted = {"warning", "error", "unknown"}
    elif params.get("statusfilter") is not None:
        wanted = {word.lower() for word in re.split(r"[\s,;]+", str(params["statusfilter"])) if word}
    user, kind, vmid = params.get("userfilter"), params.get("typefilter"), params.get("vmid")
    since, until = params.get("since"), params.get("until")
    start, limit = int(params.get("start") or 0), int(params.get("limit", 50))
    out: list[dict[str, Any]] = []
    count = 0
    for task in tasks.recent(ctx.node, None):
        status = tasks.status_type(task)
        if ((user and str(user).lower() not in task["user"].lower())
                or not (auditor or task.get("user") == ctx.caller.name)
                or (kind and task["type"] != kind) or (vmid and task.get("id") != str(vmid))
                or (since is not None and task["starttime"] < int(since))
                or (until is not None and task["starttime"] > int(until))
                or (wanted is not None and status not in wanted)):
            continue
        count += 1
        if count <= start or len(out) >= limit:
            continue
        out.append(task)
    return out


def task_owner_or_auditor(ctx: Context, upid: str) -> None:
    """A task's status and log: its owner, or Sys.Audit on /nodes/<node>."""
    fields = upid.split(":")
    if len(fields) > 7 and fields[7] == ctx.caller.name:
        return
    access.require(ctx.caller.name, f"/nodes/{ctx.node}", ["Sys.Audit"])


@route("GET /nodes/{node}/tasks/{upid}/status")
def task_status(ctx: Context, params: dict[str, Any]) -> Any:
    task_owner_or_auditor(ctx, params["upid"])
    try:
        return tasks.status(params["upid"])
    except tasks.TaskError as exc:
        raise ApiException(500, str(exc)) from exc


@route("GET /nodes/{node}/tasks/{upid}/log")
def task_log(ctx: Context, params: dict[str, Any]) -> Any:
    task_owner_or_auditor(ctx, params["upid"])
    try:
        lines, _total = tasks.read_log(params["upid"], int(params.get("start", 0)), int(params.get("limit", 50)))
    except tasks.TaskError as exc:
        raise ApiException(500, str(exc)) from exc
    return lines


# -- cluster --------------------------------------------------------------------------------------
def _fingerprint(node: str) -> str | None:
    try:
        return certs.fingerprint_of_pem(certs.node_cert(node).read_text())
    except (FileNotFoundError, ValueError):
        return None


@route("GET /cluster/status")
def cluster_status(ctx: Context, params: dict[str, Any]) -> Any:
    info = members.read()
    if "cluster" not in info:
        return [{"type": "node", "id": f"node/{ctx.node}", "name": ctx.node, "nodeid": 0, "ip": cluster.local_ip(),
                 "local": 1, "online": 1, "level": ""}]
    c = info["cluster"]
    out: list[dict[str, Any]] = [{"type": "cluster", "id": "cluster", "name": c["name"], "nodes": c["nodes"],
                                  "quorate": c["quorate"], "version": c["version"]}]
    for name, node in sorted(info.get("nodelist", {}).items()):
        out.append({"type": "node", "id": f"node/{name}", "name": name, "nodeid": node["id"], "ip": node["ip"],
                    "local": int(name == ctx.node), "online": node["online"], "level": ""})
    return out


@route("GET /cluster/log")
def cluster_log(ctx: Context, params: dict[str, Any]) -> Any:
    """The cluster log, newest first: all of it for those with Sys.Syslog on /, their own entries otherwise."""
    user = "" if access.allowed(ctx.caller.name, "/", ["Sys.Syslog"]) else ctx.caller.name
    picked = clusterlog.pick(clusterlog.read(), user, int(params.get("max") or 0))
    return [{**e, "id": f"{e['uid']}:{e['node']}"} for e in picked]


@route("GET /cluster/options")
def get_options(ctx: Context, params: dict[str, Any]) -> Any:
    try:
        lines = DATACENTER_CFG.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split(": ", 1) for line in lines if ": " in line)


@route("PUT /cluster/options")
def set_options(ctx: Context, params: dict[str, Any]) -> Any:
    options = get_options(ctx, {})
    for key in str(params.pop("delete", "")).replace(";", ",").split(","):
        options.pop(key.strip(), None)
    options.update({k: str(int(v) if isinstance(v, bool) else v) for k, v in params.items() if k != "digest"})
    text = "".join(f"{k}: {v}\n" for k, v in sorted(options.items()))
    cluster_call(lambda: DATACENTER_CFG.write_text(text))


@route("GET /cluster/config")
def config_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [{"name": n} for n in ("nodes", "totem", "join", "qdevice", "apiversion")]


@route("POST /cluster/config")
def config_create(ctx: Context, params: dict[str, Any]) -> Any:
    if cluster.PVE_COROSYNC.exists():
        raise ApiException(500, f"cluster config '{cluster.PVE_COROSYNC}' already exists")
    return worker(ctx, "clustercreate", params["clustername"],
                  lambda log: cluster_call(lambda: cluster.create(params["clustername"], params, log)))


@route("GET /cluster/config/apiversion")
def apiversion(ctx: Context, params: dict[str, Any]) -> Any:
    return cluster.JOIN_API_VERSION


def _conf_or_424() -> cc.Conf:
    conf = cluster.read_conf()
    if conf is None:
        raise ApiException(424, "node is not in a cluster, no join info available!")
    return conf


@route("GET /cluster/config/join")
def join_info(ctx: Context, params: dict[str, Any]) -> Any:
    conf = _conf_or_424()
    nodelist = []
    online = members.read().get("nodelist", {})
    for node in cc.nodes(conf):
        entry: dict[str, Any] = {k: (int(v) if k in ("nodeid", "quorum_votes") else v) for k, v in node.items()}
        entry["pve_addr"] = online.get(node["name"], {}).get("ip") or node.get("ring0_addr", "")
        entry["pve_fp"] = _fingerprint(node["name"]) or ""
        nodelist.append(entry)
    return {"nodelist": nodelist, "preferred_node": params.get("node") or ctx.node, "totem": totem_of(conf),
            "config_digest": hashlib.sha1(cluster.PVE_COROSYNC.read_bytes()).hexdigest()}


@route("POST /cluster/config/join")
def join(ctx: Context, params: dict[str, Any]) -> Any:
    host, password, fingerprint = params["hostname"], params["password"], params["fingerprint"]
    return worker(ctx, "clusterjoin", "", lambda log: cluster_call(
        lambda: cluster.join(host, password, fingerprint, params, log)))


@route("GET /cluster/config/nodes")
def config_nodes(ctx: Context, params: dict[str, Any]) -> Any:
    conf = cluster.read_conf()  # PVE answers [] on a node outside any cluster
    return [{"node": n["name"], **n} for n in cc.nodes(conf)] if conf is not None else []


@route("POST /cluster/config/nodes/{node}")
def addnode(ctx: Context, params: dict[str, Any]) -> Any:
    return cluster_call(lambda: cluster.addnode(params["node"], params, lambda _line: None))


@route("DELETE /cluster/config/nodes/{node}")
def delnode(ctx: Context, params: dict[str, Any]) -> Any:
    cluster_call(lambda: cluster.delnode(params["node"], lambda _line: None))


@route("GET /cluster/config/totem")
def totem(ctx: Context, params: dict[str, Any]) -> Any:
    conf = cluster.read_conf()  # PVE answers null on a node outside any cluster
    return totem_of(conf) if conf is not None else None


def totem_of(conf: cc.Conf) -> dict[str, Any]:
    """corosync.conf's totem section as the API shows it: interfaces keyed by link number."""
    data = {k: v for k, v in conf.get("totem", {}).items() if k != "interface"}
    data["interface"] = {i["linknumber"]: i for i in conf.get("totem", {}).get("interface", [])}
    return data


@route("GET /cluster/config/qdevice")
def qdevice(ctx: Context, params: dict[str, Any]) -> Any:
    return {}
