"""A nested node's VM as the L0 host is asked to make it: parameters PVE's API accepts (its schema, PVE 8
and 9), the shape docs/nested.md gives, the answer disc beside the installer, and the change after the
install; a plan whose MACs and bridges do not pair up is refused."""

from __future__ import annotations

import pytest

from pvelab.nested import answer
from pvelab.nested.vm import VmShape, after_install_params, create_params
from pvelab.pve.api import schema

PLAN = answer.NodePlan(hostname="s1-pve1", domain="student1.lab", cidr="198.18.40.11/24", gateway="198.18.40.1",
                       dns="198.18.40.1", mac="BC:24:11:40:01:01", root_password_hashed="$6$salt$hash",
                       extra_macs=("BC:24:11:40:01:02",))
SHAPE = VmShape(vmid=4101, storage="local-lvm", bridges=("vmbr401", "vmbr402"),
                installer_iso="local:iso/proxmox-ve_9.1-1.iso", answer_iso="local:iso/ais-4101.iso",
                tags=("pvelab", "student1"))


@pytest.mark.parametrize("major", ["8", "9"])
def test_the_vm_is_one_pves_api_accepts(major: str) -> None:
    found = schema.match(major, "POST", "/nodes/pve1/qemu")
    assert found is not None
    params = {k: str(v) for k, v in create_params(PLAN, SHAPE).items()}
    typed = schema.verify(found[0], {**params, "node": "pve1"})
    assert typed["net0"] == "virtio=BC:24:11:40:01:01,bridge=vmbr401,firewall=0"
    assert typed["net1"] == "virtio=BC:24:11:40:01:02,bridge=vmbr402,firewall=0"
    change = schema.match(major, "PUT", "/nodes/pve1/qemu/4101/config")
    assert change is not None
    schema.verify(change[0], {**{k: str(v) for k, v in after_install_params().items()}, "node": "pve1",
                              "vmid": "4101"})


def test_the_shape_installs_then_boots_its_disk() -> None:
    params = create_params(PLAN, SHAPE)
    assert (params["boot"], params["ide2"], params["ide3"]) == (
        "order=ide2;scsi0", "local:iso/proxmox-ve_9.1-1.iso,media=cdrom", "local:iso/ais-4101.iso,media=cdrom")
    assert (params["cpu"], params["machine"], params["scsihw"], params["balloon"]) == ("host", "q35",
                                                                                      "virtio-scsi-single", 0)
    assert str(params["scsi1"]).endswith(",serial=osd-4101") and params["tags"] == "pvelab;student1"
    assert after_install_params() == {"delete": "ide2,ide3", "boot": "order=scsi0"}
    # the answer written for this VM is one its installer accepts on it (the NIC by its MAC, the disk
    # by its serial when the plan gives one)
    answer.check(answer.render(PLAN), answer.planned_machine(PLAN, SHAPE.osd_disk_gib))
    serial = answer.NodePlan(**{**PLAN.__dict__, "os_disk_serial": "os-4101"})
    assert str(create_params(serial, SHAPE)["scsi0"]).endswith(",ssd=1,serial=os-4101")
    answer.check(answer.render(serial), answer.planned_machine(serial, SHAPE.osd_disk_gib, "osd-4101"))


def test_macs_and_bridges_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 MACs for 1 bridges"):
        create_params(PLAN, VmShape(**{**SHAPE.__dict__, "bridges": ("vmbr401",)}))
