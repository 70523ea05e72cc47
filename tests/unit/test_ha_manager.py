"""The CRM's rounds against a fake cluster: node states, fencing and recovery, placement, failback,
the start-failure policy, commands and maintenance (the scenarios of pve-ha-manager's own tests)."""

from __future__ import annotations

from typing import Any

import pytest

from pvelab.pve.ha.manager import ERROR, SUCCESS, Manager
from pvelab.pve.ha.rules import CompiledRules, NodeAffinity
from tests.ha_basic_crs import BasicCrs

NODES = ("pve1", "pve2", "pve3")


class FakeCluster(BasicCrs):
    nodename = "pve2"

    def __init__(self) -> None:
        self.time = 1000.0
        self.online = dict.fromkeys(NODES, True)
        self.lrm: dict[str, dict[str, Any]] = {n: {"mode": "active", "results": {}} for n in NODES}
        self.resources: dict[str, dict[str, str]] = {}
        self.guest_node: dict[str, str] = {}
        self.rules = CompiledRules()
        self.commands: list[str] = []
        self.lock_free_at: dict[str, float] = {}
        self.logs: list[str] = []
        self.status: dict[str, Any] = {}

    # -- the Env the Manager sees --------------------------------------------------------------------
    def now(self) -> float:
        return self.time

    def log(self, level: str, message: str) -> None:
        self.logs.append(message)

    def node_info(self) -> dict[str, bool]:
        return dict(self.online)

    def lrm_status(self, node: str) -> dict[str, Any] | None:
        return self.lrm[node]

    def service_config(self) -> dict[str, dict[str, str]]:
        return {sid: {"state": "started", "max_restart": "1", "max_relocate": "1", "failback": "1", **opts,
                      "type": sid[:2], "node": self.guest_node[sid]} for sid, opts in self.resources.items()}

    def compiled_rules(self, service_config: Any, nodes: list[str]) -> CompiledRules:
        return self.rules

    def crm_commands(self) -> list[str]:
        commands, self.commands = self.commands, []
        return commands

    def set_requested_state(self, sid: str, state: str) -> None:
        self.resources[sid]["state"] = state

    def get_agent_lock(self, node: str) -> bool:
        return self.time >= self.lock_free_at.get(node, 0)

    def steal_service(self, sid: str, source: str, target: str) -> None:
        self.guest_node[sid] = target

    def remove_locks(self, sid: str, node: str, locks: tuple[str, ...]) -> str | None:
        return None

    def write_manager_status(self, status: dict[str, Any]) -> None:
        self.status = status

    # -- driving it ----------------------------------------------------------------------------------
    def add(self, sid: str, node: str, **options: str) -> None:
        self.resources[sid] = dict(options)
        self.guest_node[sid] = node

    def lrm_reports(self, manager: Manager, code: int = SUCCESS) -> None:
        """Every online LRM runs what it was asked (the uid it has not answered yet)."""
        for sid, sd in manager.ss.items():
            if sd["state"] in ("started", "request_stop", "migrate", "relocate") and self.online[sd["node"]]:
                results = self.lrm[sd["node"]]["results"]
                results[sd["uid"]] = {"sid": sid, "state": sd["state"], "exit_code": code}
                if sd["state"] in ("migrate", "relocate") and code == SUCCESS:
                    self.guest_node[sid] = sd["target"]

    def rounds(self, manager: Manager, count: int, code: int = SUCCESS) -> None:
        for _ in range(count):
            manager.manage()
            self.lrm_reports(manager, code)
            self.time += 10


def service(manager: Manager, sid: str) -> tuple[str, str]:
    sd = manager.ss[sid]
    return sd["state"], sd["node"]


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def test_a_new_resource_starts_on_the_node_of_its_guest(cluster):
    cluster.add("vm:100", "pve1")
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    assert service(manager, "vm:100") == ("started", "pve1")
    assert manager.ss["vm:100"]["running"] == 1
    assert "adding new service 'vm:100' on node 'pve1'" in cluster.logs


def test_a_lost_node_is_fenced_after_60_s_and_its_service_recovered_when_its_lock_expires(cluster):
    cluster.add("vm:100", "pve1")
    cluster.rules.node_affinity["vm:100"] = NodeAffinity({"pve1": 2, "pve3": 1}, strict=False)
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    cluster.online["pve1"] = False
    lost_at = cluster.time
    cluster.lock_free_at["pve1"] = lost_at + 120  # its LRM renewed the agent lock until it went away
    cluster.rounds(manager, 1)
    assert manager.ns.state("pve1") == "unknown" and service(manager, "vm:100") == ("started", "pve1")
    while manager.ss["vm:100"]["state"] == "started":
        cluster.rounds(manager, 1)
    assert manager.ss["vm:100"]["state"] == "fence" and cluster.time - lost_at >= 60
    while manager.ss["vm:100"]["state"] == "fence":
        cluster.rounds(manager, 1)
    assert cluster.time - 10 >= lost_at + 120
    assert service(manager, "vm:100") == ("started", "pve3")  # the next priority, not the least loaded
    assert cluster.guest_node["vm:100"] == "pve3"
    assert "recover service 'vm:100' from fenced node 'pve1' to node 'pve3'" in cluster.logs


@pytest.mark.parametrize("failback,expected", [("1", "pve1"), ("0", "pve3")])
def test_a_returning_preferred_node_gets_its_service_back_unless_failback_is_off(cluster, failback, expected):
    cluster.add("vm:100", "pve1", failback=failback)
    cluster.rules.node_affinity["vm:100"] = NodeAffinity({"pve1": 2, "pve3": 1}, strict=False)
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    cluster.online["pve1"] = False
    cluster.rounds(manager, 20)
    assert service(manager, "vm:100") == ("started", "pve3")
    cluster.online["pve1"] = True
    cluster.rounds(manager, 4)
    assert service(manager, "vm:100") == ("started", expected)


def test_a_strict_rule_without_online_members_leaves_the_service_in_recovery(cluster):
    cluster.add("vm:100", "pve1")
    cluster.rules.node_affinity["vm:100"] = NodeAffinity({"pve1": 0}, strict=True)
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    cluster.online["pve1"] = False
    cluster.rounds(manager, 20)
    assert service(manager, "vm:100") == ("recovery", "pve1")
    assert "recovering service 'vm:100' from fenced node 'pve1' failed, no recovery node found" in cluster.logs


def test_start_failures_relocate_then_end_in_error_which_only_disabled_clears(cluster):
    cluster.add("vm:100", "pve1")
    manager = Manager(cluster, {})
    cluster.rounds(manager, 1, code=ERROR)  # pve1 gave up (its LRM already retried max_restart times)
    cluster.rounds(manager, 1)  # the CRM relocates it; the move itself works
    assert manager.ss["vm:100"]["state"] == "migrate" and manager.ss["vm:100"]["target"] == "pve2"
    cluster.rounds(manager, 1, code=ERROR)  # started on pve2, where starting fails too
    cluster.rounds(manager, 1)
    assert service(manager, "vm:100") == ("error", "pve2")
    assert manager.ss["vm:100"]["failed_nodes"] == ["pve1", "pve2"]
    cluster.resources["vm:100"]["state"] = "started"
    cluster.rounds(manager, 1)
    assert manager.ss["vm:100"]["state"] == "error"
    cluster.resources["vm:100"]["state"] = "disabled"
    cluster.rounds(manager, 1)
    assert manager.ss["vm:100"]["state"] == "stopped" and "failed_nodes" not in manager.ss["vm:100"]


def test_a_stop_command_requests_the_stop_and_rewrites_the_requested_state(cluster):
    cluster.add("vm:100", "pve1")
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    cluster.commands.append("stop vm:100 0")
    cluster.rounds(manager, 2)
    assert service(manager, "vm:100") == ("stopped", "pve1")
    assert cluster.resources["vm:100"]["state"] == "stopped"
    assert "request immediate service hard-stop for service 'vm:100'" in cluster.logs


def test_migrate_commands_are_checked_against_the_target(cluster):
    cluster.add("vm:100", "pve1")
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    cluster.online["pve3"] = False
    cluster.commands += ["migrate vm:100 pve3", "migrate vm:100 pve1", "migrate vm:999 pve2", "bogus"]
    cluster.rounds(manager, 1)
    assert "crm command error - node not online: migrate vm:100 pve3" in cluster.logs
    assert "ignore crm command - service already on target node: migrate vm:100 pve1" in cluster.logs
    assert "crm command error - no such service: migrate vm:999 pve2" in cluster.logs
    assert "unable to parse crm command: bogus" in cluster.logs
    cluster.commands.append("migrate vm:100 pve2")
    cluster.rounds(manager, 2)
    assert service(manager, "vm:100") == ("started", "pve2")


def test_maintenance_moves_services_away_and_back(cluster):
    cluster.add("vm:100", "pve1")
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    cluster.commands.append("enable-node-maintenance pve1")
    cluster.rounds(manager, 1)
    assert manager.ms["node_request"] == {"pve1": {"maintenance": 1}}
    cluster.lrm["pve1"]["mode"] = "maintenance"  # its LRM read the request
    cluster.rounds(manager, 3)
    assert manager.ns.state("pve1") == "maintenance"
    assert service(manager, "vm:100") == ("started", "pve2")
    assert manager.ss["vm:100"]["maintenance_node"] == "pve1"
    cluster.commands.append("disable-node-maintenance pve1")
    cluster.rounds(manager, 1)
    cluster.lrm["pve1"]["mode"] = "active"
    cluster.rounds(manager, 3)
    assert service(manager, "vm:100") == ("started", "pve1")
    assert "moving service 'vm:100' back to 'pve1', node came back from maintenance." in cluster.logs


def test_ignored_and_removed_resources_leave_the_manager_status(cluster):
    cluster.add("vm:100", "pve1")
    cluster.add("vm:101", "pve2")
    manager = Manager(cluster, {})
    cluster.rounds(manager, 1)
    cluster.resources["vm:100"]["state"] = "ignored"
    del cluster.resources["vm:101"]
    cluster.rounds(manager, 1)
    assert manager.ss == {}
    assert "removing stale service 'vm:100' (ignored state requested)" in cluster.logs
    assert "removing stale service 'vm:101' (no config)" in cluster.logs


def test_a_disabled_service_on_a_lost_node_is_not_fenced(cluster):
    cluster.add("vm:100", "pve1", state="disabled")
    manager = Manager(cluster, {})
    cluster.rounds(manager, 2)
    cluster.online["pve1"] = False
    cluster.rounds(manager, 10)
    assert service(manager, "vm:100") == ("stopped", "pve1")
