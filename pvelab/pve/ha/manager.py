"""The CRM master's work in one round: node states, the service state machine, fencing and recovery,
node selection. Pure logic over the manager status; every read and write goes through an `Env`
(the real one talks to /etc/pve, the tests pass a fake), as pve-ha-manager's Manager does."""

from __future__ import annotations

import base64
import itertools
import os
import time
from typing import Any, Protocol

from pvelab.pve.ha import crs
from pvelab.pve.ha.crs import used_service_nodes
from pvelab.pve.ha.rules import CompiledRules

FENCE_DELAY = 60.0  # a node offline this long has its services fenced
GONE_PRUNE = 3600.0
# LRM exit codes (pve-ha-manager's Tools.pm)
SUCCESS, ERROR, ETRY_AGAIN, EWRONG_NODE, EUNKNOWN_SERVICE_TYPE, EUNKNOWN_COMMAND, EINVALID_PARAMETER, \
    EUNKNOWN_SERVICE, IGNORED = range(9)
SERVICE_STATES = ("stopped", "request_stop", "request_start", "request_start_balance", "started", "fence",
                  "recovery", "migrate", "relocate", "freeze", "error")
REMOVABLE_LOCKS = ("backup", "mounted", "migrate", "clone", "rollback", "snapshot", "snapshot-delete",
                   "suspending", "suspended")
_uid_counter = itertools.count(1)


class Env(Protocol):
    nodename: str

    def now(self) -> float: ...
    def log(self, level: str, message: str) -> None: ...
    def node_info(self) -> dict[str, bool]: ...  # cluster node -> online
    def lrm_status(self, node: str) -> dict[str, Any] | None: ...
    def service_config(self) -> dict[str, dict[str, str]]: ...  # sid -> options with defaults + node, type
    def compiled_rules(self, service_config: dict[str, dict[str, str]], nodes: list[str]) -> CompiledRules: ...
    def crm_commands(self) -> list[str]: ...
    def set_requested_state(self, sid: str, state: str) -> None: ...
    def get_agent_lock(self, node: str) -> bool: ...
    def steal_service(self, sid: str, source: str, target: str) -> None: ...
    def remove_locks(self, sid: str, node: str, locks: tuple[str, ...]) -> str | None: ...
    def write_manager_status(self, status: dict[str, Any]) -> None: ...
    def crs_settings(self) -> dict[str, str]: ...  # datacenter.cfg's crs
    def node_stats(self, mode: str) -> dict[str, dict[str, Any]]: ...  # node -> maxcpu, maxmem (+ cpu, mem)
    def service_stats(self, mode: str) -> dict[str, dict[str, Any]]: ...  # sid -> node, state, running, usage


def new_uid(state: str) -> str:
    """A fresh id for a state change: the LRM runs each uid once (22 chars of base64 MD5, as PVE)."""
    import hashlib  # only a master changing states needs it; idle daemons stay small

    seed = f"{state}{os.getpid()}{time.time()}{next(_uid_counter)}".encode()
    return base64.b64encode(hashlib.md5(seed).digest()).decode().rstrip("=")  # noqa: S324 - an id, not security


def count_active_services(ss: dict[str, dict[str, Any]], node: str) -> int:
    """Services that keep a node's LRM active: on it or migrating to it, not stopped/frozen/failed."""
    return sum(1 for sd in ss.values()
               if (sd.get("node") == node or sd.get("target") == node)
               and sd.get("state") not in (None, "stopped", "freeze", "error", "request_start"))


def count_fenced_services(ss: dict[str, dict[str, Any]], node: str) -> int:
    return sum(1 for sd in ss.values() if sd.get("node") == node and sd.get("state") == "fence")


class NodeStatus:
    """The CRM's view of each node: online, unknown, fence, maintenance or gone."""

    def __init__(self, env: Env, status: dict[str, str]) -> None:
        self.env, self.status = env, status
        self.last_online: dict[str, float] = {}

    def state(self, node: str) -> str:
        return self.status.get(node, "unknown")

    def is_online(self, node: str) -> bool:
        return self.state(node) == "online"

    def is_operational(self, node: str) -> bool:
        return self.state(node) in ("online", "maintenance")

    def online_nodes(self) -> list[str]:
        return sorted(n for n, s in self.status.items() if s == "online")

    def offline_delayed(self, node: str, delay: float = FENCE_DELAY) -> bool:
        """Offline for `delay` seconds as this master saw it (a new master starts counting now)."""
        if self.state(node) == "online":
            return False
        last = self.last_online.get(node)
        if last is None:
            self.last_online[node] = self.env.now()
            return False
        return self.env.now() - last >= delay

    def set_state(self, node: str, state: str) -> None:
        old = self.state(node)
        if old != state:
            self.status[node] = state
            self.env.log("info", f"node '{node}': state changed from '{old}' => '{state}'")

    def update(self, node_info: dict[str, bool], lrm_modes: dict[str, str]) -> None:
        for node in sorted(node_info):
            if not node_info[node]:
                continue
            self.last_online[node] = self.env.now()
            state, mode = self.state(node), lrm_modes.get(node, "unknown")
            if state == "online" and mode == "maintenance":
                self.set_state(node, "maintenance")
            elif state in ("unknown", "gone") or state == "maintenance" and mode != "maintenance":
                self.set_state(node, "online")
        for node in sorted(self.status):
            if node_info.get(node):
                continue
            state = self.state(node)
            if state == "online" or (state == "maintenance" and lrm_modes.get(node, "unknown") != "maintenance"):
                self.set_state(node, "unknown")
            elif state == "unknown" and node not in node_info:
                self.set_state(node, "gone")
            elif state == "gone" and self.offline_delayed(node, GONE_PRUNE):
                del self.status[node]
                self.last_online.pop(node, None)
                self.env.log("notice", f"deleting gone node '{node}', not a cluster member anymore.")

    def fence(self, node: str) -> bool:
        """Fencing is done when the master holds the node's agent lock (it expired or was released)."""
        if self.state(node) != "fence":
            self.set_state(node, "fence")
        if not self.env.get_agent_lock(node):
            return False
        self.env.log("info", f"fencing: acknowledged - got agent lock for node '{node}'")
        self.set_state(node, "unknown")
        return True


class Manager:
    def __init__(self, env: Env, old_status: dict[str, Any]) -> None:
        self.env = env
        self.ns = NodeStatus(env, dict(old_status.get("node_status") or {}))
        self.ss: dict[str, dict[str, Any]] = dict(old_status.get("service_status") or {})
        self.ms: dict[str, Any] = {"master_node": env.nodename}
        if "node_request" in old_status:  # a node in maintenance stays so until the admin ends it
            self.ms["node_request"] = old_status["node_request"]
        if "disarm" in old_status:  # a disarmed stack stays so across masters
            self.ms["disarm"] = old_status["disarm"]
        self.all_lrms_disarmed = False  # the CRM lets its watchdog go while this holds
        self.rules = CompiledRules()
        self.usage = crs.Usage("basic", env.log, {}, {})
        self.crs: dict[str, Any] = {}
        self.imbalanced_rounds = 0  # rounds the imbalance stayed over the threshold (not kept across masters)
        self.update_crs_mode()

    # -- helpers -----------------------------------------------------------------------------------
    def change_state(self, sid: str, new_state: str, **params: Any) -> None:
        """A new CRM state (and a new uid, so the LRM acts on it); failed_nodes and maintenance_node stay."""
        sd = self.ss[sid]
        old_state = sd["state"]
        kept: dict[str, Any] = {k: sd[k] for k in ("failed_nodes", "maintenance_node") if k in sd}
        node = sd.get("node")
        sd.clear()
        sd.update({"state": new_state, "node": node, **kept, **params})
        self.usage.remove_service_usage(sid)
        self.usage.add_service_usage(sid, sd)
        sd["uid"] = new_uid(new_state)
        text = ", ".join(f"{k} = {v}" for k, v in sorted(params.items()))
        self.env.log("info", f"service '{sid}': state changed from '{old_state}' to '{new_state}'"
                             + (f"  ({text})" if text else ""))

    def update_crs_mode(self) -> None:
        """datacenter.cfg's crs, read each round: the scheduler mode and its rebalancing options."""
        settings = self.env.crs_settings()
        old, new = self.crs.get("mode"), settings.get("ha") or "basic"
        self.crs = {"mode": new, "rebalance_on_start": settings.get("ha-rebalance-on-start") == "1",
                    "auto_rebalance": settings.get("ha-auto-rebalance") == "1",
                    "threshold": float(settings.get("ha-auto-rebalance-threshold", 0.3)),
                    "method": settings.get("ha-auto-rebalance-method", "bruteforce"),
                    "hold": float(settings.get("ha-auto-rebalance-hold-duration", 3)),
                    "margin": float(settings.get("ha-auto-rebalance-margin", 0.1))}
        if old is None and new != "basic":
            self.env.log("info", f"using scheduler mode '{new}'")
        elif old is not None and old != new:
            self.env.log("info", f"switching scheduler mode from '{old}' to '{new}'")

    def recompute_usage(self) -> None:
        """The online nodes' usage in the scheduler mode; 'basic' if the mode's figures are missing."""
        online = self.ns.online_nodes()
        mode, usage = self.crs["mode"], None
        if mode in ("static", "dynamic"):
            try:
                stats = self.env.service_stats(mode)
                figures = self.env.node_stats(mode)
                usage = crs.Usage(mode, self.env.log, {n: crs.node_stats(mode, figures.get(n), n) for n in online},
                                  stats)
            except (OSError, ValueError) as exc:
                self.env.log("warning", f"fallback to 'basic' scheduler mode, init for '{mode}' failed - {exc}")
        elif mode != "basic":
            self.env.log("warning", f"got unknown scheduler mode '{mode}', using 'basic'")
        if usage is None:
            stats = self.env.service_stats("basic")
            usage = crs.Usage("basic", self.env.log, {n: crs.Stats() for n in online}, stats)
        for sid in sorted(self.ss):
            usage.add_service_usage(sid, self.ss[sid])
        for sid in sorted(stats):  # guests outside HA use their nodes too
            if sid not in self.ss:
                usage.add_service_usage(sid, {k: stats[sid][k] for k in ("node", "state", "running")
                                              if k in stats[sid]})
        self.usage = usage

    def node_affinity(self, sid: str, online: set[str]) -> tuple[dict[str, int], set[str]]:
        """pve-ha-manager's get_node_affinity: the online nodes `sid` may use (with priorities), and
        those of the highest priority."""
        affinity = self.rules.node_affinity.get(sid)
        if affinity is None:
            allowed = dict.fromkeys(online, 0)
        else:
            allowed = {n: p for n, p in affinity.nodes.items() if n in online}
            if not affinity.strict:
                allowed.update({n: -1 for n in online if n not in allowed})
        top = max(allowed.values(), default=0)
        return allowed, {n for n, p in allowed.items() if p == top}

    def select_node(self, sid: str, cd: dict[str, str], preference: str) -> str | None:
        """Where a service should run: rule priorities, then resource affinity, then load, then name."""
        sd = self.ss[sid]
        current = sd.get("node")
        allowed, preferred = self.node_affinity(sid, self.usage.online())
        if not allowed:
            return None
        together, apart = self.affine_nodes(sid)
        if preference == "none" and cd.get("failback") == "0" and current in allowed \
                and self.affinity_allows(together, apart, current):
            return current
        if preference == "try-next":
            preferred -= set(sd.get("failed_nodes") or [])
        preferred -= apart
        together = {n: c for n, c in together.items() if n in preferred}  # apply_positive_resource_affinity,
        # after the negative one: the majority among the nodes still possible
        if together:
            best = max(sorted(together), key=lambda n: together[n])
            preferred &= {best}
        fallback = sd.get("maintenance_node")
        if fallback in preferred:
            return fallback
        if preference == "none" and current in preferred:
            return current
        scores = self.usage.scores(sid)
        ordered = sorted(preferred, key=lambda n: (scores.get(n, 0.0), n))
        if not ordered:
            return None
        if preference == "try-next" and current in ordered and ordered.index(current) < len(ordered) - 1:
            return ordered[ordered.index(current) + 1]
        return ordered[0]

    def affine_nodes(self, sid: str) -> tuple[dict[str, int], set[str]]:
        """pve-ha-manager's get_resource_affinity: online nodes holding resources to keep together with
        `sid` (a moving one counts at its target only, so it is not pulled back), with counts, and the
        online nodes to keep away from."""
        online = self.usage.online()
        together: dict[str, int] = {}
        apart: set[str] = set()
        for other in self.rules.together.get(sid, set()):
            current, target = used_service_nodes(self.ss.get(other) or {}, online)
            node = target or current
            if node:
                together[node] = together.get(node, 0) + 1
        for other in self.rules.apart.get(sid, set()):
            apart |= {n for n in used_service_nodes(self.ss.get(other) or {}, online) if n}
        return together, apart

    @staticmethod
    def affinity_allows(together: dict[str, int], apart: set[str], node: str) -> bool:
        return node not in apart and (not together or node in together)

    # -- crm commands --------------------------------------------------------------------------------
    def apply_commands(self, commands: list[str]) -> None:
        for cmd in commands:
            words = cmd.split()
            if len(words) == 3 and words[0] in ("migrate", "relocate"):
                task, sid, node = words
                if sid not in self.ss:
                    self.env.log("err", f"crm command error - no such service: {cmd}")
                elif not self.ns.is_online(node):
                    self.env.log("err", f"crm command error - node not online: {cmd}")
                elif node == self.ss[sid].get("node"):
                    self.env.log("info", f"ignore crm command - service already on target node: {cmd}")
                else:
                    self.queue_motion(cmd, task, sid, node)
            elif len(words) == 3 and words[0] == "stop":
                if words[1] in self.ss:
                    self.env.log("info", f"got crm command: {cmd}")
                    self.ss[words[1]]["cmd"] = ["stop", words[2]]
                else:
                    self.env.log("err", f"crm command error - no such service: {cmd}")
            elif len(words) == 2 and words[0] == "enable-node-maintenance":
                node, state = words[1], self.ns.state(words[1])
                if self.ms.get("disarm"):
                    self.env.log("warn", f"ignoring maintenance command for node {node} - HA stack is disarmed")
                elif state == "online":
                    self.ms.setdefault("node_request", {}).setdefault(node, {})["maintenance"] = 1
                elif state == "maintenance":
                    self.env.log("info", f"ignoring crm command - node {node} is already in maintenance state")
                else:
                    self.env.log("err", f"crm command error - node not online: {cmd}")
            elif len(words) == 2 and words[0] == "disable-node-maintenance":
                node, state = words[1], self.ns.state(words[1])
                if state != "maintenance":
                    self.env.log("warn", f"clearing maintenance of node {node} requested, but it's in state {state}")
                self.ms.setdefault("node_request", {}).setdefault(node, {}).pop("maintenance", None)
            elif len(words) == 2 and words[0] == "disarm-ha" and words[1] in ("freeze", "ignore"):
                if self.ms.get("disarm"):
                    self.env.log("notice", "ignoring disarm-ha command - already in disarm state "
                                           f"({self.ms['disarm']['state']})")
                else:
                    self.env.log("info", f"got crm command: disarm-ha {words[1]}")
                    if words[1] == "ignore":
                        for sid in sorted(self.ss):
                            self.env.log("info", f"disarm: suspending HA tracking for service '{sid}'")
                    self.ms["disarm"] = {"mode": words[1], "state": "disarming"}
            elif words == ["arm-ha"]:
                self.arm()
            else:
                self.env.log("err", f"unable to parse crm command: {cmd}")

    def arm(self) -> None:
        """arm-ha: the stack tracks its services again; after ignore mode, where their guests were moved
        meanwhile is taken from the config."""
        if not self.ms.get("disarm"):
            self.env.log("notice", "ignoring arm-ha command - HA stack is not disarmed")
            return
        self.env.log("info", "got crm command: arm-ha")
        if self.ms["disarm"].get("mode") == "ignore":
            sc = self.env.service_config()
            for sid in sorted(self.ss):
                moved_to = (sc.get(sid) or {}).get("node")
                if moved_to and moved_to != self.ss[sid].get("node"):
                    self.env.log("info", f"service '{sid}': updating node '{self.ss[sid].get('node')}' => "
                                         f"'{moved_to}' (changed while disarmed)")
                    self.ss[sid]["node"] = moved_to
        del self.ms["disarm"]

    def queue_motion(self, cmd: str, task: str, sid: str, target: str) -> None:
        for other in sorted(self.rules.apart.get(sid, set())):
            sd = self.ss.get(other)
            if sd and target in (sd.get("node"), sd.get("target")):
                self.env.log("err", f"crm command '{cmd}' error - service '{other}' on node '{target}' in"
                                    f" negative affinity with service '{sid}'")
                return
        self.env.log("info", f"got crm command: {cmd}")
        self.ss[sid]["cmd"] = [task, target]
        for other in sorted(self.rules.together.get(sid, set())):
            sd = self.ss.get(other)
            if sd and target not in (sd.get("node"), sd.get("target")):
                self.env.log("info", f"crm command '{cmd}' - {task} service '{other}' to node '{target}'"
                                     f" (service '{other}' in positive affinity with service '{sid}')")
                sd["cmd"] = [task, target]

    # -- one round -----------------------------------------------------------------------------------
    def read_lrm_status(self, nodes: set[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The LRMs' results by uid, and each node's LRM mode."""
        results: dict[str, dict[str, Any]] = {}
        modes: dict[str, str] = {}
        for node in sorted(nodes):
            lrm = self.env.lrm_status(node) or {}
            modes[node] = lrm.get("mode") or "active"
            for uid, result in (lrm.get("results") or {}).items():
                results.setdefault(uid, result)
        return results, modes

    def manage(self) -> None:
        env = self.env
        node_info = env.node_info()
        results, modes = self.read_lrm_status(set(self.ns.status) | set(node_info))
        self.ns.update(node_info, modes)
        if not self.ns.is_operational(env.nodename):
            env.log("info", "master seems offline")
            return
        self.update_crs_mode()
        sc = env.service_config()
        if not self.ms.get("disarm"):
            self.sync_services(sc)
        self.recompute_usage()
        self.rules = env.compiled_rules(sc, sorted(self.ns.status))
        self.apply_commands(env.crm_commands())
        deferred: set[str] | None = None
        if self.ms.get("disarm"):
            deferred = self.handle_disarm(modes)
            if deferred is None:  # disarm active and progressing: no state machine this round
                self.flush()
                return
        else:  # a deferred disarm starts no new migrations
            self.load_balance()
        self.all_lrms_disarmed = False
        while True:
            repeat = False
            for sid in sorted(self.ss):
                if deferred is not None and sid not in deferred:
                    continue  # a deferred disarm lets only the services in transit finish
                sd = self.ss[sid]
                cd = sc.get(sid) or {"state": "disabled", "max_restart": "1", "max_relocate": "1", "failback": "1"}
                result = results.get(sd.get("uid", ""))
                last = sd["state"]
                self.next_state(sid, cd, sd, result, modes)
                mode = modes.get(sd.get("node") or "")
                if mode == "restart" and sd["state"] in ("started", "stopped", "request_stop"):
                    self.change_state(sid, "freeze")
                repeat = repeat or sd["state"] != last
            fenced: dict[str, bool] = {}
            for sid in sorted(self.ss):
                sd = self.ss[sid]
                if sd["state"] != "fence":
                    continue
                if sd["node"] not in fenced:
                    fenced[sd["node"]] = self.ns.fence(sd["node"])
                if fenced[sd["node"]]:
                    self.change_state(sid, "recovery")
                    repeat = True
            for node in sorted(n for n in self.ns.status if n not in fenced and self.ns.state(n) == "fence"):
                env.log("notice", f"node '{node}' in fence state but no services to-fence! admin interference?!")
                repeat = self.ns.fence(node) or repeat
            if not repeat:
                break
        self.flush()

    def sync_services(self, sc: dict[str, dict[str, str]]) -> None:
        """New resources enter the state machine; removed or ignored ones leave it."""
        for sid, cd in sc.items():
            if sid in self.ss or cd["state"] == "ignored" or not cd.get("node"):
                continue
            self.env.log("info", f"adding new service '{sid}' on node '{cd['node']}'")
            self.ss[sid] = {"state": "request_start" if cd["state"] == "started" else "request_stop",
                            "node": cd["node"], "uid": new_uid("started")}
        for sid in sorted(self.ss):
            if sid in sc and sc[sid]["state"] != "ignored":
                continue
            reason = "ignored state requested" if sid in sc else "no config"
            self.env.log("info", f"removing stale service '{sid}' ({reason})")
            del self.ss[sid]

    def flush(self) -> None:
        self.ms.update(node_status=self.ns.status, service_status=self.ss, timestamp=int(self.env.now()))
        self.env.write_manager_status(self.ms)

    def handle_disarm(self, modes: dict[str, str]) -> set[str] | None:
        """Disarming (pve-ha-manager's handle_disarm): services in transit defer it (the state machine
        then runs for them alone: their set is returned); else freeze mode freezes every resting
        service, ignore mode stops tracking them, and once every online LRM is in disarm mode the stack
        is fully disarmed. None: the normal state machine is skipped."""
        disarm = self.ms["disarm"]
        if disarm.get("mode") not in ("freeze", "ignore"):
            self.env.log("err", f"unknown disarm-mode '{disarm.get('mode')}', ignoring")
            return set(self.ss)
        deferred = set()
        for sid, sd in sorted(self.ss.items()):
            if sd["state"] in ("fence", "recovery"):
                self.env.log("warn", f"deferring disarm - service '{sid}' is in '{sd['state']}' state")
                deferred.add(sid)
            elif sd["state"] in ("migrate", "relocate"):
                self.env.log("info", f"deferring disarm - service '{sid}' is in '{sd['state']}' state")
                deferred.add(sid)
        if deferred:
            return deferred
        kept = ("state", "node", "uid", "maintenance_node")  # runtime data pruned, so a re-arm starts fresh
        for sid, sd in sorted(self.ss.items()):
            state = sd["state"]
            if disarm["mode"] == "freeze" and state in ("started", "stopped", "request_stop", "request_start",
                                                        "request_start_balance"):
                self.env.log("info", f"disarm: freezing service '{sid}' (was '{state}')")
                for key in [k for k in sd if k not in kept]:
                    del sd[key]
                sd.update(state="freeze", uid=new_uid("freeze"))
            elif disarm["mode"] == "ignore":
                for key in [k for k in sd if k not in kept]:
                    del sd[key]
        if all(modes.get(n) == "disarm" for n in self.ns.online_nodes()) and disarm["state"] != "disarmed":
            self.env.log("info", "all LRMs disarmed, HA stack is now fully disarmed")
            disarm["state"] = "disarmed"
        self.all_lrms_disarmed = disarm["state"] == "disarmed"  # once disarmed, it stays so
        return None

    # -- the state machine ---------------------------------------------------------------------------
    def next_state(self, sid: str, cd: dict[str, str], sd: dict[str, Any], result: dict[str, Any] | None,
                   modes: dict[str, str]) -> None:
        state = sd["state"]
        if state == "stopped":
            self.next_stopped(sid, cd, sd)
        elif state == "started":
            self.next_started(sid, cd, sd, result)
        elif state == "request_start":
            self.next_request_start(sid, cd, sd)
        elif state in ("migrate", "relocate", "request_start_balance"):
            self.next_migrate(sid, cd, sd, result)
        elif state == "recovery":
            self.next_recovery(sid, cd, sd)
        elif state == "request_stop":
            if result is not None:
                if result["exit_code"] == SUCCESS:
                    self.change_state(sid, "stopped")
                else:
                    self.env.log("err", f"service '{sid}' stop failed (exit code {result['exit_code']})")
                    self.change_state(sid, "error")
            elif self.ns.offline_delayed(sd["node"]):
                self.change_state(sid, "fence")
        elif state == "freeze":
            if modes.get(sd.get("node") or "") == "active":
                self.change_state(sid, "started" if cd["state"] == "started" else "request_stop")
        elif state == "error" and cd["state"] == "disabled":
            sd.pop("failed_nodes", None)
            self.change_state(sid, "stopped")

    def next_request_start(self, sid: str, cd: dict[str, str], sd: dict[str, Any]) -> None:
        current = sd["node"]
        if self.crs["rebalance_on_start"]:
            node = self.select_node(sid, cd, "best-score")
            self.env.log("info", f"service {sid}: re-balance selected {'new' if node != current else 'current'}"
                                 f" node {node} for startup")
            if node != current:
                self.change_state(sid, "request_start_balance", node=current, target=node)
                return
        self.change_state(sid, "started", node=current)

    def load_balance(self) -> None:
        """Auto-rebalancing (static and dynamic modes): once the nodes' imbalance stayed over the
        threshold for `hold` rounds, the best migration of a running service (with the services kept
        together with it) - if it lowers the imbalance by at least `margin`."""
        opts = self.crs
        if not opts["auto_rebalance"] or self.usage.mode not in ("static", "dynamic") or self.motion_pending():
            return
        before = self.usage.imbalance()
        if before <= opts["threshold"]:
            self.imbalanced_rounds = 0
            return
        self.imbalanced_rounds += 1
        if self.imbalanced_rounds < opts["hold"]:
            return
        self.imbalanced_rounds = 0
        best = self.usage.best_migration(self.migration_candidates(), opts["method"])
        if best is None or (before - best.imbalance) / before < opts["margin"]:
            return
        task = "migrate" if best.sid.startswith("vm:") else "relocate"
        self.env.log("info", f"auto rebalance - {task} {best.sid} to {best.target} (expected change for imbalance"
                             f" from {before:.2f} to {best.imbalance:.2f})")
        self.queue_motion(f"{task} {best.sid} {best.target}", task, best.sid, best.target)

    def motion_pending(self) -> bool:
        return any(sd.get("state") in ("migrate", "relocate") or (sd.get("cmd") or [""])[0] in ("migrate", "relocate")
                   for sd in self.ss.values())

    def migration_candidates(self) -> list[tuple[str, list[str], list[str]]]:
        """Running services resting on one node with all the running services kept together with them
        (the bundle's first by name leads), and the nodes the bundle may move to."""
        online = self.usage.online()
        out = []
        bundles: dict[str, list[str]] = {}
        for sid in sorted(self.ss):
            sd = self.ss[sid]
            if sd["state"] != "started":
                continue
            members, nodes = [sid], {sd["node"]}
            mates = [self.ss[m] for m in self.rules.together.get(sid, set()) if m in self.ss]
            if any(m["state"] in ("migrate", "relocate") for m in mates):
                continue
            for mate in sorted(m for m in self.rules.together.get(sid, set()) if m in self.ss):
                if self.ss[mate]["state"] == "started":
                    nodes.add(self.ss[mate]["node"])
                    members.append(mate)
            if len(nodes) == 1:
                members.sort()
                bundles[members[0]] = members
        for leader in sorted(bundles):
            _, targets = self.node_affinity(leader, online)
            _, apart = self.affine_nodes(leader)
            targets -= apart | {self.ss[leader]["node"]}
            if targets and leader in self.usage.resources \
                    and all(self.usage.resources.get(m) and self.usage.resources[m].target is None
                            for m in bundles[leader]):
                out.append((leader, bundles[leader], sorted(targets)))
        return out

    def next_migrate(self, sid: str, cd: dict[str, str], sd: dict[str, Any], result: dict[str, Any] | None) -> None:
        wanted = "started" if cd["state"] == "started" else "request_stop"
        if result is not None:
            code = result["exit_code"]
            if code == SUCCESS:
                self.change_state(sid, wanted, node=sd["target"])
                return
            if code == EWRONG_NODE:
                self.env.log("err", f"service '{sid}' - migration failed: service registered on wrong node!")
                self.change_state(sid, "error")
            elif code == IGNORED:
                self.env.log("info", f"service '{sid}' - rebalance-on-start request ignored"
                                     " - service already running")
                self.change_state(sid, wanted, node=sd["node"])
            else:
                self.env.log("err", f"service '{sid}' - migration failed (exit code {code})")
                self.change_state(sid, wanted, node=sd["node"])
                return
        if self.ns.offline_delayed(sd["node"]):
            self.change_state(sid, "fence")

    def next_stopped(self, sid: str, cd: dict[str, str], sd: dict[str, Any]) -> None:
        if cd.get("node") and sd["node"] != cd["node"]:  # moved while fenced mid-migration
            self.env.log("info", f"fixup service '{sid}' location ({sd['node']} => {cd['node']})")
            sd["node"] = cd["node"]
        if sd.get("cmd"):
            cmd, arg = sd.pop("cmd")
            if cmd in ("migrate", "relocate"):
                if self.motion_allowed(sid, sd, cmd, arg):
                    self.change_state(sid, cmd, node=sd["node"], target=arg)
                    return
            else:
                self.env.log("info", f"ignore service '{sid}' {cmd} request - service already stopped")
        if cd["state"] == "disabled":
            return
        if self.ns.offline_delayed(sd["node"]) and self.ns.state(sd["node"]) != "maintenance":
            self.change_state(sid, "fence")
        elif cd["state"] == "started":
            self.change_state(sid, "request_start", node=sd["node"])

    def next_started(self, sid: str, cd: dict[str, str], sd: dict[str, Any], result: dict[str, Any] | None) -> None:
        if not self.ns.is_online(sd["node"]):
            if self.ns.offline_delayed(sd["node"]):
                self.change_state(sid, "fence")
            if self.ns.state(sd["node"]) != "maintenance":
                return
            sd["maintenance_node"] = sd["node"]  # to come back to when maintenance ends
        if cd["state"] in ("disabled", "stopped"):
            self.change_state(sid, "request_stop")
            return
        if sd.get("cmd"):
            self.run_command(sid, sd)
            return
        preference = "none"
        if result is not None:
            code = result["exit_code"]
            if code == SUCCESS:
                if sd.get("failed_nodes"):
                    self.env.log("info", f"relocation policy successful for '{sid}' on node '{sd['node']}',"
                                         f" failed nodes: {', '.join(sd['failed_nodes'])}")
                sd.pop("failed_nodes", None)
                sd["running"] = 1
            elif code in (ERROR, EWRONG_NODE):
                sd.pop("running", None)
                sd.setdefault("failed_nodes", []).append(sd["node"])
                if len(sd["failed_nodes"]) <= int(cd["max_relocate"]):
                    preference = "try-next"
                    self.env.log("warning", f"starting service {sid} on node '{sd['node']}' failed,"
                                            " relocating service.")
                else:
                    self.env.log("err", f"recovery policy for service {sid} failed, entering error state."
                                        f" Failed nodes: {', '.join(sd['failed_nodes'])}")
                    self.change_state(sid, "error")
                    return
            else:
                sd.setdefault("failed_nodes", []).append(sd["node"])
                self.env.log("err", f"service '{sid}' got unrecoverable error (exit code {code})")
                self.change_state(sid, "error")
                return
        node = self.select_node(sid, cd, preference)
        if node and node != sd["node"]:
            self.move(sid, cd, sd, node)
            return
        if preference == "try-next" and node is None:
            self.env.log("warning", f"Start Error Recovery: Tried all available nodes for service '{sid}', retry"
                                    f" start on current node. Tried nodes: {', '.join(sd['failed_nodes'])}")
        if sd.get("maintenance_node") == sd["node"] and self.ns.is_online(sd["node"]):
            self.env.log("info", f"service '{sid}': clearing stale maintenance node '{sd['node']}' setting"
                                 " (is current node)")
            del sd["maintenance_node"]
        if result is not None:  # a new uid: the LRM checks again (and restarts a guest that died)
            sd["uid"] = new_uid(sd["state"])

    def run_command(self, sid: str, sd: dict[str, Any]) -> None:
        cmd, arg = sd.pop("cmd")
        if cmd in ("migrate", "relocate"):
            if self.motion_allowed(sid, sd, cmd, arg):
                self.env.log("info", f"{cmd} service '{sid}' to node '{arg}'")
                self.change_state(sid, cmd, node=sd["node"], target=arg)
        elif cmd == "stop":
            if str(arg) == "0":
                self.env.log("info", f"request immediate service hard-stop for service '{sid}'")
            else:
                self.env.log("info", f"request graceful stop with timeout '{arg}' for service '{sid}'")
            self.change_state(sid, "request_stop", timeout=arg)
            self.env.set_requested_state(sid, "stopped")

    def motion_allowed(self, sid: str, sd: dict[str, Any], cmd: str, target: str) -> bool:
        """A queued migrate/relocate goes ahead unless its target is offline or already the service's node."""
        if not self.ns.is_online(target):
            self.env.log("err", f"ignore service '{sid}' {cmd} request - node '{target}' not online")
            return False
        if sd["node"] == target:
            self.env.log("info", f"ignore service '{sid}' {cmd} request - service already on node '{target}'")
            return False
        return True

    def move(self, sid: str, cd: dict[str, str], sd: dict[str, Any], node: str) -> None:
        fallback = sd.get("maintenance_node")
        if fallback is not None and node == fallback:
            self.env.log("info", f"moving service '{sid}' back to '{fallback}', node came back from maintenance.")
            del sd["maintenance_node"]
        elif fallback is not None and sd["node"] != fallback:
            self.env.log("info", f"dropping maintenance fallback node '{fallback}' for '{sid}'")
            del sd["maintenance_node"]
        if sid.startswith("vm:"):
            self.env.log("info", f"migrate service '{sid}' to node '{node}' (running)")
            self.change_state(sid, "migrate", node=sd["node"], target=node)
        else:
            self.env.log("info", f"relocate service '{sid}' to node '{node}'")
            self.change_state(sid, "relocate", node=sd["node"], target=node)

    def next_recovery(self, sid: str, cd: dict[str, str], sd: dict[str, Any]) -> None:
        fenced = sd["node"]
        target = self.select_node(sid, cd, "best-score")
        if target is None:
            self.env.log("err", f"recovering service '{sid}' from fenced node '{fenced}' failed,"
                                " no recovery node found")
            if cd["state"] == "disabled":
                sd.pop("failed_nodes", None)
                self.change_state(sid, "stopped")
            return
        if target == fenced:
            self.env.log("info", f"recover service '{sid}' to previous failed and fenced node '{fenced}' again")
        else:
            self.env.log("info", f"recover service '{sid}' from fenced node '{fenced}' to node '{target}'")
        removed = self.env.remove_locks(sid, fenced, REMOVABLE_LOCKS)
        if removed:
            self.env.log("warning", f"removed leftover lock '{removed}' from recovered service '{sid}'"
                                    " to allow its start.")
        self.env.steal_service(sid, fenced, target)
        cd["node"] = sd["node"] = target
        self.change_state(sid, "started" if cd["state"] == "started" else "request_stop", node=target)
