"""The lab's storage server and an iSCSI SAN on it (issue 23, first part): `pvelab twin up
--storage-server` adds `nas` (tgtd with three LUNs, a BMC) beside a two-node cluster; `pvesm scan
iscsi` finds its target, an `iscsidirect` storage lists the LUNs as PVE does, a VM's disk on a LUN is
a real iSCSI session to the server (seen there, from the node that runs the VM) and stays one through
a live migration; the server's power is cut and restored through its BMC's door (`Lab.power`) and
the target is back as it was. PVE's refusals on the SAN come with PVE's texts and change nothing."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from pvelab.pve.api.schema import endpoints, returns_problems
from pvelab.twin.drive import SHARED_STORAGE, add_shared_storage, form_cluster, guest_page, ssh, watch_live_migration
from pvelab.twin.lab import Lab
from pvelab.twin.nas import StorageServer
from pvelab.twin.spec import ISCSI_TARGET

from .conftest import BIN, GuestAddresses, api, check_every_get, pve_version, start_lab, wait_until

# One run, on PVE 9 (the storage layer is the same code on 8).
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.environ.get("PVELAB_PVE_VERSION", "9") != "9", reason="runs once, on PVE 9 nodes")]
VMID = 300
ADDRESS = GuestAddresses({VMID: 130})


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    the_lab = start_lab(pve_version(), node_count=2, storage_server=True)
    try:
        form_cluster(the_lab, "san")
        add_shared_storage(the_lab)
        yield the_lab
    finally:
        the_lab.down(quiet=True)


def server(lab: Lab) -> StorageServer:
    nas = lab.require_record().spec.nas
    assert nas is not None
    return StorageServer(nas, lab.paths)


def run(lab: Lab, node: str, command: str, timeout: float = 120) -> str:
    done = ssh(lab, node, command, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def san(lab: Lab) -> str:
    """The server's portal, once `san` (iscsidirect on its target) is added."""
    portal = server(lab).spec.link_addr(0)
    run(lab, "pve1", f"pvesm add iscsidirect san --portal {portal} --target {ISCSI_TARGET}")
    return portal


def test_scan_finds_the_target_and_the_storage_lists_its_luns(lab: Lab, san: str) -> None:
    assert run(lab, "pve2", f"pvesm scan iscsi {san}") == f"{ISCSI_TARGET} {san}:3260\n"
    status = [line.split() for line in run(lab, "pve2", "pvesm status").splitlines()]
    assert ["san", "iscsidirect", "active", "0", "0", "0", "0.00%"] in status
    listing = run(lab, "pve1", "pvesm list san").splitlines()
    assert listing[0].split() == ["Volid", "Format", "Type", "Size", "VMID"]
    # PVE's sizes are what `iscsi-ls -s` prints: for a 2 GiB LUN libiscsi 1.19 prints `Size:1G` (the last
    # block's address times the block size, divided down with truncation), and so PVE lists 1 GiB
    shown = run(lab, "pve1", f"iscsi-ls -s iscsi://{san}")
    assert "Lun:1    Type:DIRECT_ACCESS (Size:1G)" in shown, shown
    assert [line.split() for line in listing[1:]] == [
        [f"san:lun{n}", "raw", "images", str(1024 ** 3)] for n in (1, 2, 3)]
    assert run(lab, "pve1", "pvesm path san:lun2") == f"iscsi://{san}/{ISCSI_TARGET}/2\n"


def test_every_get_answers_as_the_schema_says_the_san_included(lab: Lab, san: str) -> None:
    answered = check_every_get(lab, "pve2")
    assert "GET /nodes/{node}/scan/iscsi" in answered and "GET /nodes/{node}/scan" in answered
    assert {path: problems for path, problems in answered.items() if problems} == {}
    node = api(lab, "pve2").nodes("pve2")
    schema = endpoints(lab.require_record().spec.pve_version)
    for key, data in (("GET /nodes/{node}/storage/{storage}/content", node.storage("san").content.get()),
                      ("GET /nodes/{node}/storage/{storage}/status", node.storage("san").status.get()),
                      ("GET /nodes/{node}/scan/iscsi", node.scan.iscsi.get(portal=san))):
        assert data, key
        assert returns_problems(schema[key].info.get("returns", {}), data) == [], key


def test_refusals_on_the_san_say_why_and_change_nothing(lab: Lab, san: str) -> None:
    before = run(lab, "pve1", "cat /etc/pve/storage.cfg")
    alloc = ssh(lab, "pve1", "pvesm alloc san 300 vm-300-disk-9 1G")
    assert alloc.returncode != 0 and "can't allocate space in iscsi storage" in alloc.stderr
    snap = ssh(lab, "pve1", "pvesm add iscsidirect san --portal 198.18.0.9 --target x")
    assert snap.returncode != 0 and "storage ID 'san' already defined" in snap.stderr
    assert run(lab, "pve1", "cat /etc/pve/storage.cfg") == before
    # nothing listens at .9 of link0: the scan finds nothing, and a storage there cannot list its LUNs
    nowhere = lab.require_record().spec.subnet(0).network_address + 9
    assert run(lab, "pve1", f"pvesm scan iscsi {nowhere}") == ""
    run(lab, "pve1", f"pvesm add iscsidirect nowhere --portal {nowhere} --target {ISCSI_TARGET}")
    try:
        listed = ssh(lab, "pve1", "pvesm list nowhere")
        assert listed.returncode != 0
        assert f"iscsi error: command '/usr/bin/iscsi-ls -s iscsi://{nowhere}' failed: exit code" in listed.stderr
    finally:
        run(lab, "pve1", "pvesm remove nowhere")


@pytest.fixture(scope="module")
def vm_on_lun(lab: Lab, san: str) -> dict[str, str]:
    """VM 300 on pve1: its heartbeat disk is LUN 1, its CD and cloud-init drive on the shared storage."""
    run(lab, "pve1", f"qm create {VMID} --name san{VMID} --memory 256 --net0 virtio,bridge=vmbr0 "
                     f"--ide2 {SHARED_STORAGE}:iso/pvelab-tiny.iso,media=cdrom --scsihw virtio-scsi-pci "
                     f"--scsi0 san:lun1 --ide0 {SHARED_STORAGE}:cloudinit --ipconfig0 ip={ADDRESS[VMID]}/24 "
                     "--tablet 0 --start 1")
    wait_until(lambda: bool(guest_page(ADDRESS[VMID]).get("heartbeats", "0") != "0"), 120,
               "VM 300 writing heartbeats to its LUN")
    return guest_page(ADDRESS[VMID])


def node_address(lab: Lab, node: str) -> str:
    return lab.require_record().spec.node(node).link_addr(0)


def test_a_disk_on_a_lun_is_an_iscsi_session_and_survives_a_live_migration(lab: Lab, vm_on_lun: dict[str, str]
                                                                            ) -> None:
    nas = server(lab)
    assert node_address(lab, "pve1") in nas.sessions()  # QEMU on pve1 logged in to the target itself
    shown = subprocess.run([str(BIN / "pvelab"), "twin", "storage-server", "--lab", lab.name], capture_output=True,
                           text=True, check=True).stdout  # what a student sees of the server
    assert f"iSCSI target {ISCSI_TARGET} on portal {nas.spec.portal()}" in shown
    assert "  LUN 1: 2048 MiB," in shown and f"sessions: {node_address(lab, 'pve1')}\n" in shown, shown
    assert vm_on_lun["disk"] == "/dev/sda"
    moved = watch_live_migration(lab, "pve1", VMID, "pve2", ADDRESS[VMID])
    assert moved["result"].returncode == 0, moved["result"].stderr
    # the same guest (its boot and its memory), now writing to the LUN from pve2's QEMU
    assert moved["after"]["boot_id"] == vm_on_lun["boot_id"]
    assert int(moved["after"]["counter"]) > int(vm_on_lun["counter"])
    wait_until(lambda: nas.sessions() == [node_address(lab, "pve2")], 30, "the LUN's one session from pve2",
               explain=lambda: f"sessions: {nas.sessions()}")
    start = int(guest_page(ADDRESS[VMID])["heartbeats"])
    wait_until(lambda: int(guest_page(ADDRESS[VMID]).get("heartbeats", "0")) >= start + 3, 30,
               "heartbeats going on after the migration")


def test_power_cut_on_the_server_and_back_the_target_returns_as_it_was(lab: Lab, vm_on_lun: dict[str, str]) -> None:
    nas = server(lab)
    assert lab.power("nas", "off", cause="test: the SAN loses power") == "off"
    gone = ssh(lab, "pve1", "pvesm list san")
    assert gone.returncode != 0 and "iscsi error" in gone.stderr  # the nodes find no portal
    time.sleep(2)
    assert lab.power("nas", "on", cause="test: power back") == "on"
    assert [line.split()[0] for line in run(lab, "pve1", "pvesm list san").splitlines()[1:]] == [
        "san:lun1", "san:lun2", "san:lun3"]
    # the guest's QEMU logs in again by itself (libiscsi reconnects) and its writes go on
    wait_until(lambda: len(nas.sessions()) == 1, 60, "the guest's session back",
               explain=lambda: f"sessions: {nas.sessions()}")
    start = int(guest_page(ADDRESS[VMID]).get("heartbeats", "0"))
    wait_until(lambda: int(guest_page(ADDRESS[VMID]).get("heartbeats", "0")) >= start + 3, 60,
               "heartbeats after the power came back")
