"""pve_guest against a fake API: create (and start), no change, only the difference sent, power changes,
HA-managed guests refused, destroy of a running guest, refusals before check mode."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_guest_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_guest
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import FakeApi, FakeCluster

NEW_VM = {"vmid": 120, "node": "pve2", "name": "web120", "memory": 256, "disk_storage": "labshare",
          "disk_size": 0.0625, "iso": "labshare:iso/pvelab-tiny.iso", "ipconfig0": "ip=198.18.0.120/24"}


def guest(**given: Any) -> dict[str, Any]:
    spec = pve_guest.ARGUMENT_SPEC
    assert not set(given) - set(spec)
    return {name: {"api_host": "198.18.0.11", "api_password": "pw", **given}.get(name, option.get("default"))
            for name, option in spec.items()}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster().form("lab", "pve1", "pve2", "pve3")
    monkeypatch.setattr(FakeApi, "world", cluster, raising=False)
    monkeypatch.setattr(pve_guest_ops, "PveApi", FakeApi)
    return cluster


def test_a_vm_is_created_started_and_then_left_alone(world: FakeCluster) -> None:
    preview = pve_guest_ops.ensure_guest(guest(**NEW_VM, state="started"), check_mode=True)
    assert "would be created on node 'pve2'" in preview["msg"] and world.changes() == []
    made = pve_guest_ops.ensure_guest(guest(**NEW_VM, state="started"), check_mode=False)
    assert (made["changed"], made["status"]) == (True, "running")
    assert world.changes() == [
        ("pve1", "POST", "/nodes/pve2/qemu", {"vmid": 120, "name": "web120", "memory": "256",
                                              "ipconfig0": "ip=198.18.0.120/24", "net0": "virtio,bridge=vmbr0",
                                              "scsihw": "virtio-scsi-pci", "scsi0": "labshare:0.0625",
                                              "ide2": "labshare:iso/pvelab-tiny.iso,media=cdrom",
                                              "ide0": "labshare:cloudinit"}),
        ("pve1", "POST", "/nodes/pve2/qemu/120/status/start", {})]
    again = pve_guest_ops.ensure_guest(guest(**NEW_VM, state="started"), check_mode=False)
    assert again["changed"] is False and len(world.changes()) == 2


def test_only_the_difference_is_set_with_the_digest(world: FakeCluster) -> None:
    result = pve_guest_ops.ensure_guest(guest(vmid=110, memory=512, name="web110"), check_mode=False)
    assert result["diff"] == {"before": {"memory": "256"}, "after": {"memory": "512"}}
    assert world.changes() == [("pve1", "PUT", "/nodes/pve1/qemu/110/config", {"digest": "c" * 40, "memory": "512"})]


def test_config_is_compared_and_deleted_options_removed_once(world: FakeCluster) -> None:
    """A nested node after its install: the CDs go, the disk boots (as `qm set --delete ide2,ide3 --boot ...`)."""
    world.guests[111]["config"].update(ide2="local:iso/installer.iso,media=cdrom", ide3="local:iso/ais.iso,media=cdrom",
                                       boot="order=ide2;scsi0")
    wanted = guest(vmid=111, config={"boot": "order=scsi0"}, delete=["ide2", "ide3", "ide1"])
    preview = pve_guest_ops.ensure_guest(wanted, check_mode=True)
    assert preview["msg"] == "guest 111 would be changed (set boot; removed ide2, ide3)" and world.changes() == []
    assert preview["diff"]["before"] == {"boot": "order=ide2;scsi0", "ide2": "local:iso/installer.iso,media=cdrom",
                                         "ide3": "local:iso/ais.iso,media=cdrom"}
    pve_guest_ops.ensure_guest(wanted, check_mode=False)
    assert world.changes() == [("pve1", "PUT", "/nodes/pve1/qemu/111/config",
                                {"digest": "c" * 40, "boot": "order=scsi0", "delete": "ide2,ide3"})]
    assert pve_guest_ops.ensure_guest(wanted, check_mode=False)["changed"] is False


def test_an_option_both_set_and_deleted_is_refused(world: FakeCluster) -> None:
    with pytest.raises(PveError, match="guest 111: boot both set and deleted"):
        pve_guest_ops.ensure_guest(guest(vmid=111, config={"boot": "order=scsi0"}, delete=["boot"]), True)
    with pytest.raises(PveError, match="guest 130: ide3 both set and deleted"):
        pve_guest_ops.ensure_guest(guest(**{**NEW_VM, "vmid": 130}, options={"ide3": "x"}, delete=["ide3"]), True)


def test_an_ha_guest_may_run_on_another_node_than_it_was_made_on(world: FakeCluster) -> None:
    world.guests[110]["ha"] = True  # HA moved it; the playbook still says where it was made
    result = pve_guest_ops.ensure_guest(guest(vmid=110, node="pve3", name="web110"), check_mode=False)
    assert (result["changed"], result["node"]) == (False, "pve1") and world.changes() == []


def test_stopped_stops_a_running_guest_once(world: FakeCluster) -> None:
    pve_guest_ops.ensure_guest(guest(vmid=200, kind="ct", state="stopped"), check_mode=False)
    assert world.changes() == [("pve1", "POST", "/nodes/pve2/lxc/200/status/stop", {})]
    assert pve_guest_ops.ensure_guest(guest(vmid=200, kind="ct", state="stopped"), False)["changed"] is False


@pytest.mark.parametrize("given,message", [
    ({"vmid": 111, "state": "started", "_ha": True}, "managed by HA.*pve_ha_resource"),
    ({"vmid": 110, "state": "absent", "_ha": True}, "guest 110 is managed by HA and running: remove it from HA"),
    ({"vmid": 200, "kind": "vm"}, "guest 200 exists as a CT, not a VM"),
    ({"vmid": 110, "node": "pve3"}, "guest 110 is on node 'pve1', not 'pve3'"),
    ({"vmid": 130, "node": "pve1"}, "give disk_storage"),
    ({"vmid": 130, "kind": "ct", "node": "pve1", "disk_storage": "local-lvm"}, "give ostemplate"),
    ({"vmid": 130, "disk_storage": "local-lvm"}, "give the node to create it on"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str,
                                         check_mode: bool) -> None:
    given = dict(given)  # shared by both check_mode runs
    if given.pop("_ha", False):
        world.guests[given["vmid"]]["ha"] = True
    with pytest.raises(PveError, match=message):
        pve_guest_ops.ensure_guest(guest(**given), check_mode)
    assert world.changes() == []


def test_absent_stops_and_destroys_with_purge(world: FakeCluster) -> None:
    preview = pve_guest_ops.ensure_guest(guest(vmid=110, state="absent"), check_mode=True)
    assert "would be stopped and destroyed on node 'pve1'" in preview["msg"] and world.changes() == []
    pve_guest_ops.ensure_guest(guest(vmid=110, state="absent"), check_mode=False)
    assert world.changes() == [("pve1", "POST", "/nodes/pve1/qemu/110/status/stop", {}),
                               ("pve1", "DELETE", "/nodes/pve1/qemu/110", {"purge": 1})]
    assert pve_guest_ops.ensure_guest(guest(vmid=110, state="absent"), False)["changed"] is False
