"""The Ceph probes (verify and the grader) on made-up API answers in PVE's shapes: what passes, and the
sentence a student reads when something does not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pvelab.grade.access import ClusterAccess
from pvelab.grade.probes import PROBES
from pvelab.grade.roster import NodeAddress, Student
from pvelab.pve.apiclient import ApiError

NODES = ("pve1", "pve2", "pve3")


def osd(osdid: int, host: str, up: bool = True, inside: int = 1) -> dict[str, Any]:
    return {"id": osdid, "name": f"osd.{osdid}", "type": "osd", "host": host, "status": "up" if up else "down",
            "in": inside, "leaf": 1}


HEALTHY: dict[str, Any] = {
    "/cluster/ceph/status": {"health": {"status": "HEALTH_OK", "checks": {}}},
    "/nodes/pve1/ceph/mon": [{"name": n, "quorum": True, "addr": f"198.18.0.1{i}"} for i, n in enumerate(NODES, 1)],
    "/nodes/pve1/ceph/osd": {"root": {"leaf": 0, "children": [{"type": "root", "name": "default", "children": [
        {"type": "host", "name": n, "children": [osd(i, n)]} for i, n in enumerate(NODES)]}]}},
    "/nodes/pve1/ceph/pool": [{"pool_name": "vmpool", "size": 3, "min_size": 2, "pg_num": 32}],
}


class FakeApi:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(probe: str, answers: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    student = Student("s1", tuple(NodeAddress(n, f"10.0.0.{i}") for i, n in enumerate(NODES, 1)))
    access = ClusterAccess(student, 5, api_client=lambda _node: FakeApi(answers), ssh_runner=lambda *a: (0, "", ""))
    return PROBES[probe](access, params or {})


@pytest.mark.parametrize("probe", ["ceph.health", "ceph.mons_quorum", "ceph.osds_up_in"])
def test_a_healthy_ceph_passes(probe: str) -> None:
    assert run(probe, HEALTHY).ok


def test_a_pool_with_the_asked_copies_passes_and_one_without_says_the_fix() -> None:
    assert run("ceph.pool", HEALTHY, {"name": "vmpool", "size": 3, "min_size": 2}).ok
    wrong = run("ceph.pool", HEALTHY, {"name": "vmpool", "size": 3, "min_size": 1})
    assert not wrong.ok and wrong.problems == ["pool 'vmpool' has min_size 2, the lab asks for 1: "
                                               "pveceph pool set vmpool --min_size 1"]
    missing = run("ceph.pool", HEALTHY, {"name": "other"})
    assert missing.problems == ["there is no Ceph pool 'other': create it (pveceph pool create other)"]


def test_a_down_osd_is_named_with_its_node_and_the_fix() -> None:
    answers = copy.deepcopy(HEALTHY)
    answers["/nodes/pve1/ceph/osd"]["root"]["children"][0]["children"][2]["children"] = [osd(2, "pve3", up=False)]
    outcome = run("ceph.osds_up_in", answers)
    assert (outcome.passed, outcome.total) == (5, 6)  # 3 OSDs + 3 nodes' counts
    assert outcome.problems == ["osd.2 on pve3 is down: is pve3 up and ceph-osd@2 running there "
                                "(systemctl start ceph-osd@2)?"]


def test_a_monitor_out_of_quorum_and_a_node_without_one_are_each_an_item() -> None:
    answers = copy.deepcopy(HEALTHY)
    answers["/nodes/pve1/ceph/mon"] = [{"name": "pve1", "quorum": True}, {"name": "pve2", "quorum": False}]
    outcome = run("ceph.mons_quorum", answers)
    assert (outcome.passed, outcome.total) == (1, 3)
    assert any("the monitor on pve2 is not in the quorum" in p for p in outcome.problems)
    assert "pve3 has no Ceph monitor: create one there (pveceph mon create on pve3)" in outcome.problems


def test_health_warnings_fail_with_cephs_words_but_muted_ones_do_not() -> None:
    answers = copy.deepcopy(HEALTHY)
    answers["/cluster/ceph/status"] = {"health": {"status": "HEALTH_WARN", "checks": {
        "OSD_DOWN": {"summary": {"message": "1 osds down"}, "muted": False},
        "MGR_MODULE_DEPENDENCY": {"summary": {"message": "13 mgr modules have failed dependencies"}, "muted": True}}}}
    outcome = run("ceph.health", answers)
    assert not outcome.ok and len(outcome.problems) == 1 and "1 osds down (OSD_DOWN)" in outcome.problems[0]
    del answers["/cluster/ceph/status"]["health"]["checks"]["OSD_DOWN"]
    assert run("ceph.health", answers).ok


def test_a_cluster_without_ceph_is_told_how_to_set_it_up() -> None:
    refusal = "pveceph configuration not initialized - missing '/etc/pve/ceph.conf', missing '/etc/pve/ceph'"
    answers = {**HEALTHY, "/cluster/ceph/status": ApiError(500, refusal)}
    outcome = run("ceph.health", answers)
    assert not outcome.ok and "pveceph init" in outcome.problems[0]
