"""pve_replication against a fake API: a job made once under the lowest free number, then only what
differs; removal keeping or dropping the replica; refusals before check mode (no such guest or node,
the guest already on the target - its job turned round); waiting for the first sync, or its error."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_replication_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_replication
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import FakeApi, FakeCluster, module_params


def options(**given: Any) -> dict[str, Any]:
    return module_params(pve_replication.ARGUMENT_SPEC, **{"api_host": "198.18.0.11", "api_password": "pw",
                                                           "vmid": 110, "target": "pve2", **given})


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster().form("lab", "pve1", "pve2", "pve3")
    monkeypatch.setattr(FakeApi, "world", cluster, raising=False)
    monkeypatch.setattr(pve_replication_ops, "PveApi", FakeApi)
    monkeypatch.setattr(pve_replication_ops, "poll", lambda probe, timeout, interval=0.2: probe())
    return cluster


def test_a_job_is_made_once_then_only_changed(world: FakeCluster) -> None:
    world.replication["110-0"] = {"guest": 110, "jobnum": 0, "target": "pve3", "type": "local"}
    preview = pve_replication_ops.ensure_replication(options(schedule="*/1"), check_mode=True)
    assert preview["changed"] and "would be created as job 110-1" in preview["msg"] and world.changes() == []
    made = pve_replication_ops.ensure_replication(options(schedule="*/1", rate=10.0), check_mode=False)
    assert made["id"] == "110-1"
    assert world.changes() == [("pve1", "POST", "/cluster/replication", {"id": "110-1", "target": "pve2",
                                                                         "type": "local", "schedule": "*/1",
                                                                         "rate": "10"})]
    again = pve_replication_ops.ensure_replication(options(schedule="*/1", rate=10), check_mode=False)
    assert again["changed"] is False
    changed = pve_replication_ops.ensure_replication(options(schedule="*/5", enabled=False), check_mode=False)
    assert changed["diff"] == {"before": {"schedule": "*/1", "rate": "10", "disable": "0"},
                               "after": {"schedule": "*/5", "rate": "10", "disable": "1"}}
    assert world.changes()[-1] == ("pve1", "PUT", "/cluster/replication/110-1", {"schedule": "*/5", "disable": "1"})


@pytest.mark.parametrize("keep,sent", [(True, {"keep": 1}), (False, {})])
def test_removal_keeps_the_replica_only_when_asked(world: FakeCluster, keep: bool, sent: dict[str, Any]) -> None:
    world.replication["110-0"] = {"guest": 110, "jobnum": 0, "target": "pve2", "type": "local"}
    gone = pve_replication_ops.ensure_replication(options(state="absent", keep_replica=keep), check_mode=False)
    assert gone["changed"] and world.changes() == [("pve1", "DELETE", "/cluster/replication/110-0", sent)]
    assert pve_replication_ops.ensure_replication(options(state="absent"), check_mode=False)["changed"] is False


@pytest.mark.parametrize("given,message", [
    ({"vmid": 999}, "there is no guest 999 in the cluster"),
    ({"target": "pve7"}, "there is no node 'pve7'"),
    ({"target": "pve1"}, "the guest runs on pve1 itself - replicate it to another node"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str,
                                         check_mode: bool) -> None:
    with pytest.raises(PveError, match=message):
        pve_replication_ops.ensure_replication(options(**given), check_mode)
    assert world.changes() == []


def test_a_guest_recovered_on_its_target_names_where_its_job_replicates_now(world: FakeCluster) -> None:
    world.guests[110]["node"] = "pve2"  # HA recovered it there; its job turned round
    world.replication["110-0"] = {"guest": 110, "jobnum": 0, "target": "pve1", "source": "pve2", "type": "local"}
    with pytest.raises(PveError, match="its job now replicates back to pve1: give target pve1"):
        pve_replication_ops.ensure_replication(options(), check_mode=False)
    assert world.changes() == []


def test_waiting_for_the_sync_reports_it_or_the_jobs_error(world: FakeCluster) -> None:
    world.replication["110-0"] = {"guest": 110, "jobnum": 0, "target": "pve2", "type": "local"}
    world.replication_status["pve1"] = {"id": "110-0", "last_sync": 1700000000, "fail_count": 0}
    assert pve_replication_ops.ensure_replication(options(wait_for_sync=True), False)["last_sync"] == 1700000000
    world.replication_status["pve1"] = {"id": "110-0", "fail_count": 2, "error": "ssh: connect to host timed out"}
    with pytest.raises(PveError, match="did not sync within 300 s \\(fail count 2, error: ssh: connect"):
        pve_replication_ops.ensure_replication(options(wait_for_sync=True), False)
