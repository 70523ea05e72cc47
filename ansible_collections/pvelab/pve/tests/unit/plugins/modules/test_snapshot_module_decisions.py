"""pve_snapshot against a fake API: taken once, its description kept in step, removed, rolled back to;
refusals (no such guest, a name the guest's API reserves, RAM for a container, rollback to a snapshot that is
not there) before check mode."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_guest_ops, pve_snapshot_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_snapshot
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import FakeApi, FakeCluster, module_params


def options(**given: Any) -> dict[str, Any]:
    given = {"api_host": "198.18.0.11", "api_password": "pw", "vmid": 110, "name": "before", **given}
    return module_params(pve_snapshot.ARGUMENT_SPEC, **given)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster().form("lab", "pve1", "pve2", "pve3")
    monkeypatch.setattr(FakeApi, "world", cluster, raising=False)
    monkeypatch.setattr(pve_snapshot_ops, "PveApi", FakeApi)
    monkeypatch.setattr(pve_guest_ops, "PveApi", FakeApi)
    return cluster


def test_a_snapshot_with_ram_is_taken_once_on_the_guests_node(world: FakeCluster) -> None:
    preview = pve_snapshot_ops.ensure_snapshot(options(vmstate=True), check_mode=True)
    assert "would be taken with its RAM" in preview["msg"] and world.changes() == []
    done = pve_snapshot_ops.ensure_snapshot(options(vmstate=True, description="drill"), check_mode=False)
    assert done["changed"] and done["snapshots"] == ["before"]
    assert done["diff"] == {"before": {"snapshots": []}, "after": {"snapshots": ["before"]}}
    assert world.changes() == [("pve1", "POST", "/nodes/pve1/qemu/110/snapshot",
                                {"snapname": "before", "description": "drill", "vmstate": 1})]
    assert pve_snapshot_ops.ensure_snapshot(options(vmstate=True, description="drill"), False)["changed"] is False


def test_only_the_description_of_an_existing_snapshot_changes(world: FakeCluster) -> None:
    world.snapshots[110] = {"before": {"description": "old", "vmstate": 0}}
    done = pve_snapshot_ops.ensure_snapshot(options(description="new"), check_mode=False)
    assert done["diff"] == {"before": {"description": "old"}, "after": {"description": "new"}}
    assert world.changes() == [("pve1", "PUT", "/nodes/pve1/qemu/110/snapshot/before/config", {"description": "new"})]


def test_removed_then_gone_and_a_rollback_is_always_a_change(world: FakeCluster) -> None:
    world.snapshots[200] = {"before": {"description": "", "vmstate": 0}, "later": {"description": "", "vmstate": 0}}
    rolled = pve_snapshot_ops.ensure_snapshot(options(vmid=200, state="rollback", start=True), check_mode=False)
    assert rolled["changed"] and world.changes()[-1] == ("pve1", "POST", "/nodes/pve2/lxc/200/snapshot/before/rollback",
                                                         {"start": 1})
    gone = pve_snapshot_ops.ensure_snapshot(options(vmid=200, state="absent"), check_mode=False)
    assert gone["snapshots"] == ["later"] and world.changes()[-1] == ("pve1", "DELETE",
                                                                      "/nodes/pve2/lxc/200/snapshot/before", {})
    assert pve_snapshot_ops.ensure_snapshot(options(vmid=200, state="absent"), check_mode=False)["changed"] is False


@pytest.mark.parametrize("given", [
    {"name": "Current"}, {"vmid": 200, "name": "VZDUMP"}, {"vmid": 200, "name": "pending"},
])
def test_a_name_reserved_only_in_another_spelling_or_for_the_other_kind_is_taken(world: FakeCluster,
                                                                                 given: dict[str, Any]) -> None:
    """PVE compares 'current' and 'vzdump' as written; 'pending' (any case) is reserved for VMs only."""
    assert pve_snapshot_ops.ensure_snapshot(options(**given), check_mode=True)["changed"] is True


@pytest.mark.parametrize("given,message", [
    ({"vmid": 999}, "guest 999 does not exist in the cluster"),
    ({"name": "current"}, "snapshot name 'current' is reserved"),
    ({"name": "Pending"}, "snapshot name 'Pending' is reserved"),
    ({"vmid": 200, "name": "vzdump"}, "snapshot name 'vzdump' is reserved"),
    ({"vmid": 200, "vmstate": True}, "guest 200 is a container, whose snapshots hold no RAM"),
    ({"state": "rollback"}, "has no snapshot 'before' to roll back to"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str,
                                         check_mode: bool) -> None:
    with pytest.raises(PveError, match=message):
        pve_snapshot_ops.ensure_snapshot(options(**given), check_mode)
    assert world.changes() == []
