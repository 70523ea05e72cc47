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

from pvelab.grade.access import ClusterAccess, Unreachable
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


def each_node(cx: ClusterAccess, judge: Callable[[str], str | None]) -> dict[str, str | None]:
    """judge(node) for every node: a node that does not answer is that node's failed item (one node
    down costs its share), unless no node answers: then the cluster is unreachable, not wrong."""
    results: dict[str, str | None] = {}
    silent = 0
    for node in cx.node_names():
        try:
            results[node] = judge(node)
        except Unreachable as exc:
            silent += 1
            results[node] = f"{node} did not answer the grader ({exc}): is it powered on and on the network?"
    if silent == len(results):
        raise Unreachable("no node answered")
    return results


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


NO_SUCH_GUEST = 999999999  # the highest VMID PVE allows: the lab never has it


@probe("access.read_only")
def access_read_only(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """The grader's credentials read but cannot write: starting a guest (one that does not exist) is refused."""
    node = cx.node_names()[0]
    refused, answer = cx.write_refused(f"/nodes/{node}/qemu/{NO_SUCH_GUEST}/status/start", node=node)
    return Outcome(1, 1) if refused else Outcome(0, 1, [
        f"the grader's credentials may change the cluster (a guest start was answered '{answer}', not 403): grade "
        "with a PVEAuditor token (pveum user token add grader@pve grade; pveum acl modify / --roles PVEAuditor "
        "--tokens grader@pve!grade)"])


@probe("access.accounts")
def access_accounts(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """The lab's accounts: `users` exist and may log in, `pools` hold their guests, `acls` are granted."""
    users = {u["userid"]: u for u in cx.api("/access/users")}
    results: dict[str, str | None] = {}
    for userid in params.get("users") or []:
        user = users.get(userid)
        results[f"user {userid}"] = (f"there is no user '{userid}': add it (pveum user add {userid})" if user is None
                                     else f"user '{userid}' is disabled: pveum user modify {userid} --enable 1"
                                     if not user.get("enable", 1) else None)
    for pool in params.get("pools") or []:
        poolid = pool["poolid"]
        try:
            members = {m.get("vmid") for m in cx.api(f"/pools/{poolid}")["members"]}
        except Exception:  # noqa: BLE001 - a missing pool is PVE's 500, said as the fix
            results[f"pool {poolid}"] = f"there is no pool '{poolid}': pveum pool add {poolid}"
            continue
        missing = sorted(set(pool.get("vms") or []) - members)
        results[f"pool {poolid}"] = (f"pool '{poolid}' lacks guest {', '.join(map(str, missing))}: pveum pool modify "
                                     f"{poolid} --vms {','.join(map(str, missing))}" if missing else None)
    granted = {(e["path"], e["ugid"], e["roleid"]) for e in cx.api("/access/acl")}
    for acl in params.get("acls") or []:
        for ugid in [*(acl.get("users") or []), *(acl.get("groups") or []), *(acl.get("tokens") or [])]:
            for role in acl["roles"]:
                key = f"acl {acl['path']} {ugid} {role}"
                results[key] = None if (acl["path"], ugid, role) in granted else (
                    f"{ugid} lacks role {role} on {acl['path']}: pveum acl modify {acl['path']} --roles {role} "
                    f"--{'tokens' if '!' in ugid else 'users' if '@' in ugid else 'groups'} {ugid}")
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
    cx.identities["cluster name"] = str(entry.get("name"))
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
    code, out, _ = cx.ssh_any("pvecm status")
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

    def judge(node: str) -> str | None:
        code, out, err = cx.ssh(node, "corosync-cfgtool -s")
        links = parse_cfgtool_status(out) if code == 0 else {}
        broken = [f"link{link} to node {peer} {state}" for link, peers in sorted(links.items())
                  for peer, state in sorted(peers.items()) if state not in ("localhost", "connected")]
        if len(links) < wanted:
            return f"{node} has {len(links)} corosync link(s), the lab asks for {wanted}"
        return f"{node}: " + "; ".join(broken) if broken else None
    return items(each_node(cx, judge))


@probe("qdevice.votes")
def qdevice_votes(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """A QDevice adds its vote (pvecm status flags Qdevice)."""
    code, out, _ = cx.ssh_any("pvecm status")
    status = parse_status(out)
    flags = status.get("flags") or []
    if "Qdevice" not in flags:
        return Outcome(0, 1, ["the cluster has no QDevice vote (pvecm qdevice setup)"], {"flags": flags})
    return Outcome(1, 1, [], {"flags": flags, "total_votes": status.get("total_votes")})


# -- storage, guests, HA, fencing, backups -------------------------------------------------------
@probe("storage.defined")
def storage_defined(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Storage `storage` (of `type`, holding `content`, with `isos`) is defined and active on every node."""
    sid = str(params["storage"])
    defined = {s["storage"]: s for s in cx.api("/storage")}
    if sid not in defined:
        return Outcome(0, 1, [f"there is no storage '{sid}': define it (Datacenter > Storage, pvesm add, or the "
                              "pve_storage role)"])
    entry = defined[sid]
    results: dict[str, str | None] = {"definition": None}
    missing = set(params.get("content") or []) - set(str(entry.get("content", "")).split(","))
    if params.get("type") and entry.get("type") != params["type"]:
        results["definition"] = (f"storage '{sid}' is of type {entry.get('type')}, the lab asks for {params['type']}: "
                                 "remove it and define it again")
    elif missing:
        results["definition"] = (f"storage '{sid}' does not hold {', '.join(sorted(missing))} content: add it to the "
                                 "storage's content types (pvesm set --content)")

    def judge(node: str) -> str | None:
        listed = {s["storage"]: s for s in cx.api(f"/nodes/{node}/storage", node=node)}
        if not listed.get(sid, {}).get("active"):
            if entry.get("type") == "nfs":
                return (f"storage '{sid}' is not active on {node}: does its server answer from there (pvesm scan nfs "
                        f"{entry.get('server')} on {node}) and export {entry.get('export')}? PVE mounts it at "
                        f"{entry.get('path')} when the server answers")
            return (f"storage '{sid}' is not active on {node}: is its directory mounted (a shared storage "
                    "needs the mount on every node) and the storage enabled there?")
        isos = {v["volid"] for v in cx.api(f"/nodes/{node}/storage/{sid}/content", node=node, content="iso")} \
            if params.get("isos") else set()
        absent = [name for name in (str(i).rsplit("/", 1)[-1] for i in params.get("isos") or [])
                  if f"{sid}:iso/{name}" not in isos]
        return (f"{node} does not see {', '.join(absent)} on storage '{sid}': copy it into the storage's "
                "template/iso/ directory" if absent else None)
    return items({**results, **each_node(cx, judge)})


@probe("guests.running")
def guests_running(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Guests `vmids` exist and run (`stopped`: are stopped, `present`: exist); a share per guest."""
    guests = {int(g["vmid"]): g for g in cx.api("/cluster/resources", type="vm")}
    results: dict[str, str | None] = {}
    for vmid, wanted in [*((v, "running") for v in params.get("vmids") or []),
                         *((v, "stopped") for v in params.get("stopped") or []),
                         *((v, None) for v in params.get("present") or [])]:
        guest = guests.get(int(vmid))
        if guest is None:
            results[str(vmid)] = (f"guest {vmid} does not exist in the cluster: create it (qm create, or the "
                                  "pve_guests role)")
        elif wanted is not None and guest.get("status") != wanted:
            verb = "start" if wanted == "running" else "stop"
            results[str(vmid)] = (f"guest {vmid} is {guest.get('status')} on {guest.get('node')}, it should be "
                                  f"{wanted}: {verb} it (through ha-manager if HA manages it)")
        else:
            results[str(vmid)] = None
    return items(results)


@probe("ha.resources_started")
def ha_started(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """HA resources `sids` (or `resources`: [{sid, resource_state}]) are in their requested state."""
    status = cx.api("/cluster/ha/status/manager_status")
    manager = status.get("manager_status") or {}
    if not manager.get("master_node"):
        return Outcome(0, 1, ["there is no HA manager master: is pve-ha-crm running on the nodes (systemctl status "
                              "pve-ha-crm), and the cluster quorate?"])
    services = manager.get("service_status") or {}
    wanted = [*({"sid": s} for s in params.get("sids") or []), *(params.get("resources") or [])]
    results: dict[str, str | None] = {}
    for resource in wanted:
        sid, requested = resource["sid"], resource.get("resource_state", "started")
        if sid not in services:
            results[sid] = f"{sid} is not an HA resource: add it (ha-manager add {sid}, or the pve_ha role)"
        elif services[sid].get("state") != requested:
            results[sid] = (f"HA resource {sid} is '{services[sid].get('state')}' on {services[sid].get('node')}, "
                            f"requested '{requested}' - see 'ha-manager status' and the task log of its last start")
        else:
            results[sid] = None
    return items(results)


def node_priorities(nodes: Any) -> dict[str, int]:
    """{node: priority} of a placement's nodes, given as a list or PVE's comma string of NODE[:PRIORITY]."""
    entries = str(nodes or "").split(",") if isinstance(nodes, str | None) else [str(e) for e in nodes]
    return {name: int(priority or 0) for name, _, priority in (e.strip().partition(":") for e in entries if e)}


def expected_nodes(placement: dict[str, Any], node_status: dict[str, str]) -> set[str]:
    """Where the HA manager should run a placed guest: the online placement nodes of the highest
    priority (any online placement node without failback); any online node if none is and it is not strict."""
    priority = node_priorities(placement["nodes"])
    online = {n for n in priority if node_status.get(n) == "online"}
    if not online:
        return set() if placement.get("strict") else {n for n, s in node_status.items() if s == "online"}
    if placement.get("failback") is False:
        return online
    top = max(priority[n] for n in online)
    return {n for n in online if priority[n] == top}


@probe("ha.placement_respected")
def ha_placement_respected(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Each started HA guest of `placements` ([{name, nodes, resources, strict, failback}]) runs where they say."""
    manager = cx.api("/cluster/ha/status/manager_status").get("manager_status") or {}
    services, node_status = manager.get("service_status") or {}, manager.get("node_status") or {}
    results: dict[str, str | None] = {}
    for placement in params.get("placements") or []:
        allowed = expected_nodes(placement, node_status)
        for sid in placement.get("resources") or []:
            service = services.get(sid) or {}
            if service.get("state") != "started":
                continue
            where = service.get("node")
            results[sid] = None if where in allowed else (
                f"HA resource {sid} runs on {where}, but its placement '{placement['name']}' "
                f"({', '.join(placement['nodes'])}) puts it on {' or '.join(sorted(allowed))} - is the HA manager "
                "still moving it (ha-manager status)?")
    return items(results)


@probe("ha.placement")
def ha_placement(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """`sids` are placed on `nodes` (a node-affinity rule on PVE 9, an HA group on PVE 8)."""
    major = cx.pve_major() or 9
    wanted_nodes = set(params.get("nodes") or [])
    results: dict[str, str | None] = {}
    if major >= 9:
        rules = [r for r in cx.api("/cluster/ha/rules") if r.get("type") == "node-affinity"]
        for sid in params.get("sids") or []:
            rule = next((r for r in rules if sid in str(r.get("resources", "")).split(",")), None)
            results[sid] = (f"{sid} has no node-affinity rule (ha-manager rules add node-affinity ...)" if rule is None
                            else None if placed_on(rule.get("nodes")) >= wanted_nodes
                            else f"{sid}'s rule '{rule.get('rule')}' places it on {rule.get('nodes')}")
    else:
        groups = {g["group"]: g for g in cx.api("/cluster/ha/groups")}
        resources = {r["sid"]: r for r in cx.api("/cluster/ha/resources")}
        for sid in params.get("sids") or []:
            group = groups.get(str(resources.get(sid, {}).get("group")))
            results[sid] = (f"{sid} is in no HA group (ha-manager groupadd, then set --group)" if group is None else
                            None if placed_on(group.get("nodes")) >= wanted_nodes
                            else f"{sid}'s group '{group.get('group')}' has nodes {group.get('nodes')}")
    return items(results)


def placed_on(nodes: Any) -> set[str]:
    return set(node_priorities(nodes))


@probe("fencing.watchdog")
def fencing_watchdog(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Every node's WATCHDOG_MODULE is `watchdog_module` (default ipmi_watchdog)."""
    wanted = str(params.get("watchdog_module", "ipmi_watchdog"))

    def judge(node: str) -> str | None:
        code, out, _ = cx.ssh(node, "cat /etc/default/pve-ha-manager")
        found = re.findall(r"^\s*WATCHDOG_MODULE=(\S+)", out, re.M)
        return None if found and found[-1] == wanted else (
            f"{node}'s HA watchdog module is {found[-1] if found else 'softdog (the default)'}, not {wanted}: set "
            f"WATCHDOG_MODULE={wanted} in /etc/default/pve-ha-manager (or run the pve_fencing role), then reboot")
    return items(each_node(cx, judge))


@probe("fencing.bmc")
def fencing_bmc(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Every node's BMC answers `chassis status` from the grader with the roster's BMC credentials."""
    results: dict[str, str | None] = {}
    for node in cx.student.nodes:
        if not node.bmc:
            results[node.name] = f"{node.name} has no BMC address in the roster"
            continue
        code, out, err = cx.ipmi(node.name, "chassis status", int(params.get("cipher_suite", 3)))
        results[node.name] = None if code == 0 and "System Power" in out else (
            f"{node.name}'s BMC at {node.bmc} does not answer 'chassis status': {(err or out).strip()} - check its "
            "network, address and credentials; without it nobody can power the node off or on from outside")
    return items(results)


@probe("backup.job")
def backup_job(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """An enabled backup job covers each guest of `vmids`."""
    jobs = [j for j in cx.api("/cluster/backup") if str(j.get("enabled", 1)) != "0"]
    covered = {int(v) for j in jobs for v in str(j.get("vmid", "")).split(",") if v} if jobs else set()
    every = any(str(j.get("all", 0)) == "1" for j in jobs)
    results = {str(v): None if every or int(v) in covered else
               f"no enabled backup job covers guest {v}: add one (Datacenter > Backup > Add, or the pve_backup role)"
               for v in params.get("vmids") or []}
    return items(results)


@probe("backup.recent")
def backup_recent(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Each guest of `vmids` has a backup on `storage` younger than `max_age_h` (default 25) hours."""
    storage, max_age_h = str(params["storage"]), float(params.get("max_age_h", 25))
    node = cx.node_names()[0]
    archives = cx.api(f"/nodes/{node}/storage/{storage}/content", node=node, content="backup")
    results: dict[str, str | None] = {}
    for vmid in params.get("vmids") or []:
        newest = max((a.get("ctime", 0) for a in archives if int(a.get("vmid", -1)) == int(vmid)), default=None)
        if newest is None:
            results[str(vmid)] = (f"guest {vmid} has no backup on '{storage}' (seen from {node}): run the job now "
                                  f"(Datacenter > Backup > Run now, or vzdump {vmid} --storage {storage})")
            continue
        age_h = (time.time() - newest) / 3600
        results[str(vmid)] = None if age_h <= max_age_h else (
            f"the newest backup of guest {vmid} on '{storage}' is {age_h:.0f} h old, older than {max_age_h:g} h: did "
            "the backup job run? Look at its task log")
    return items(results)


@probe("replication.synced")
def replication_synced(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Each of `jobs` ({vmid, target}) exists, is enabled, and its guest's node synced it within
    `max_age_s` (default 900: PVE's default schedule) without failing since."""
    max_age = float(params.get("max_age_s", 900))
    configured = {(int(j["guest"]), str(j["target"])): j for j in cx.api("/cluster/replication")}
    guests = {int(g["vmid"]): g for g in cx.api("/cluster/resources", type="vm")}
    results: dict[str, str | None] = {}
    for wanted in params.get("jobs") or []:
        vmid, target = int(wanted["vmid"]), str(wanted["target"])
        key = f"{vmid}->{target}"
        job = configured.get((vmid, target))
        guest_node = (guests.get(vmid) or {}).get("node")
        if job is None and guest_node == target:  # HA recovered it on its target: the job turned round
            job = next((j for (v, t), j in configured.items() if v == vmid and t != target), None)
        if job is None:
            back = next((j for (v, _), j in configured.items() if v == vmid), None)
            results[key] = (f"guest {vmid} has no replication job to {target}" + (
                f" (its job replicates to {back['target']}: the guest moved to {guest_node}, by HA recovery or a "
                "migration)" if back else ": add one (Datacenter > Replication > Add, or pvesr create-local-job "
                f"{vmid}-0 {target} --schedule '*/15') with the guest's disks on a zfspool storage"))
            continue
        if job.get("disable"):
            results[key] = f"replication job {job['id']} is disabled: pvesr enable {job['id']}"
            continue
        status = cx.api(f"/nodes/{guest_node}/replication/{job['id']}/status")  # any node proxies it there
        last = int(status.get("last_sync") or 0)
        if status.get("fail_count"):
            results[key] = (f"replication job {job['id']} fails on {guest_node} ({status['fail_count']} times: "
                            f"{status.get('error', '?')}): is {target} up? Then pvesr schedule-now {job['id']} and "
                            f"read /var/log/pve/replicate/{job['id']}")
        elif not last:
            results[key] = (f"replication job {job['id']} has not synced yet: pvescheduler on {guest_node} runs it on "
                            f"its schedule, or pvesr schedule-now {job['id']}")
        elif time.time() - last > max_age:
            results[key] = (f"replication job {job['id']} last synced {int(time.time() - last)} s ago, more than "
                            f"{max_age:g} s: is pvescheduler running on {guest_node}?")
        else:
            results[key] = None
    return items(results)


# -- drills (destructive: run only with --drills) ----------------------------------------------------
def ha_services(cx: ClusterAccess, node: str | None = None) -> dict[str, dict[str, Any]]:
    return {e["sid"]: e for e in cx.api("/cluster/ha/status/current", node=node) if e.get("type") == "service"}


@probe("drill.failover")
def drill_failover(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Power off the node running the first HA guest (its BMC), time until its HA guests run elsewhere, power it on."""
    limit, poll = float(params.get("timeout_s", 330)), float(params.get("poll_s", 2))
    before = ha_services(cx)
    victim = params.get("node") or next((e.get("node") for e in before.values() if e.get("state") == "started"), None)
    moved = sorted(sid for sid, e in before.items() if e.get("node") == victim and e.get("state") == "started")
    if not victim or not moved:
        return Outcome(0, 1, ["no started HA guest to fail over: the drill needs the HA part of the lab working"])
    watcher = next(n for n in cx.node_names() if n != victim)
    code, _, err = cx.ipmi(victim, "power off")
    if code != 0:
        return Outcome(0, 1, [f"the BMC of {victim} refused 'power off': {err.strip()}"])
    started = time.monotonic()
    elapsed: float | None = None
    try:
        while time.monotonic() - started < limit:
            time.sleep(poll)
            try:
                now = ha_services(cx, watcher)
            except Exception:  # noqa: BLE001 - a busy cluster answers late; keep polling until the limit
                continue
            if all(now.get(sid, {}).get("state") == "started" and now[sid].get("node") != victim for sid in moved):
                elapsed = time.monotonic() - started
                break
    finally:
        cx.ipmi(victim, "power on")  # never leave a student's node off
    if elapsed is None:
        return Outcome(0, 1, [f"{', '.join(moved)} did not run on another node within {limit:.0f} s of {victim}'s "
                              "power loss: is fencing working (watchdog, quorum of the others)?"])
    return Outcome(1, 1, [], {"node": victim, "guests": moved, "recovered_s": round(elapsed, 1)}, seconds=elapsed)


# -- ceph --------------------------------------------------------------------------------------------
CEPH_NOT_SET_UP = ("there is no Ceph on this cluster yet: install it (pveceph install), initialise it (pveceph init) "
                   "and create monitors (pveceph mon create), or run the pve_ceph role")


def ceph_status(cx: ClusterAccess) -> dict[str, Any] | None:
    """Ceph's status through the first node that answers; None when Ceph is not set up there."""
    try:
        return dict(cx.api("/cluster/ceph/status"))
    except Unreachable:
        raise
    except Exception as exc:  # noqa: BLE001 - PVE's refusal (not initialised, no monitor) is the answer
        if any(text in str(exc) for text in ("not initialized", "rados_connect failed", "binary not installed")):
            return None
        raise


def osd_leaves(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The OSDs of a CRUSH tree as /nodes/{node}/ceph/osd nests it (root > host > osd)."""
    if entry.get("type") == "osd":
        return [entry]
    return [leaf for child in entry.get("children", []) for leaf in osd_leaves(child)]


@probe("ceph.health")
def ceph_health(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Ceph reports HEALTH_OK (muted checks do not count, as in `ceph -s`); each firing check is an item."""
    status = ceph_status(cx)
    if status is None:
        return Outcome(0, 1, [CEPH_NOT_SET_UP])
    health = status.get("health") or {}
    checks = {code: check for code, check in (health.get("checks") or {}).items() if not check.get("muted")}
    if health.get("status") == "HEALTH_OK" or not checks:
        return Outcome(1, 1, [], {"health": health.get("status")})
    problems = [f"Ceph says {health.get('status')}: {check.get('summary', {}).get('message', code)} ({code}); "
                "`ceph health detail` says which daemon or placement group" for code, check in sorted(checks.items())]
    return Outcome(0, 1, problems, {"health": health.get("status"), "checks": sorted(checks)})


@probe("ceph.mons_quorum")
def ceph_mons_quorum(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """A monitor on each of `nodes` (default: every node), each in the quorum; an item per node."""
    if ceph_status(cx) is None:
        return Outcome(0, 1, [CEPH_NOT_SET_UP])
    monmap = {m["name"]: m for m in cx.api(f"/nodes/{cx.node_names()[0]}/ceph/mon")}
    results: dict[str, str | None] = {}
    for node in params.get("nodes") or cx.node_names():
        if node not in monmap:
            results[node] = f"{node} has no Ceph monitor: create one there (pveceph mon create on {node})"
        elif not monmap[node].get("quorum"):
            results[node] = (f"the monitor on {node} is not in the quorum: is {node} up, ceph-mon@{node} running "
                             "(systemctl status ceph-mon@" + node + ") and its public network reachable?")
        else:
            results[node] = None
    return items(results)


@probe("ceph.osds_up_in")
def ceph_osds_up_in(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Every OSD is up and in, and each of `nodes` (default: every node) has `per_node` (1) or more; an item each."""
    if ceph_status(cx) is None:
        return Outcome(0, 1, [CEPH_NOT_SET_UP])
    leaves = osd_leaves(cx.api(f"/nodes/{cx.node_names()[0]}/ceph/osd").get("root", {}))
    results: dict[str, str | None] = {}
    for osd in leaves:
        name, host = f"osd.{osd['id']}", osd.get("host", "?")
        if osd.get("status") != "up":
            results[name] = (f"{name} on {host} is down: is {host} up and ceph-osd@{osd['id']} running there "
                             f"(systemctl start ceph-osd@{osd['id']})?")
        elif not osd.get("in"):
            results[name] = f"{name} on {host} is up but out of the cluster: put it back with `ceph osd in {osd['id']}`"
        else:
            results[name] = None
    per_node = int(params.get("per_node", 1))
    for node in params.get("nodes") or cx.node_names():
        count = sum(1 for osd in leaves if osd.get("host") == node)
        results[f"{node} OSDs"] = None if count >= per_node else (
            f"{node} has {count} OSD(s), the lab asks for {per_node}: create one on its data disk "
            f"(pveceph osd create /dev/sdb on {node})")
    return items(results)


@probe("ceph.pool")
def ceph_pool(cx: ClusterAccess, params: dict[str, Any]) -> Outcome:
    """Pool `name` exists with `size` and `min_size` (when given)."""
    if ceph_status(cx) is None:
        return Outcome(0, 1, [CEPH_NOT_SET_UP])
    name = str(params["name"])
    pools = {p["pool_name"]: p for p in cx.api(f"/nodes/{cx.node_names()[0]}/ceph/pool")}
    if name not in pools:
        return Outcome(0, 1, [f"there is no Ceph pool '{name}': create it (pveceph pool create {name})"])
    results: dict[str, str | None] = {}
    for key in ("size", "min_size"):
        if params.get(key) is not None:
            have, want = pools[name].get(key), int(params[key])
            results[key] = None if have == want else (
                f"pool '{name}' has {key} {have}, the lab asks for {want}: "
                f"pveceph pool set {name} --{key} {want}")
    return items(results or {"exists": None})
