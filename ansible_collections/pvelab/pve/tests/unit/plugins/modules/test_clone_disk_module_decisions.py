"""pve_clone, pve_disk and pve_guest's template option against a fake API: what each asks of PVE,
that a second run asks nothing, that check mode changes nothing, and refusals before check mode."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import (
    pve_clone_ops,
    pve_disk_ops,
    pve_guest_ops,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_clone, pve_disk, pve_guest
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import FakeApi, FakeCluster, module_params

LOGIN = {"api_host": "198.18.0.11", "api_password": "pw"}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster().form("lab", "pve1", "pve2", "pve3")
    cluster.guests[111]["config"]["scsi0"] = "local-lvm:vm-111-disk-0,size=64M"
    cluster.guests[111]["config"]["ide2"] = "local:iso/tiny.iso,media=cdrom,size=4M"
    monkeypatch.setattr(FakeApi, "world", cluster, raising=False)
    for ops in (pve_clone_ops, pve_disk_ops, pve_guest_ops):
        monkeypatch.setattr(ops, "PveApi", FakeApi)
    return cluster


def clone_options(**given: Any) -> dict[str, Any]:
    return module_params(pve_clone.ARGUMENT_SPEC, **{**LOGIN, "vmid": 111, "newid": 120, **given})


def disk_options(**given: Any) -> dict[str, Any]:
    return module_params(pve_disk.ARGUMENT_SPEC, **{**LOGIN, "vmid": 111, "disk": "scsi0", **given})


def guest_options(**given: Any) -> dict[str, Any]:
    return module_params(pve_guest.ARGUMENT_SPEC, **{**LOGIN, "vmid": 111, **given})


def test_a_stopped_vm_becomes_a_template_once(world: FakeCluster) -> None:
    preview = pve_guest_ops.ensure_guest(guest_options(template=True), check_mode=True)
    assert "made a template" in preview["msg"] and world.changes() == []
    done = pve_guest_ops.ensure_guest(guest_options(template=True), check_mode=False)
    assert done["diff"] == {"before": {"template": 0}, "after": {"template": 1}}
    assert world.changes() == [("pve1", "POST", "/nodes/pve1/qemu/111/template", {})]
    assert pve_guest_ops.ensure_guest(guest_options(template=True), check_mode=False)["changed"] is False


@pytest.mark.parametrize(("given", "message"), [
    ({"vmid": 110, "template": True}, "guest 110 is running: stop it \\(state: stopped\\)"),
    ({"template": True, "state": "started"}, "a template never runs"),
])
def test_template_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str) -> None:
    with pytest.raises(PveError, match=message):
        pve_guest_ops.ensure_guest(guest_options(**given), check_mode=True)
    assert world.changes() == []


def test_a_template_cannot_become_a_vm_again(world: FakeCluster) -> None:
    world.guests[111]["config"]["template"] = 1
    with pytest.raises(PveError, match="cannot turn back into a guest: clone it"):
        pve_guest_ops.ensure_guest(guest_options(template=False), check_mode=True)


def test_a_template_is_cloned_linked_to_another_node_then_left_alone(world: FakeCluster) -> None:
    world.guests[111]["config"]["template"] = 1
    preview = pve_clone_ops.ensure_clone(clone_options(target_node="pve2", name="student1"), check_mode=True)
    assert preview["msg"] == "VM 120 would be made on 'pve2' as a linked clone of VM 111" and world.changes() == []
    done = pve_clone_ops.ensure_clone(clone_options(target_node="pve2", name="student1"), check_mode=False)
    assert done["changed"] and done["node"] == "pve2" and done["full"] is False
    assert world.changes() == [("pve1", "POST", "/nodes/pve1/qemu/111/clone",
                                {"newid": 120, "full": 0, "name": "student1", "target": "pve2"})]
    again = pve_clone_ops.ensure_clone(clone_options(target_node="pve2", name="student1"), check_mode=False)
    assert again["changed"] is False and again["node"] == "pve2" and len(world.changes()) == 1


def test_a_vm_is_cloned_full_by_default_with_its_storage_and_format(world: FakeCluster) -> None:
    done = pve_clone_ops.ensure_clone(clone_options(storage="local", format="qcow2"), check_mode=False)
    assert done["full"] is True and world.changes()[-1][3] == {"newid": 120, "full": 1, "storage": "local",
                                                               "format": "qcow2"}


@pytest.mark.parametrize(("given", "message"), [
    ({"full": False}, "a linked clone needs a template: VM 111 is not one"),
    ({"vmid": 999}, "VM 999, the clone's source, does not exist"),
    ({"vmid": 200}, "VM 200, the clone's source, does not exist"),  # a container
])
def test_clone_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str) -> None:
    with pytest.raises(PveError, match=message):
        pve_clone_ops.ensure_clone(clone_options(**given), check_mode=True)
    assert world.changes() == []


def test_a_disk_grows_and_moves_then_a_second_run_asks_nothing(world: FakeCluster) -> None:
    preview = pve_disk_ops.ensure_disk(disk_options(size="128M", storage="local-lvm"), check_mode=True)
    assert preview["changed"] and preview["msg"] == "disk 'scsi0' of VM 111 would be grown to 128M"
    world.storages["ceph"] = {"type": "rbd", "pool": "vmpool", "content": "images"}
    done = pve_disk_ops.ensure_disk(disk_options(size="128M", storage="ceph", delete_source=True), check_mode=False)
    assert done["diff"] == {"before": {"size": "64M", "storage": "local-lvm"},
                            "after": {"size": "128M", "storage": "ceph"}}
    assert world.changes() == [("pve1", "PUT", "/nodes/pve1/qemu/111/resize", {"disk": "scsi0", "size": "128M"}),
                               ("pve1", "POST", "/nodes/pve1/qemu/111/move_disk",
                                {"disk": "scsi0", "storage": "ceph", "delete": 1})]
    again = pve_disk_ops.ensure_disk(disk_options(size="0.125G", storage="ceph"), check_mode=False)
    assert again["changed"] is False and len(world.changes()) == 2


@pytest.mark.parametrize(("given", "message"), [
    ({"size": "32M"}, "PVE cannot shrink a disk"),
    ({"size": "lots"}, "size 'lots' is not a size"),
    ({"disk": "scsi5", "size": "1G"}, "VM 111 has no disk 'scsi5' \\(its disks: scsi0\\)"),
    ({"disk": "ide2", "size": "1G"}, "is a CD-ROM drive"),
    ({"storage": "nowhere"}, "storage 'nowhere' does not exist"),
    ({"storage": "local"}, "storage 'local' does not hold VM disks"),
    ({"vmid": 200, "size": "1G"}, "VM 200 does not exist in the cluster \\(it is a container\\)"),
])
def test_disk_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str) -> None:
    with pytest.raises(PveError, match=message):
        pve_disk_ops.ensure_disk(disk_options(**given), check_mode=True)
    assert world.changes() == []
