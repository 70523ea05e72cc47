"""The CRM and LRM daemons of pvelab.pve.ha driven whole, without a node, through a simulated cluster
that gives each daemon its DaemonEnv (clock, locks with pmxcfs's 120 s lifetime, quorum, HA's status
files, resource agents): the daemons' own state machines, the Manager inside the master, the agent
runs - the parts pve-ha-manager's scenarios exercise. The scenarios' simulator builds on this."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pvelab.pve.ha.crm import Crm
from pvelab.pve.ha.lrm import Lrm
from pvelab.pve.ha.manager import Manager
from pvelab.pve.ha.rules import CompiledRules
from tests.ha_basic_crs import BasicCrs

LOCK_LIFETIME = 120


@dataclass
class SimCluster:
    nodes: tuple[str, ...]
    time: float = 0.0
    up: dict[str, bool] = field(default_factory=dict)  # power and network together, for now
    locks: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (holder, last renewal)
    manager_status: dict[str, Any] = field(default_factory=dict)
    lrm_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    guest_node: dict[str, str] = field(default_factory=dict)
    running: dict[str, str] = field(default_factory=dict)  # sid -> node it runs on
    log: list[tuple[int, str, str]] = field(default_factory=list)

    def quorate(self, node: str) -> bool:
        return self.up.get(node, False) and sum(self.up.values()) * 2 > len(self.nodes)

    def take_lock(self, name: str, node: str) -> bool:
        holder = self.locks.get(name)
        if holder is None or holder[0] == node or self.time - holder[1] > LOCK_LIFETIME:
            self.locks[name] = (node, self.time)
            return True
        return False


class FakeAgent:
    """A resource agent that has already done its job: started or stopped the guest where asked."""

    def __init__(self, cluster: SimCluster, node: str, command: list[str]) -> None:
        sid, state = command[3], command[4]
        if state == "started":
            cluster.running[sid] = node
        elif state in ("stopped", "request_stop"):
            cluster.running.pop(sid, None)

    def poll(self) -> int:
        return 0


class SimManagerEnv(BasicCrs):
    def __init__(self, cluster: SimCluster, node: str) -> None:
        self.cluster, self.nodename = cluster, node

    def now(self) -> float:
        return self.cluster.time

    def log(self, level: str, message: str) -> None:
        self.cluster.log.append((int(self.cluster.time), f"{self.nodename}/crm", message))

    def node_info(self) -> dict[str, bool]:
        return {n: self.cluster.up.get(n, False) for n in self.cluster.nodes}

    def lrm_status(self, node: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.cluster.lrm_status.get(node))

    def service_config(self) -> dict[str, dict[str, str]]:
        defaults = {"state": "started", "max_restart": "1", "max_relocate": "1", "failback": "1"}
        return {sid: {**defaults, **opts, "type": sid[:2], "node": self.cluster.guest_node[sid]}
                for sid, opts in self.cluster.resources.items()}

    def compiled_rules(self, service_config: Any, nodes: list[str]) -> CompiledRules:
        return CompiledRules()

    def crm_commands(self) -> list[str]:
        return []

    def set_requested_state(self, sid: str, state: str) -> None:
        self.cluster.resources[sid]["state"] = state

    def get_agent_lock(self, node: str) -> bool:
        return self.cluster.take_lock(f"ha_agent_{node}_lock", self.nodename)

    def steal_service(self, sid: str, source: str, target: str) -> None:
        self.cluster.guest_node[sid] = target

    def remove_locks(self, sid: str, node: str, locks: tuple[str, ...]) -> str | None:
        return None

    def write_manager_status(self, status: dict[str, Any]) -> None:
        self.cluster.manager_status = copy.deepcopy(status)


class Watchdog:
    def update(self) -> None:
        pass

    def close(self) -> None:
        pass


class SimDaemonEnv:
    """One node's DaemonEnv in the simulated cluster."""

    def __init__(self, cluster: SimCluster, node: str, daemon: str) -> None:
        self.cluster, self.node, self.daemon = cluster, node, daemon

    def now(self) -> float:
        return self.cluster.time

    def sleep(self, seconds: float) -> None:
        pass  # the simulation's rounds move the clock

    def sleep_until(self, deadline: float, stop: Any) -> None:
        pass

    def log(self, level: str, message: str) -> None:
        self.cluster.log.append((int(self.cluster.time), f"{self.node}/{self.daemon}", message))

    def quorate(self) -> bool:
        return self.cluster.quorate(self.node)

    def manager_status(self) -> dict[str, Any]:
        return copy.deepcopy(self.cluster.manager_status)

    def write_lrm_status(self, status: dict[str, Any]) -> None:
        self.cluster.lrm_status[self.node] = copy.deepcopy(status)

    def resources(self) -> dict[str, dict[str, str]]:
        return self.cluster.resources

    def crm_commands_queued(self) -> bool:
        return False

    def service_config(self) -> dict[str, dict[str, str]]:
        return SimManagerEnv(self.cluster, self.node).service_config()

    def datacenter_option(self, name: str) -> dict[str, str]:
        return {}

    def get_lock(self, name: str) -> bool:
        return self.quorate() and self.cluster.take_lock(name, self.node)

    def release_lock(self, name: str) -> bool:
        return self.cluster.locks.pop(name, None) is not None

    def open_watchdog(self) -> Watchdog:
        return Watchdog()

    def manager(self, status: dict[str, Any]) -> Manager:
        return Manager(SimManagerEnv(self.cluster, self.node), status)

    def start_agent(self, command: list[str]) -> FakeAgent:
        return FakeAgent(self.cluster, self.node, command)

    def shutdown_jobs(self) -> tuple[bool, bool]:
        return False, False


def simulate(cluster: SimCluster, daemons: dict[str, tuple[Crm, Lrm]], seconds: int) -> None:
    """Rounds of 10 s: each node's CRM, then its LRM, as pve-ha-manager's simulator runs them."""
    end = cluster.time + seconds
    while cluster.time < end:
        for node in cluster.nodes:
            if cluster.up.get(node):
                crm, lrm = daemons[node]
                crm.iteration()
                lrm.iteration()
        cluster.time += 10


def cluster_of(*nodes: str) -> tuple[SimCluster, dict[str, tuple[Crm, Lrm]]]:
    cluster = SimCluster(nodes=nodes, up=dict.fromkeys(nodes, True))
    daemons = {n: (Crm(n, SimDaemonEnv(cluster, n, "crm")), Lrm(n, SimDaemonEnv(cluster, n, "lrm")))  # type: ignore[arg-type]
               for n in nodes}
    return cluster, daemons


def test_one_crm_becomes_master_and_the_guests_node_starts_it() -> None:
    cluster, daemons = cluster_of("node1", "node2", "node3")
    cluster.resources["vm:101"] = {"state": "started"}
    cluster.guest_node["vm:101"] = "node2"
    simulate(cluster, daemons, 60)
    states = {n: daemons[n][0].state for n in cluster.nodes}
    assert states == {"node1": "master", "node2": "slave", "node3": "slave"}
    assert cluster.manager_status["service_status"]["vm:101"]["state"] == "started"
    assert cluster.running == {"vm:101": "node2"}
    assert daemons["node2"][1].state == "active" and daemons["node1"][1].state == "wait_for_agent_lock"
    assert (0, "node1/crm", "status change wait_for_quorum => master") in cluster.log
    assert any(who == "node2/lrm" and "status change wait_for_agent_lock => active" in message
               for _when, who, message in cluster.log)


def test_a_node_cut_off_loses_its_agent_lock_and_its_guest_is_recovered_elsewhere() -> None:
    cluster, daemons = cluster_of("node1", "node2", "node3")
    cluster.resources["vm:103"] = {"state": "started"}
    cluster.guest_node["vm:103"] = "node3"
    simulate(cluster, daemons, 60)
    assert cluster.running == {"vm:103": "node3"}
    cluster.up["node3"] = False  # its network gone (and it is not simulated any more: fenced by the watchdog)
    simulate(cluster, daemons, 300)
    assert cluster.manager_status["node_status"]["node3"] == "unknown"
    sd = cluster.manager_status["service_status"]["vm:103"]
    assert (sd["state"], sd["node"]) == ("started", "node1") and cluster.running["vm:103"] == "node1"
