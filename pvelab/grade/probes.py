"""The probes: what the grader (and a student's self-check) looks at, one small function each.

A probe reads the cluster through ClusterAccess (read-only) and returns an Outcome: how many of
its items hold (a node, a link, a guest...), and one sentence per item that does not. Adding a
check is one function here plus a rubric entry. Expectations come from the check's `params`, then
the student's roster `params` (per-student values such as the cluster name)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pvelab.grade.access import ClusterAccess
from pvelab.pve.cluster.pvecm_output import parse_cfgtool_status, parse_status


@dataclass
class Outcome:
    passed: int
    total: int
    problems: list[str] = field(default_factory=list)  # one sentence per item that does not hold
    facts: dict[str, Any] = field(default_factory=dict)  # what was seen, for the report
    seconds: float | None = None  # a timed drill's measurement (thresholds_s scoring)

    @property
    def ok(self) -> bool:
        return self.passed == self.total and not self.problems


Probe = Callable[[ClusterAccess, dict[str, Any]], Outcome]
PROBES: dict[str, Probe] = {}


def probe(name: str) -> Callable[[Probe], Probe]:
    def register(func: Probe) -> Probe:
        PROBES[name] = func
        return func
    return register


def known(name: str) -> bool:
    return name in PROBES


def items(results: dict[str, str | None]) -> Outcome:
    """{item: None if it holds, else the sentence saying what is wrong}."""
    problems = [p for p in results.values() if p]
    return Outcome(len(results) - len(problems), len(results), problems)


# -- access ----------------------------------------------------------------------------------------
@probe("access.api")
def access_api(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Every node's API answers the grader's credentials."""
    results: dict[str, str | None] = {}
    for node in cx.node_names():
        try:
            cx.api("/version", node=node)
            results[node] = None
        except Exception as exc:  # noqa: BLE001 - the sentence says what went wrong
            results[node] = f"{node}'s API does not answer the grader: {exc}"
    return items(results)


# -- cluster ---------------------------------------------------------------------------------------
def cluster_status(cx: ClusterAccess) -> list[dict[str, Any]]:
    return list(cx.api("/cluster/status"))


@probe("cluster.name")
def cluster_name(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """The nodes form a cluster named `cluster_name`."""
    wanted = params.get("cluster_name")
    entry = next((e for e in cluster_status(cx) if e.get("type") == "cluster"), None)
    if entry is None:
        return Outcome(0, 1, ["the nodes are in no cluster: create one (pvecm create)"], {"cluster": None})
    if wanted and entry.get("name") != wanted:
        return Outcome(0, 1, [f"the cluster is called '{entry.get('name')}', the lab asks for '{wanted}'"],
                       {"cluster": entry.get("name")})
    return Outcome(1, 1, [], {"cluster": entry.get("name")})


@probe("cluster.nodes_online")
def nodes_online(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """`nodes` (default: the roster's) members, each online; a point share per node."""
    expected = int(params.get("nodes") or len(cx.node_names()))
    nodes = {e["name"]: e for e in cluster_status(cx) if e.get("type") == "node"}
    online = sorted(n for n, e in nodes.items() if e.get("online"))
    problems = [f"{n} is in the cluster but offline" for n in sorted(nodes) if n not in online]
    if len(nodes) < expected:
        problems.append(f"the cluster has {len(nodes)} nodes, the lab asks for {expected}")
    return Outcome(min(len(online), expected), expected, problems, {"online": online})


@probe("cluster.quorate")
def quorate(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Quorate, with every configured vote present and no `pvecm expected` override."""
    code, out, _ = cx.ssh(cx.node_names()[0], "pvecm status")
    status = parse_status(out)
    if not status.get("quorate"):
        return Outcome(0, 1, [f"no quorum: {status.get('total_votes')} of {status.get('expected_votes')} votes"],
                       status)
    if status.get("expected_votes") != status.get("highest_expected"):
        return Outcome(0, 1, [f"expected votes were lowered to {status.get('expected_votes')} (pvecm expected): "
                              "an emergency override, not a fix"], status)
    return Outcome(1, 1, [], {k: status.get(k) for k in ("total_votes", "expected_votes", "quorum")})


@probe("corosync.links")
def corosync_links(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Each node has `links` (default 2) corosync links, all connected."""
    wanted = int(params.get("links", 2))
    results: dict[str, str | None] = {}
    for node in cx.node_names():
        code, out, err = cx.ssh(node, "corosync-cfgtool -s")
        links = parse_cfgtool_status(out) if code == 0 else {}
        broken = [f"link{link} to node {peer} {state}" for link, peers in sorted(links.items())
                  for peer, state in sorted(peers.items()) if state not in ("localhost", "connected")]
        if len(links) < wanted:
            results[node] = f"{node} has {len(links)} corosync link(s), the lab asks for {wanted}"
        elif broken:
            results[node] = f"{node}: " + "; ".join(broken)
        else:
            results[node] = None
    return items(results)


@probe("qdevice.votes")
def qdevice_votes(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """A QDevice adds its vote (pvecm status flags Qdevice)."""
    code, out, _ = cx.ssh(cx.node_names()[0], "pvecm status")
    status = parse_status(out)
    flags = status.get("flags") or []
    if "Qdevice" not in flags:
        return Outcome(0, 1, ["the cluster has no QDevice vote (pvecm qdevice setup)"], {"flags": flags})
    return Outcome(1, 1, [], {"flags": flags, "total_votes": status.get("total_votes")})


# -- storage, guests, HA, fencing, backups -------------------------------------------------------
@probe("storage.defined")
def storage_defined(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Storage `storage` (of `type`, holding `content`) is defined and active on every node."""
    sid = str(params["storage"])
    defined = {s["storage"]: s for s in cx.api("/storage")}
    if sid not in defined:
        return Outcome(0, 1 + len(cx.node_names()), [f"there is no storage '{sid}' (Datacenter > Storage)"])
    entry = defined[sid]
    results: dict[str, str | None] = {"definition": None}
    if params.get("type") and entry.get("type") != params["type"]:
        results["definition"] = f"storage '{sid}' is of type {entry.get('type')}, the lab asks for {params['type']}"
    missing = set(params.get("content") or []) - set(str(entry.get("content", "")).split(","))
    if missing and not results["definition"]:
        results["definition"] = f"storage '{sid}' does not hold {', '.join(sorted(missing))} content"
    for node in cx.node_names():
        listed = {s["storage"]: s for s in cx.api(f"/nodes/{node}/storage")}
        active = listed.get(sid, {}).get("active")
        results[node] = None if active else f"storage '{sid}' is not active on {node}"
    return items(results)


@probe("guests.running")
def guests_running(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Guests `vmids` exist and run; a share per guest."""
    guests = {int(g["vmid"]): g for g in cx.api("/cluster/resources", type="vm")}
    results: dict[str, str | None] = {}
    for vmid in params.get("vmids") or []:
        guest = guests.get(int(vmid))
        results[str(vmid)] = (f"guest {vmid} does not exist" if guest is None else
                              None if guest.get("status") == "running" else f"guest {vmid} is {guest.get('status')}")
    return items(results)


@probe("ha.resources_started")
def ha_started(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """HA resources `sids` exist and are started; a share per resource."""
    current = cx.api("/cluster/ha/status/current")
    services = {e.get("sid"): e for e in current if e.get("type") == "service"}
    results: dict[str, str | None] = {}
    for sid in params.get("sids") or []:
        entry = services.get(sid)
        results[sid] = (f"{sid} is not an HA resource (ha-manager add)" if entry is None else
                        None if entry.get("state") == "started" else f"{sid} is {entry.get('state')} in HA")
    return items(results)


@probe("ha.placement")
def ha_placement(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """`sids` are placed on `nodes` (a node-affinity rule on PVE 9, an HA group on PVE 8)."""
    major = int(str(cx.api("/version").get("version", "9")).split(".")[0])
    wanted_nodes = set(params.get("nodes") or [])
    results: dict[str, str | None] = {}
    if major >= 9:
        rules = [r for r in cx.api("/cluster/ha/rules") if r.get("type") == "node-affinity"]
        for sid in params.get("sids") or []:
            rule = next((r for r in rules if sid in str(r.get("resources", "")).split(",")), None)
            results[sid] = (f"{sid} has no node-affinity rule" if rule is None else
                            None if placed_on(rule.get("nodes")) >= wanted_nodes
                            else f"{sid}'s rule '{rule.get('rule')}' places it on {rule.get('nodes')}")
    else:
        groups = {g["group"]: g for g in cx.api("/cluster/ha/groups")}
        resources = {r["sid"]: r for r in cx.api("/cluster/ha/resources")}
        for sid in params.get("sids") or []:
            group = groups.get(str(resources.get(sid, {}).get("group")))
            results[sid] = (f"{sid} is in no HA group" if group is None else
                            None if placed_on(group.get("nodes")) >= wanted_nodes
                            else f"{sid}'s group '{group.get('group')}' has nodes {group.get('nodes')}")
    return items(results)


def placed_on(nodes: Any) -> set[str]:
    return {entry.split(":")[0] for entry in str(nodes or "").split(",") if entry}


@probe("fencing.watchdog")
def fencing_watchdog(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Every node's WATCHDOG_MODULE is `watchdog_module` (default ipmi_watchdog)."""
    wanted = str(params.get("watchdog_module", "ipmi_watchdog"))
    results: dict[str, str | None] = {}
    for node in cx.node_names():
        code, out, _ = cx.ssh(node, "cat /etc/default/pve-ha-manager")
        found = re.findall(r"^\s*WATCHDOG_MODULE=(\S+)", out, re.M)
        results[node] = None if found and found[-1] == wanted else (
            f"{node}'s watchdog module is {found[-1] if found else 'softdog (the default)'}, not {wanted}")
    return items(results)


@probe("backup.job")
def backup_job(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """An enabled backup job covers each guest of `vmids`."""
    jobs = [j for j in cx.api("/cluster/backup") if str(j.get("enabled", 1)) != "0"]
    covered = {int(v) for j in jobs for v in str(j.get("vmid", "")).split(",") if v} if jobs else set()
    every = any(str(j.get("all", 0)) == "1" for j in jobs)
    results = {str(v): None if every or int(v) in covered else f"no enabled backup job covers guest {v}"
               for v in params.get("vmids") or []}
    return items(results)


@probe("backup.recent")
def backup_recent(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Each guest of `vmids` has a backup on `storage` younger than `max_age_h` (default 25) hours."""
    storage, max_age_h = str(params["storage"]), float(params.get("max_age_h", 25))
    node = cx.node_names()[0]
    archives = cx.api(f"/nodes/{node}/storage/{storage}/content", content="backup")
    results: dict[str, str | None] = {}
    for vmid in params.get("vmids") or []:
        newest = max((a.get("ctime", 0) for a in archives if int(a.get("vmid", -1)) == int(vmid)), default=None)
        age_h = None if newest is None else (time.time() - newest) / 3600
        results[str(vmid)] = (f"guest {vmid} has no backup on '{storage}'" if age_h is None else
                              None if age_h <= max_age_h else f"guest {vmid}'s newest backup is {age_h:.0f} h old")
    return items(results)
