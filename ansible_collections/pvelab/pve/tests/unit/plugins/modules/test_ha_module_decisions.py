"""pve_ha_resource, pve_ha_placement and pve_ha_info against a fake API: create, no change, check mode,
refusals before check mode, and the PVE 8 / PVE 9 mapping of a placement (group or rule)."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_ha_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_ha_placement, pve_ha_resource
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import FakeApi, FakeCluster, module_params

API = {"api_host": "198.18.0.11", "api_password": "pw"}


params = module_params


def resource(**given: Any) -> dict[str, Any]:
    return params(pve_ha_resource.ARGUMENT_SPEC, **{**API, "wait_timeout": 1, **given})


def placement(**given: Any) -> dict[str, Any]:
    return params(pve_ha_placement.ARGUMENT_SPEC, **{**API, **given})


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster().form("lab", "pve1", "pve2", "pve3")
    monkeypatch.setattr(FakeApi, "world", cluster, raising=False)
    monkeypatch.setattr(pve_ha_ops, "PveApi", FakeApi)
    monkeypatch.setattr(pve_ha_ops, "STATUS_POLL", 0.01)
    return cluster


# -- pve_ha_resource ------------------------------------------------------------------------------
def test_a_resource_is_added_once_and_waited_for(world: FakeCluster) -> None:
    preview = pve_ha_ops.ensure_resource(resource(sid="vm:110", resource_state="started"), check_mode=True)
    assert preview["changed"] and "would be added" in preview["msg"] and world.changes() == []
    made = pve_ha_ops.ensure_resource(resource(sid="vm:110", resource_state="started", max_restart=2), False)
    assert (made["changed"], made["status"]) == (True, "started")
    assert world.changes() == [("pve1", "POST", "/cluster/ha/resources",
                                {"sid": "vm:110", "state": "started", "max_restart": "2"})]
    again = pve_ha_ops.ensure_resource(resource(sid="vm:110", resource_state="started", max_restart=2), False)
    assert again["changed"] is False and len(world.changes()) == 1


def test_defaults_count_as_set(world: FakeCluster) -> None:
    world.ha_resources["vm:110"] = {}
    world.ha_shown["vm:110"] = "started"
    result = pve_ha_ops.ensure_resource(resource(sid="vm:110", resource_state="started", max_relocate=1), False)
    assert result["changed"] is False and world.changes() == []


def test_an_update_sends_only_the_difference_with_the_digest(world: FakeCluster) -> None:
    world.ha_resources["vm:110"] = {"state": "started"}
    world.ha_shown["vm:110"] = "started"
    result = pve_ha_ops.ensure_resource(resource(sid="vm:110", resource_state="stopped", comment="web"), False)
    assert result["diff"] == {"before": {"state": "started"}, "after": {"state": "stopped", "comment": "web"}}
    assert world.changes() == [("pve1", "PUT", "/cluster/ha/resources/vm:110",
                                {"digest": "h" * 40, "state": "stopped", "comment": "web"})]


def test_a_wait_that_never_settles_says_what_to_check(world: FakeCluster) -> None:
    world.ha_resources["vm:110"] = {"state": "stopped"}
    world.ha_shown["vm:110"] = "stopped"

    def stuck(self: FakeApi, path: str, /, **params: Any) -> None:
        self.world.calls.append((self.node, "PUT", path, params))  # the daemons never act

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FakeApi, "put", stuck)
        with pytest.raises(PveError, match="is 'stopped', not 'started'.*pve-ha-crm and pve-ha-lrm") as err:
            pve_ha_ops.ensure_resource(resource(sid="vm:110", resource_state="started"), False)
    assert err.value.result == {"changed": True}


@pytest.mark.parametrize("given,message", [
    ({"sid": "100"}, "'100' is not an HA resource id: use vm:VMID or ct:VMID"),
    ({"sid": "vm:999"}, "guest 999 does not exist in the cluster"),
    ({"sid": "ct:110"}, "guest 110 is a VM, so its HA resource id is 'vm:110', not 'ct:110'"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_resource_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str,
                                                  check_mode: bool) -> None:
    with pytest.raises(PveError, match=message):
        pve_ha_ops.ensure_resource(resource(**given), check_mode)
    assert world.changes() == []


def test_failback_on_pve8_points_to_the_group(world: FakeCluster) -> None:
    world.major = 8
    with pytest.raises(PveError, match="on PVE 8 it belongs to the HA group: use pve_ha_placement"):
        pve_ha_ops.ensure_resource(resource(sid="vm:110", failback=False), check_mode=True)


def test_an_error_state_only_accepts_disabled(world: FakeCluster) -> None:
    world.ha_resources["vm:110"] = {"state": "started"}
    world.ha_shown["vm:110"] = "error"
    with pytest.raises(PveError, match="set resource_state: disabled first"):
        pve_ha_ops.ensure_resource(resource(sid="vm:110", resource_state="stopped"), check_mode=True)
    assert world.changes() == []


def test_absent_removes_only_the_resource(world: FakeCluster) -> None:
    assert pve_ha_ops.ensure_resource(resource(sid="vm:110", state="absent"), False)["changed"] is False
    world.ha_resources["vm:110"] = {"state": "started"}
    preview = pve_ha_ops.ensure_resource(resource(sid="vm:110", state="absent"), True)
    assert "the guest itself stays" in preview["msg"] and world.changes() == []
    pve_ha_ops.ensure_resource(resource(sid="vm:110", state="absent"), False)
    assert world.changes() == [("pve1", "DELETE", "/cluster/ha/resources/vm:110", {})]


# -- pve_ha_placement -----------------------------------------------------------------------------
PLACE = {"name": "prefer-pve1", "nodes": ["pve2:1", "pve1:2"], "resources": ["vm:111", "vm:110"]}


def managed(world: FakeCluster) -> None:
    world.ha_resources.update({"vm:110": {}, "vm:111": {}})


def test_on_pve9_a_placement_is_a_node_affinity_rule(world: FakeCluster) -> None:
    managed(world)
    preview = pve_ha_ops.ensure_placement(placement(**PLACE), check_mode=True)
    assert (preview["kind"], preview["changed"], world.changes()) == ("rule", True, [])
    pve_ha_ops.ensure_placement(placement(**PLACE, failback=False), check_mode=False)
    assert world.changes() == [
        ("pve1", "POST", "/cluster/ha/rules", {"type": "node-affinity", "rule": "prefer-pve1",
                                               "nodes": "pve1:2,pve2:1", "resources": "vm:110,vm:111",
                                               "strict": "0"}),
        ("pve1", "PUT", "/cluster/ha/resources/vm:111", {"failback": 0}),
        ("pve1", "PUT", "/cluster/ha/resources/vm:110", {"failback": 0})]
    again = pve_ha_ops.ensure_placement(placement(**PLACE, failback=False), check_mode=False)
    assert again["changed"] is False and len(world.changes()) == 3


def test_on_pve8_the_same_placement_is_a_group_set_on_each_resource(world: FakeCluster) -> None:
    world.major = 8
    managed(world)
    world.ha_resources["vm:112"] = {"group": "prefer-pve1"}
    pve_ha_ops.ensure_placement(placement(**PLACE, failback=False, strict=True), check_mode=False)
    assert world.changes() == [
        ("pve1", "POST", "/cluster/ha/groups", {"group": "prefer-pve1", "nodes": "pve1:2,pve2:1",
                                                "restricted": "1", "nofailback": "1"}),
        ("pve1", "PUT", "/cluster/ha/resources/vm:110", {"group": "prefer-pve1"}),
        ("pve1", "PUT", "/cluster/ha/resources/vm:111", {"group": "prefer-pve1"}),
        ("pve1", "PUT", "/cluster/ha/resources/vm:112", {"delete": "group"})]
    again = pve_ha_ops.ensure_placement(placement(**PLACE, failback=False, strict=True), check_mode=False)
    assert again["changed"] is False


@pytest.mark.parametrize("given,message", [
    ({"nodes": ["pve9"]}, "names node\\(s\\) pve9, which are not cluster nodes"),
    ({"resources": ["vm:110", "ct:200"]}, "ct:200 is not an HA resource: add it with pve_ha_resource first"),
    ({"nodes": []}, "needs nodes"),
    ({"nodes": ["pve1:high"]}, "'pve1:high' is not a node with a priority"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_placement_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str,
                                                   check_mode: bool) -> None:
    managed(world)
    with pytest.raises(PveError, match=message):
        pve_ha_ops.ensure_placement(placement(**{**PLACE, **given}), check_mode)
    assert world.changes() == []


def test_info_reads_services_and_placement(world: FakeCluster) -> None:
    managed(world)
    world.ha_shown["vm:110"] = "started"
    world.ha_rules["prefer-pve1"] = {"type": "node-affinity", "nodes": "pve1", "resources": "vm:110"}
    info = pve_ha_ops.ha_info(dict(API), check_mode=False)
    assert info["quorate"] is True and info["services"]["vm:110"]["state"] == "started"
    assert info["placement"][0]["rule"] == "prefer-pve1" and world.changes() == []
    world.ha_node_status["pve1"] = "fence"
    assert pve_ha_ops.ha_info(dict(API), check_mode=False)["nodes"]["pve1"] == "fence"
