"""The L0 host's facts against a class's plan, before any VM is made: no nested virtualization, a VMID
or bridge of the plan that is someone else's, a missing storage or installer ISO, and an installer too
old for the answer - each refused with what to do; the lab's own VMs and bridges from an earlier run
are not in its way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pvelab.cli import main
from pvelab.nested.l0 import L0Facts, bridge_comment, refusals
from pvelab.nested.plan import NestedClass, PlanError, plan_class

SETTINGS = {"students": ["s001", "s002"], "root_password_hashed": "$6$salt$hash",
            "installer_iso": "local:iso/proxmox-ve_9.1-1.iso"}
STORAGES = [{"storage": "local", "content": "iso,vztmpl,backup"}, {"storage": "local-lvm", "content": "images,rootdir"}]
ISOS = [{"volid": "local:iso/proxmox-ve_9.1-1.iso"}]


def host(**change: Any) -> dict[str, Any]:
    return {"nested": "Y", "network": [{"iface": "vmbr0", "comments": ""}], "storages": STORAGES, "isos": ISOS,
            **change}


def facts(guests: list[dict[str, Any]] | None = None, **change: Any) -> dict[str, Any]:
    """One L0 host, `l0`."""
    return {"guests": guests or [], "hosts": {"l0": host(**change)}}


def refused(data: dict[str, Any], **settings: Any) -> list[str]:
    klass = NestedClass.of({**SETTINGS, **settings})
    return refusals(klass, plan_class(klass), L0Facts.of(data))


def test_an_empty_l0_host_with_nested_virtualization_takes_the_plan() -> None:
    assert refused(facts()) == []
    assert refused(facts(nested="1")) == []  # kvm_amd says 1


@pytest.mark.parametrize("nested,shown", [("N", "nested=N"), ("0", "nested=0"), ("", "no kvm_intel or kvm_amd")])
def test_no_nested_virtualization_is_refused_unless_allowed(nested: str, shown: str) -> None:
    (reason,) = refused(facts(nested=nested))
    assert reason.startswith(f"the L0 host l0 has no nested virtualization ({shown}") and "require_kvm: false" in reason
    assert refused(facts(nested=nested), require_kvm=False) == []


def test_a_vmid_of_someone_elses_guest_is_refused_the_labs_own_is_kept() -> None:
    other = {"vmid": 4012, "type": "qemu", "name": "webserver", "node": "l0", "tags": ""}
    assert refused(facts(guests=[other])) == [
        "VMID 4012 (s001/pve2) is in use by qemu 'webserver' on l0: choose another first_vmid"]
    ct = {"vmid": 4021, "type": "lxc", "name": "pve1", "node": "l0", "tags": "pvelab;s002"}
    assert "VMID 4021 (s002/pve1) is in use by lxc 'pve1'" in refused(facts(guests=[ct]))[0]
    ours = {"vmid": 4012, "type": "qemu", "name": "pve2", "node": "l0", "tags": "pvelab;s001"}
    assert refused(facts(guests=[ours])) == []
    someone_elses = {**ours, "tags": "pvelab;s002"}  # another student's node: not this one
    assert len(refused(facts(guests=[someone_elses]))) == 1


def test_a_bridge_of_someone_else_is_refused_the_labs_own_is_kept() -> None:
    node = plan_class(NestedClass.of(SETTINGS))[0]
    assert bridge_comment(node, 1) == "pvelab nested s001 link1"
    theirs = [{"iface": "vmbr4001", "comments": "storage net\n"}]
    assert refused(facts(network=theirs)) == [
        "bridge vmbr4001 (s001 link1) exists on the L0 host l0 and is not this lab's (its comment: 'storage net'): "
        "choose another first_bridge"]
    ours = [{"iface": "vmbr4001", "comments": "pvelab nested s001 link1\n"}]
    assert refused(facts(network=ours)) == []


def test_storages_and_the_installer_iso_must_be_there() -> None:
    reasons = refused(facts(storages=[STORAGES[0]], isos=[]))
    assert reasons[0] == "storage 'local-lvm' is not on the L0 host l0: set storage to one of local"
    assert reasons[1].startswith("the installer ISO local:iso/proxmox-ve_9.1-1.iso is not on the L0 host l0")
    no_iso = [{"storage": "local", "content": "vztmpl"}, STORAGES[1]]
    assert "storage 'local' on l0 does not hold iso (content: vztmpl)" in refused(facts(storages=no_iso))[0]


def test_an_installer_too_old_for_the_answer_is_refused_before_anything() -> None:
    with pytest.raises(PlanError, match=r"proxmox-installer 8\.2\.6\) is too old for this answer"):
        plan_class(NestedClass.of({**SETTINGS, "installer_version": "8.2.6"}))
    assert len(plan_class(NestedClass.of({**SETTINGS, "installer_version": "9.1.0"}))) == 6


def test_the_cli_refuses_with_every_reason_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "class.json").write_text(json.dumps(SETTINGS))
    (tmp_path / "l0.json").write_text(json.dumps(facts(nested="N", isos=[])))
    assert main(["nested", "plan", str(tmp_path / "class.json"), "--l0-facts", str(tmp_path / "l0.json"),
                 "--discs", str(tmp_path / "discs")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvelab: error: the L0 hosts cannot take this plan:\n- the L0 host l0 has no nested")
    assert "\n- the installer ISO" in err and not (tmp_path / "discs").exists()  # nothing made
    (tmp_path / "l0.json").write_text(json.dumps(facts()))
    assert main(["nested", "plan", str(tmp_path / "class.json"), "--l0-facts", str(tmp_path / "l0.json")]) == 0
    node = json.loads(capsys.readouterr().out)["nodes"][0]
    assert "vmid" not in node["create"] and node["bridge_comments"] == ["pvelab nested s001 link0",
                                                                         "pvelab nested s001 link1"]


def test_the_plan_gives_each_student_an_inventory_as_site_yml_reads_one(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "class.json").write_text(json.dumps(SETTINGS))
    assert main(["nested", "plan", str(tmp_path / "class.json")]) == 0
    inventories = json.loads(capsys.readouterr().out)["inventories"]
    assert list(inventories) == ["s001", "s002"]
    second = inventories["s002"]["all"]
    assert second["vars"] == {"ansible_user": "root", "pve_cluster_name": "s002"}
    assert second["children"]["pve_nodes"]["hosts"] == {
        f"pve{n}": {"ansible_host": f"10.99.2.1{n}", "link0_addr": f"10.99.2.1{n}", "link1_addr": f"10.99.3.1{n}"}
        for n in (1, 2, 3)}


CLUSTER = {"hosts": {"l0a": 0, "l0b": 0}}


def cluster_facts(guests: list[dict[str, Any]] | None = None, **per_host: dict[str, Any]) -> dict[str, Any]:
    return {"guests": guests or [], "hosts": {name: host(**per_host.get(name, {})) for name in ("l0a", "l0b")}}


def test_over_an_l0_cluster_each_host_that_gets_students_is_checked_and_named() -> None:
    assert refused(cluster_facts(), **CLUSTER) == []
    reasons = refused(cluster_facts(l0b={"nested": "N", "isos": []}), **CLUSTER)
    assert reasons[0].startswith("the L0 host l0b has no nested virtualization (nested=N)")
    assert reasons[1].startswith("the installer ISO local:iso/proxmox-ve_9.1-1.iso is not on the L0 host l0b")
    assert len(reasons) == 2
    # a host that gets no student is not in the way
    assert refused(cluster_facts(l0b={"nested": "N"}), hosts={"l0a": 0}) == []


def test_a_bridge_is_checked_on_its_students_host_only() -> None:
    theirs = {"network": [{"iface": "vmbr4000", "comments": "uplink"}]}
    assert refused(cluster_facts(l0b=theirs), **CLUSTER) == []  # vmbr4000 is s001's, on l0a
    assert "bridge vmbr4000 (s001 link0) exists on the L0 host l0a" in refused(cluster_facts(l0a=theirs), **CLUSTER)[0]


def test_a_students_vm_found_on_another_host_than_planned_is_refused() -> None:
    ours_elsewhere = {"vmid": 4022, "type": "qemu", "name": "pve2", "node": "l0a", "tags": "pvelab;s002"}
    (reason,) = refused(cluster_facts([ours_elsewhere]), **CLUSTER)
    assert reason.startswith("VMID 4022 (s002/pve2) is on l0a, and the plan puts s002 on l0b (the L0 hosts or their "
                             "capacities changed)")
    assert refused(cluster_facts([{**ours_elsewhere, "node": "l0b"}]), **CLUSTER) == []


def test_facts_without_the_planned_host_are_refused() -> None:
    assert refused(facts(), **CLUSTER) == [
        "L0 host l0a (s001) is not among the hosts read (l0)", "L0 host l0b (s002) is not among the hosts read (l0)"]
    with pytest.raises(PlanError, match="the L0 facts name no host"):
        L0Facts.of({"guests": []})
