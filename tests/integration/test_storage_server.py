"""The lab's storage server, an iSCSI SAN and an NFS NAS on it (issue 23): `pvelab twin up
--storage-server` adds `nas` (tgtd with three LUNs, nfs-ganesha with one export, a BMC) beside a
two-node cluster; `pvesm scan iscsi|nfs` finds its target and export, an `iscsidirect` storage lists
the LUNs as PVE does, an `nfs` storage is mounted on every node (pvelab's FUSE client over libnfs)
and holds an ISO, a backup and a disk; a VM's disk on a LUN is a real iSCSI session to the server and
a disk on NFS a real NFS connection (seen there, from the node that runs the VM), both through a live
migration; the server's power is cut and restored through its BMC's door (`Lab.power`): the NFS
storage is "not online" meanwhile, and the guests' writes go on after. PVE's refusals come with
PVE's texts and change nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pvelab.pve.api.schema import endpoints, returns_problems
from pvelab.twin.drive import SHARED_STORAGE, add_shared_storage, form_cluster, guest_page, ssh, watch_live_migration
from pvelab.twin.lab import Lab
from pvelab.twin.nas import StorageServer, export_dir
from pvelab.twin.spec import ISCSI_TARGET, NFS_EXPORT

from .conftest import BIN, REPO, GuestAddresses, api, check_every_get, pve_version, start_lab, wait_until
from .test_ansible_modules import ansible_env, api_args, module

# One run, on PVE 9 (the storage layer is the same code on 8).
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.environ.get("PVELAB_PVE_VERSION", "9") != "9", reason="runs once, on PVE 9 nodes")]
VMID, NFS_VMID = 300, 301
REPL_VMID = 304
ADDRESS = GuestAddresses({VMID: 130, NFS_VMID: 131, 302: 132, 303: 133, REPL_VMID: 134})


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


@pytest.fixture(scope="module")
def nas_storage(lab: Lab) -> str:
    """The server's address, once `nas` (nfs, its export) is added: mounted on pve1 by the add."""
    address = server(lab).spec.link_addr(0)
    run(lab, "pve1", f"pvesm add nfs nas --server {address} --export {NFS_EXPORT} --content images,iso,backup")
    return address


def test_the_nfs_storage_is_mounted_and_active_on_every_node(lab: Lab, nas_storage: str) -> None:
    assert run(lab, "pve2", f"pvesm scan nfs {nas_storage}") == f"{NFS_EXPORT} (everyone)\n"
    assert f"nfs: nas\n\texport {NFS_EXPORT}\n\tpath /mnt/pve/nas\n\tserver {nas_storage}\n" in run(
        lab, "pve2", "cat /etc/pve/storage.cfg")
    for node in ("pve1", "pve2"):  # pve2 mounts it when its status is first asked, as pvestatd would
        status = [line.split() for line in run(lab, node, "pvesm status").splitlines()]
        assert next(row for row in status if row[0] == "nas")[1:3] == ["nfs", "active"], status
        mounts = run(lab, node, "grep /mnt/pve/nas /proc/mounts").split()
        assert mounts[:3] == [f"{nas_storage}:{NFS_EXPORT}", "/mnt/pve/nas", "fuse.nfs"], mounts
    assert sorted(server(lab).nfs_clients()) == sorted(node_address(lab, n) for n in ("pve1", "pve2"))


@pytest.fixture(scope="module")
def iso_on_nas(lab: Lab, nas_storage: str) -> str:
    """The tiny guest's ISO, copied onto the export through pve1's mount."""
    run(lab, "pve1", "mkdir -p /mnt/pve/nas/template/iso && cp /var/lib/vz/template/iso/pvelab-tiny.iso "
                     "/mnt/pve/nas/template/iso/")
    return "nas:iso/pvelab-tiny.iso"


def test_what_one_node_writes_on_the_export_the_other_reads_and_the_server_holds(lab: Lab, iso_on_nas: str
                                                                                ) -> None:
    assert run(lab, "pve2", "md5sum < /mnt/pve/nas/template/iso/pvelab-tiny.iso") == \
        run(lab, "pve1", "md5sum < /var/lib/vz/template/iso/pvelab-tiny.iso")
    assert (export_dir(lab.paths) / "template/iso/pvelab-tiny.iso").stat().st_size > 1024 ** 2
    listing = [line.split() for line in run(lab, "pve2", "pvesm list nas --content iso").splitlines()[1:]]
    assert [row[:3] for row in listing] == [[iso_on_nas, "iso", "iso"]], listing


def test_refusals_on_the_nas_say_why_and_change_nothing(lab: Lab, nas_storage: str) -> None:
    before = run(lab, "pve1", "cat /etc/pve/storage.cfg")
    nowhere = lab.require_record().spec.subnet(0).network_address + 9
    for args, message in (
            (f"nas2 --server {nowhere} --export {NFS_EXPORT}", "create storage failed: storage 'nas2' is not online"),
            (f"nas2 --server {nas_storage} --export /nope",
             f"create storage failed: mount error: mount.nfs: access denied by server while mounting "
             f"{nas_storage}:/nope"),
            (f"nas --server {nas_storage} --export {NFS_EXPORT}", "create storage failed: storage ID 'nas' already "
                                                                   "defined")):
        added = ssh(lab, "pve1", f"pvesm add nfs {args}", timeout=60)
        assert added.returncode != 0 and message in added.stderr, added.stderr
    assert run(lab, "pve1", "cat /etc/pve/storage.cfg") == before
    assert "/mnt/pve/nas2" not in run(lab, "pve1", "cat /proc/mounts")


@pytest.fixture(scope="module")
def vm_on_nfs(lab: Lab, iso_on_nas: str) -> dict[str, str]:
    """VM 301 on pve1: booted from the ISO on the NAS, its heartbeat disk a new volume there."""
    run(lab, "pve1", f"qm create {NFS_VMID} --name nfs{NFS_VMID} --memory 256 --net0 virtio,bridge=vmbr0 "
                     f"--ide2 {iso_on_nas},media=cdrom --scsihw virtio-scsi-pci --scsi0 nas:1 "
                     f"--ide0 {SHARED_STORAGE}:cloudinit --ipconfig0 ip={ADDRESS[NFS_VMID]}/24 --tablet 0 --start 1")
    wait_until(lambda: bool(guest_page(ADDRESS[NFS_VMID]).get("heartbeats", "0") != "0"), 120,
               "VM 301 writing heartbeats to its disk on NFS")
    return guest_page(ADDRESS[NFS_VMID])


def test_a_disk_on_nfs_is_an_nfs_connection_and_holds_a_backup_and_a_live_migration(
        lab: Lab, vm_on_nfs: dict[str, str]) -> None:
    disk = export_dir(lab.paths) / "images" / str(NFS_VMID) / f"vm-{NFS_VMID}-disk-0.raw"
    assert disk.stat().st_size == 1024 ** 3  # the server holds it
    assert run(lab, "pve1", f"qm config {NFS_VMID} | grep ^scsi0") == \
        f"scsi0: nas:{NFS_VMID}/vm-{NFS_VMID}-disk-0.raw,size=1G\n"
    backup = run(lab, "pve1", f"vzdump {NFS_VMID} --storage nas --mode snapshot", timeout=300)
    assert "Backup job finished successfully" in backup
    volid = next(line.split()[0] for line in run(lab, "pve2", "pvesm list nas --content backup").splitlines()[1:])
    assert volid.startswith(f"nas:backup/vzdump-qemu-{NFS_VMID}-") and volid.endswith(".vma"), volid
    assert list((export_dir(lab.paths) / "dump").glob(f"vzdump-qemu-{NFS_VMID}-*.vma"))
    moved = watch_live_migration(lab, "pve1", NFS_VMID, "pve2", ADDRESS[NFS_VMID])
    assert moved["result"].returncode == 0, moved["result"].stderr
    assert moved["after"]["boot_id"] == vm_on_nfs["boot_id"] and moved["after"]["node"] == "pve2"
    start = int(guest_page(ADDRESS[NFS_VMID])["heartbeats"])
    wait_until(lambda: int(guest_page(ADDRESS[NFS_VMID]).get("heartbeats", "0")) >= start + 3, 30,
               "heartbeats to the NFS disk going on after the migration")


def test_every_get_answers_as_the_schema_says_the_san_included(lab: Lab, san: str, nas_storage: str) -> None:
    answered = check_every_get(lab, "pve2")
    assert "GET /nodes/{node}/scan/iscsi" in answered and "GET /nodes/{node}/scan" in answered
    assert "GET /nodes/{node}/scan/nfs" in answered
    assert {path: problems for path, problems in answered.items() if problems} == {}
    node = api(lab, "pve2").nodes("pve2")
    schema = endpoints(lab.require_record().spec.pve_version)
    for key, data in (("GET /nodes/{node}/storage/{storage}/content", node.storage("san").content.get()),
                      ("GET /nodes/{node}/storage/{storage}/status", node.storage("san").status.get()),
                      ("GET /nodes/{node}/scan/iscsi", node.scan.iscsi.get(portal=san)),
                      ("GET /nodes/{node}/scan/nfs", node.scan.nfs.get(server=nas_storage)),
                      ("GET /nodes/{node}/storage/{storage}/status", node.storage("nas").status.get())):
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


def run_drill(name: str, extra: dict[str, object], guests: tuple[int, ...]) -> str:
    """A drill's playbook against this lab, the guests' pages given; its report's lines (printed for the CI log)."""
    pages = {f"vm:{v}": f"http://{ADDRESS[v]}/cgi-bin/status" for v in guests}
    drill = subprocess.run([str(BIN / "ansible-playbook"), f"playbooks/drills/{name}.yml", "-e",
                            json.dumps({**extra, "drill_guest_pages": pages})],
                           cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=600, check=False)
    out = drill.stdout + drill.stderr
    failed = [line for line in out.splitlines() if line.startswith(("fatal:", "failed:"))]
    assert drill.returncode == 0, "\n".join(failed)[:1500] + "\n...\n" + out[-3000:]  # CI shows a tail: the cause first
    report = re.findall(r'^\s+"(.*)",?$', out[out.index("TASK [Report]"):], re.M)
    print(*report, sep="\n")
    return "\n".join(report)


def test_the_storage_server_loss_drill_shows_the_outage_and_the_guests_writing_again(
        lab: Lab, vm_on_lun: dict[str, str], vm_on_nfs: dict[str, str]) -> None:
    """The drill cuts the server's power through its BMC for 15 s while VM 300 (a LUN) and VM 301 (NFS)
    write heartbeats: the NFS storage is not online meanwhile, the guests' writes wait, and both go on
    after power on in the same boot."""
    nas = server(lab)
    text = run_drill("storage_server_loss", {"drill_storage_guests": [f"vm:{VMID}", f"vm:{NFS_VMID}"],
                                             "storage_drill_outage": 15}, (VMID, NFS_VMID))
    assert "storage 'nas' is not online" in text, text
    assert re.search(r"nas\s+nfs\s+inactive", text) and re.search(r"nas\s+nfs\s+active", text), text
    for vmid in (VMID, NFS_VMID):
        assert re.search(rf"vm:{vmid}: heartbeats \d+ before the cut; during the outage (\d+),\s+then \1 \(its writes "
                         r"waited\); \d+ after; same boot \(no reboot\):\s+yes", text), text
    # the server is back as it was: the LUNs listed, one session (the guest's QEMU logged in again)
    assert [line.split()[0] for line in run(lab, "pve1", "pvesm list san").splitlines()[1:]] == [
        "san:lun1", "san:lun2", "san:lun3"]
    wait_until(lambda: len(nas.sessions()) == 1, 60, "the guest's session back",
               explain=lambda: f"sessions: {nas.sessions()}")


WRITERS = {302: "pve1", 303: "pve2"}


@pytest.fixture(scope="module")
def two_writers(lab: Lab, san: str) -> dict[int, dict[str, str]]:
    """VM 302 on pve1 and VM 303 on pve2, each with a heartbeat disk of its own and LUN 2 as its second."""
    for vmid, node in WRITERS.items():
        run(lab, node, f"qm create {vmid} --name writer{vmid} --memory 256 --net0 virtio,bridge=vmbr0 "
                       f"--ide2 {SHARED_STORAGE}:iso/pvelab-tiny.iso,media=cdrom --scsihw virtio-scsi-pci "
                       f"--scsi0 local-lvm:1 --scsi1 san:lun2 --ide0 {SHARED_STORAGE}:cloudinit "
                       f"--ipconfig0 ip={ADDRESS[vmid]}/24 --tablet 0 --start 1")
    for vmid in WRITERS:
        wait_until(lambda v=vmid: bool(guest_page(ADDRESS[v]).get("heartbeats", "0") != "0"), 120,  # type: ignore[misc]
                   f"VM {vmid} up")
    return {vmid: guest_page(ADDRESS[vmid]) for vmid in WRITERS}


def test_the_two_writers_drill_shows_a_plain_filesystem_damaged(lab: Lab, two_writers: dict[int, dict[str, str]]
                                                                ) -> None:
    """Two servers (pve1, pve2) run a guest each with LUN 2 mounted as ext4 at once: e2fsck finds the damage."""
    text = run_drill("two_writers", {"drill_two_writers_guests": [f"vm:{v}" for v in WRITERS],
                                     "two_writers_seconds": 15}, tuple(WRITERS))
    written = [int(n) for n in re.findall(r"^vm:30[23] wrote (\d+) files", text, re.M)]
    assert len(written) == 2 and min(written) > 0, text
    held = re.search(r"the disk holds (\d+) files \(of (\d+) written\)", text)
    fsck = re.search(r"e2fsck -fn: exit (\d+)", text)
    assert held and fsck and int(held.group(2)) == sum(written), text
    # the damage: files one writer's metadata overwrote are gone, or the check finds errors (usually both)
    assert int(held.group(1)) < sum(written) or int(fsck.group(1)) >= 4, text


# -- replication (pvesr): zfspool on each node's rpool, btrfs underneath ----------------------------------
REPL_JOB = f"{REPL_VMID}-0"


def repl_status(lab: Lab, node: str = "pve1") -> dict[str, Any]:
    return dict(json.loads(run(lab, node, f"pvesh get /nodes/{node}/replication/{REPL_JOB}/status "
                                          "--output-format json")))


@pytest.fixture(scope="module")
def replicated(lab: Lab) -> dict[str, Any]:
    """VM 304 on pve1, its heartbeat disk on local-zfs (each node's rpool), and the pve_replication module's
    job to pve2 every minute (made away from a minute's turn, so the first run below is this test's)."""
    run(lab, "pve1", "pvesm add zfspool local-zfs --pool rpool/data --content images,rootdir --sparse 1")
    run(lab, "pve1", f"qm create {REPL_VMID} --name repl{REPL_VMID} --memory 256 --net0 virtio,bridge=vmbr0 "
                     f"--ide2 {SHARED_STORAGE}:iso/pvelab-tiny.iso,media=cdrom --scsihw virtio-scsi-pci "
                     f"--scsi0 local-zfs:1 --ide0 {SHARED_STORAGE}:cloudinit --ipconfig0 ip={ADDRESS[REPL_VMID]}/24 "
                     "--tablet 0 --start 1")
    wait_until(lambda: bool(guest_page(ADDRESS[REPL_VMID]).get("heartbeats", "0") != "0"), 120,
               "VM 304 writing heartbeats to its disk on local-zfs")
    # data on the disk beyond what the guest uses (it reads its heartbeat records from the start): the
    # first sync carries it, the next ones only what the guest wrote since
    run(lab, "pve1", f"dd if=/dev/urandom of=/dev/zvol/rpool/data/vm-{REPL_VMID}-disk-0 bs=1M count=16 seek=512 "
                     "conv=notrunc,fsync status=none")
    if time.time() % 60 > 30:  # pvescheduler runs due jobs on the minute: these runs end well before one
        time.sleep(62 - time.time() % 60)
    args = {**api_args(lab, "pve1"), "vmid": REPL_VMID, "target": "pve2", "schedule": "*/1"}
    steps = {"preview": module(lab, "pvelab.pve.pve_replication", args, check=True, diff=True),
             "create": module(lab, "pvelab.pve.pve_replication", args)}
    steps["first"] = run(lab, "pve1", f"pvesr run --id {REPL_JOB} --verbose")
    steps["again"] = module(lab, "pvelab.pve.pve_replication", {**args, "wait_for_sync": True})
    steps["incremental"] = run(lab, "pve1", f"pvesr run --id {REPL_JOB} --verbose")
    return steps


def status_duration(status: dict[str, Any]) -> str:
    return str(status.get("duration", "-"))


def sent(log: str) -> int:
    """The size a run's log says it sent (zfs send -v's figure), in bytes."""
    found = re.search(r"total estimated size is ([\d.]+)([BKMG])", log)
    assert found, log
    return int(float(found.group(1)) * 1024 ** "BKMG".index(found.group(2)))


def test_a_replication_job_sends_the_disk_whole_then_only_what_changed(lab: Lab, replicated: dict[str, Any]
                                                                        ) -> None:
    assert replicated["preview"]["changed"] and not replicated["preview"]["_failed"], replicated["preview"]
    assert replicated["create"]["id"] == REPL_JOB and replicated["create"]["changed"]
    assert not replicated["again"]["changed"] and replicated["again"]["last_sync"] > 0, replicated["again"]
    assert f"local: {REPL_JOB}\n\ttarget pve2\n\tschedule */1\n\tsource pve1\n" in run(
        lab, "pve2", "cat /etc/pve/replication.cfg")
    first, incremental = replicated["first"], replicated["incremental"]
    assert f"full sync 'local-zfs:vm-{REPL_VMID}-disk-0' (__replicate_{REPL_JOB}_" in first, first
    assert f"successfully imported 'local-zfs:vm-{REPL_VMID}-disk-0'" in first
    assert re.search(rf"incremental sync 'local-zfs:vm-{REPL_VMID}-disk-0' \(__replicate_{REPL_JOB}_\d+__ => "
                     rf"__replicate_{REPL_JOB}_\d+__\)", incremental), incremental
    assert sent(first) >= 16 * 1024 ** 2 > 100 * sent(incremental), (first, incremental)  # what changed, not the disk
    # pve2 holds the volume and only the newest replication snapshot, as pve1 does
    made = re.search(rf"create snapshot '(__replicate_{REPL_JOB}_\d+__)'", incremental)
    assert made, incremental
    newest = made.group(1)
    for node in ("pve1", "pve2"):
        assert run(lab, node, "ls /rpool/data").split() == [f"vm-{REPL_VMID}-disk-0",
                                                            f"vm-{REPL_VMID}-disk-0@{newest}"], node
    # (pvescheduler's own runs: the course lab's db113 job is only ever run by it, and verify checks it
    # synced - molecule `ha`)
    table = run(lab, "pve1", "pvesr status").splitlines()
    assert table[0].split() == ["JobID", "Enabled", "Target", "LastSync", "NextSync", "Duration", "FailCount",
                                "State"]
    assert table[1].split()[:3] == [REPL_JOB, "Yes", "local/pve2"] and table[1].split()[-2:] == ["0", "OK"], table


def test_replication_answers_as_the_schema_says_and_refuses_as_pve(lab: Lab, replicated: dict[str, Any]) -> None:
    node = api(lab, "pve2").nodes("pve1")
    schema = endpoints(lab.require_record().spec.pve_version)
    for key, data in (("GET /cluster/replication", api(lab, "pve2").cluster.replication.get()),
                      ("GET /cluster/replication/{id}", api(lab, "pve2").cluster.replication(REPL_JOB).get()),
                      ("GET /nodes/{node}/replication", node.replication.get()),
                      ("GET /nodes/{node}/replication/{id}", node.replication(REPL_JOB).get()),
                      ("GET /nodes/{node}/replication/{id}/status", node.replication(REPL_JOB).status.get()),
                      ("GET /nodes/{node}/replication/{id}/log", node.replication(REPL_JOB).log.get())):
        assert data, key
        assert returns_problems(schema[key].info.get("returns", {}), data) == [], key
    before = run(lab, "pve1", "cat /etc/pve/replication.cfg")
    for command, message in (
            (f"pvesr create-local-job {REPL_VMID}-1 pve2", f"replication job for guest '{REPL_VMID}' to target "
                                                           "'local/pve2' already exists"),
            (f"pvesr create-local-job {REPL_VMID}-1 pve1", "Source and target must not be identical"),
            ("pvesr create-local-job 999-0 pve2", "Guest '999' does not exist."),
            (f"pvesr create-local-job {REPL_VMID}-1 pve9", "Target 'pve9' does not exist."),
            ("pvesr create-local-job 305-0 pve2", "No replicatable volumes found")):  # VM 305: no disks
        if command.startswith("pvesr create-local-job 305"):
            run(lab, "pve1", "qm create 305 --name nodisk --memory 64")
        done = ssh(lab, "pve1", command)
        assert done.returncode != 0 and message in done.stderr, (command, done.stderr)
    assert run(lab, "pve1", "cat /etc/pve/replication.cfg") == before
    wrong = module(lab, "pvelab.pve.pve_replication", {**api_args(lab, "pve1"), "vmid": REPL_VMID, "target": "pve7"})
    assert wrong["_failed"] and "there is no node 'pve7'" in wrong["msg"], wrong


def test_a_failing_replication_counts_its_failures_and_an_offline_migration_sends_only_what_changed(
        lab: Lab, replicated: dict[str, Any]) -> None:
    """pve2 is cut off the network (as if it were down): the run fails with the error in PVE's state,
    and with its target offline the job waits; back, it is retried 5 minutes after the failure, or at
    once after schedule-now. Then VM 304 migrates offline to pve2: a replication run first, the disk
    not copied again, the job turned round (pve2 -> pve1) and runs from there."""
    lab.partition(["pve2"], None, "all")
    try:
        failed = ssh(lab, "pve1", f"pvesr run --id {REPL_JOB}", timeout=60)
        assert failed.returncode != 0 and "pvesr prepare-local-job" in failed.stderr, failed.stderr
        wait_until(lambda: repl_status(lab)["next_sync"] == 0, 30, "the job waiting for its offline target",
                   explain=lambda: str(repl_status(lab)))
        status = repl_status(lab)
        assert status["fail_count"] == 1 and "pvesr prepare-local-job" in status["error"], status
        assert status["error"].endswith("failed: exit code 255"), status  # ssh's: the target does not answer
        assert "Connection timed out" in run(lab, "pve1", f"cat /var/log/pve/replicate/{REPL_JOB}")
        table = run(lab, "pve1", "pvesr status").splitlines()[1].split()
        assert table[4:6] == ["-", status_duration(status)] and table[6] == "1", table
    finally:
        lab.heal()
    wait_until(lambda: repl_status(lab)["next_sync"] == repl_status(lab)["last_try"] + 5 * 60, 60,
               "PVE's first retry, 5 minutes after the failure", explain=lambda: str(repl_status(lab)))
    run(lab, "pve1", f"pvesr schedule-now {REPL_JOB}")
    assert repl_status(lab)["next_sync"] <= time.time()
    run(lab, "pve1", f"pvesr run --id {REPL_JOB}")
    assert repl_status(lab)["fail_count"] == 0 and "error" not in repl_status(lab)
    run(lab, "pve1", f"qm shutdown {REPL_VMID} --timeout 60 || qm stop {REPL_VMID}", timeout=90)
    moved = run(lab, "pve1", f"qm migrate {REPL_VMID} pve2", timeout=300)
    assert "replicating disk images" in moved and "incremental sync" in moved, moved
    assert "copying local disk images" not in moved and "migration finished successfully" in moved, moved
    assert "target pve1\n\tschedule */1\n\tsource pve2" in run(lab, "pve2", "cat /etc/pve/replication.cfg")
    assert run(lab, "pve1", "ls /rpool/data").split()[0] == f"vm-{REPL_VMID}-disk-0"  # kept: now the replica
    back = run(lab, "pve2", f"pvesr run --id {REPL_JOB} --verbose")  # a stopped guest replicates too
    assert "incremental sync" in back and "local/pve1" in run(lab, "pve2", "pvesr status"), back
