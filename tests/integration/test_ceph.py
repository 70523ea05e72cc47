"""Ceph on the twin, through pveceph as a student types it: real daemons (Debian's Ceph), PVE's
messages and refusals (each refusal changes nothing), the API's answers validated against the schema,
and a VM whose disk is an RBD image, live-migrated. One cluster per module, built step by step."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from pvelab.twin.drive import create_tiny_vm, fingerprint, guest_page, pvecm_add, pvecm_create, ssh, watch_guest
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

from .conftest import (
    BIN,
    REPO,
    TEST_LAB,
    api,
    check_every_get,
    guest_state,
    lab_addr,
    lab_subnet,
    own_lab,
    pve_version,
    wait_until,
)
from .test_ansible_modules import ansible_env, api_args, community_module, module

pytestmark = [pytest.mark.lab, pytest.mark.pve8]
NODES = ("pve1", "pve2", "pve3")
NOT_INITIALISED = "pveceph configuration not initialized - missing '/etc/pve/ceph.conf', missing '/etc/pve/ceph'"


def run(lab: Lab, node: str, command: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return ssh(lab, node, command, timeout=timeout)


def ceph_json(lab: Lab, command: str) -> dict:
    done = run(lab, "pve1", f"ceph {command} --format json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def healthy(lab: Lab) -> bool:
    status = ceph_json(lab, "status")
    states = {s["state_name"] for s in status["pgmap"].get("pgs_by_state", [])}
    return status["health"]["status"] == "HEALTH_OK" and states <= {"active+clean"}


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Lab:
    password = lab.require_record().root_password
    assert pvecm_create(lab, "pve1", "cephclu").returncode == 0
    for node in ("pve2", "pve3"):
        joined = pvecm_add(lab, node, "pve1", password, fingerprint(lab, "pve1"))
        assert joined.returncode == 0, joined.stderr
    return lab


@pytest.fixture(scope="module")
def before_init(cluster: Lab) -> dict[str, subprocess.CompletedProcess[str]]:
    """What pveceph says before `pveceph init`."""
    return {cmd: run(cluster, "pve2", f"pveceph {cmd}") for cmd in ("status", "mon create", "pool ls")}


@pytest.fixture(scope="module")
def modules_before_init(cluster: Lab) -> dict[str, dict]:
    """The Ceph modules in check mode on a cluster without Ceph: what they would do, changing nothing."""
    api1 = api_args(cluster, "pve1")
    return {
        "init": module(cluster, "pvelab.pve.pve_ceph", {**api1, "node": "pve1", "network": str(lab_subnet(cluster))},
                       check=True, diff=True),
        "mon": module(cluster, "pvelab.pve.pve_ceph_mon", {**api1, "node": "pve2"}, check=True),
        "osd": module(cluster, "pvelab.pve.pve_ceph_osd", {**api1, "node": "pve3", "dev": "/dev/sdb"}, check=True),
        "pool": module(cluster, "pvelab.pve.pve_ceph_pool",
                       {**api1, "node": "pve1", "name": "vmpool", "add_storages": True}, check=True),
        "mon for real": module(cluster, "pvelab.pve.pve_ceph_mon", {**api1, "node": "pve2"}),
        "conf": {"exists": run(cluster, "pve1", "test -e /etc/pve/ceph.conf").returncode == 0},
    }


@pytest.fixture(scope="module")
def one_mon(cluster: Lab, before_init: dict[str, subprocess.CompletedProcess[str]],
            modules_before_init: dict[str, dict]) -> dict[str, str]:
    """init on pve1 and its first monitor (with its manager), as a student starts."""
    subnet = cluster.require_record().spec.subnet(0)
    init = run(cluster, "pve1", f"pveceph init --network {subnet}")
    assert init.returncode == 0 and init.stdout == "", init.stderr
    created = run(cluster, "pve1", "pveceph mon create")
    assert created.returncode == 0, created.stderr
    last = run(cluster, "pve1", "pveceph mon destroy pve1")  # the only monitor: refused, changing nothing
    return {"conf": run(cluster, "pve1", "cat /etc/pve/ceph.conf").stdout, "mon create": created.stdout,
            "link": run(cluster, "pve1", "readlink /etc/ceph/ceph.conf").stdout.strip(),
            "destroy last": f"{last.returncode} {last.stderr}",
            "mons after": " ".join(m["name"] for m in ceph_json(cluster, "mon dump")["mons"])}


@pytest.fixture(scope="module")
def ceph(cluster: Lab, one_mon: dict[str, str]) -> Lab:
    """The course's Ceph: a monitor and manager per node, an OSD on each /dev/sdb, vmpool with its storage."""
    for node in ("pve2", "pve3"):
        for command in ("pveceph mon create", "pveceph mgr create"):
            done = run(cluster, node, command)
            assert done.returncode == 0, done.stderr
    for node in NODES:
        done = run(cluster, node, "pveceph osd create /dev/sdb")
        assert done.returncode == 0 and "create OSD on /dev/sdb (bluestore)" in done.stdout, done.stderr
    pool = run(cluster, "pve1", "pveceph pool create vmpool --pg_num 32 --add_storages 1")
    assert pool.returncode == 0, pool.stderr
    wait_until(lambda: healthy(cluster), 180, "HEALTH_OK with every PG active+clean")
    return cluster


def test_pveceph_before_init_says_what_is_missing(before_init: dict[str, subprocess.CompletedProcess[str]]) -> None:
    for command, done in before_init.items():
        assert done.returncode == 255, command
        assert done.stderr.strip() == NOT_INITIALISED, (command, done.stderr)


def test_pveceph_install_finds_ceph_there_and_asks_first_on_a_terminal(cluster: Lab) -> None:
    release = "18.2 Reef" if pve_version() == "9" else "16.2 Pacific"  # Debian's, which the nodes run
    plain = run(cluster, "pve3", "pveceph install")
    assert plain.returncode == 0 and "WARN: Enterprise repository selected, but no active subscription!" in plain.stdout
    assert plain.stdout.rstrip().endswith(f"installed Ceph {release} successfully!")
    declined = run(cluster, "pve3", "echo n | script -qec 'pveceph install' /dev/null")
    assert f"This will install Ceph {release} - continue (y/N)? " in declined.stdout
    assert "Aborting installation as requested" in declined.stdout and declined.returncode != 0


def test_check_mode_before_init_tells_what_would_be_made_and_makes_nothing(modules_before_init: dict[str, dict]
                                                                          ) -> None:
    for name in ("init", "mon", "osd", "pool"):
        assert not modules_before_init[name]["_failed"] and modules_before_init[name]["changed"], name
    assert "initialised" in modules_before_init["init"]["_diff"]  # --diff shows what init would set
    assert modules_before_init["conf"]["exists"] is False
    really = modules_before_init["mon for real"]
    assert really["_failed"] and "Ceph is not initialised on node 'pve2'" in really["msg"]
    assert "run pve_ceph (pveceph init) first" in really["msg"]


def test_the_modules_find_the_course_ceph_as_it_is_and_refuse_bad_input(ceph: Lab) -> None:
    api1 = api_args(ceph, "pve1")
    osd = module(ceph, "pvelab.pve.pve_ceph_osd", {**api1, "node": "pve2", "dev": "sdb"})
    assert not osd["_failed"] and not osd["changed"] and osd["osdid"] >= 0
    pool = module(ceph, "pvelab.pve.pve_ceph_pool", {**api1, "node": "pve1", "name": "vmpool", "size": 3, "min_size": 2,
                                          "pg_num": 32, "add_storages": True})
    assert not pool["_failed"] and not pool["changed"]
    wider = module(ceph, "pvelab.pve.pve_ceph_pool", {**api1, "node": "pve1", "name": "vmpool", "min_size": 1},
                   check=True, diff=True)
    assert wider["changed"] and "min_size" in wider["_diff"]
    bad = module(ceph, "pvelab.pve.pve_ceph_pool", {**api1, "node": "pve1", "name": "other", "size": 2, "min_size": 3})
    assert bad["_failed"] and "min_size 3 is larger than size 2" in bad["msg"]
    last_mons = module(ceph, "pvelab.pve.pve_ceph_mon", {**api1, "node": "pve1", "state": "absent"}, check=True)
    assert last_mons["changed"] and not last_mons["_failed"]  # three monitors: one may go
    assert "other" not in [p["pool_name"] for p in ceph_json(ceph, "osd dump")["pools"]]  # nothing made
    info = module(ceph, "pvelab.pve.pve_ceph_info", {**api1, "node": "pve3"})
    assert info["health"] == "HEALTH_OK" and sorted(info["quorum"]) == list(NODES)
    assert {o["host"] for o in info["osds"].values()} == set(NODES) and info["pools"]["vmpool"]["size"] == 3


def test_init_and_the_first_monitor_write_pves_files(cluster: Lab, one_mon: dict[str, str]) -> None:
    conf = one_mon["conf"]
    subnet = str(cluster.require_record().spec.subnet(0))
    pve1 = cluster.require_record().spec.node("pve1").link_addr(0)
    assert f"\tpublic_network = {subnet}\n" in conf and f"\tcluster_network = {subnet}\n" in conf
    assert f"[mon.pve1]\n\tpublic_addr = {pve1}\n" in conf
    assert re.search(rf"\tmon_host = {re.escape(pve1)}\n", conf)
    assert "[client.crash]\n\tkeyring = /etc/pve/ceph/$cluster.$name.keyring\n" in conf
    assert one_mon["link"] == "/etc/pve/ceph.conf"
    out = one_mon["mon create"]
    assert out.index("creating new monitor keyring") < out.index("created the first monitor, assume it's safe")
    assert "creating manager directory '/var/lib/ceph/mgr/ceph-pve1'" in out  # the first monitor brings a manager
    keyrings = run(cluster, "pve1", "ls /etc/pve/priv/ /etc/pve/ceph/").stdout.split()
    assert {"ceph.client.admin.keyring", "ceph.mon.keyring", "ceph.client.crash.keyring"} <= set(keyrings)


def test_the_last_monitor_cannot_go(one_mon: dict[str, str]) -> None:
    assert one_mon["destroy last"].startswith("255 ") and "can't remove last monitor" in one_mon["destroy last"]
    assert "[mon.pve1]" in one_mon["conf"] and one_mon["mons after"] == "pve1"  # nothing changed


def test_the_course_ceph_reaches_health_ok_with_pves_outputs(ceph: Lab) -> None:
    status = ceph_json(ceph, "status")
    assert status["monmap"]["num_mons"] == 3 and sorted(status["quorum_names"]) == list(NODES)
    assert status["osdmap"]["num_up_osds"] == status["osdmap"]["num_in_osds"] == 3
    tree = ceph_json(ceph, "osd tree")
    hosts = {n["name"] for n in tree["nodes"] if n["type"] == "host"}
    assert hosts == set(NODES)  # one OSD per node: three copies on three hosts
    listing = run(ceph, "pve1", "pveceph pool ls").stdout
    assert listing.startswith("┌") and "│ vmpool " in listing and "Crush Rule Name" in listing
    storage = run(ceph, "pve1", "cat /etc/pve/storage.cfg").stdout
    assert "rbd: vmpool\n\tcontent rootdir,images\n\tkrbd 0\n\tpool vmpool\n" in storage
    assert run(ceph, "pve2", "test -f /etc/pve/priv/ceph/vmpool.keyring").returncode == 0
    for node in NODES:  # the RBD storage is active on every node
        status_line = next(line for line in run(ceph, node, "pvesm status").stdout.splitlines()
                           if line.startswith("vmpool "))
        assert status_line.split()[1:3] == ["rbd", "active"], status_line


def test_disks_list_shows_the_osd_disk(ceph: Lab) -> None:
    disks = api(ceph, "pve2").nodes("pve2").disks.list.get()
    sdb = next(d for d in disks if d["devpath"] == "/dev/sdb")
    assert sdb["used"] == "ceph_bluestore" and sdb["osdid"] >= 0 and sdb["osdid-list"] == [sdb["osdid"]]
    assert sdb["size"] == LabSpec().osd_size


def test_refusals_change_nothing(ceph: Lab) -> None:
    before = ceph_json(ceph, "osd dump")
    in_use = run(ceph, "pve1", "pveceph osd create /dev/sdb")
    assert in_use.returncode == 255 and in_use.stderr.strip() == "device '/dev/sdb' is already in use"
    no_disk = run(ceph, "pve1", "pveceph osd create /dev/sdz")
    assert no_disk.returncode == 255 and "not a valid block device" in no_disk.stderr
    bad_pool = run(ceph, "pve1", "pveceph pool create badpool --size 2 --min_size 3")
    assert "pool min_size must be between 1 and size, which is set to 2" in bad_pool.stderr
    purge = run(ceph, "pve1", "pveceph purge")
    assert purge.returncode == 255
    assert purge.stderr.startswith("Unable to purge Ceph!\n\nTo continue:\n")
    assert "- remove pools, this will !!DESTROY DATA!!" in purge.stderr
    assert "- remove active OSD on pve1" in purge.stderr
    assert "- remove other MONs, pve1 is not the last MON" in purge.stderr
    after = ceph_json(ceph, "osd dump")
    assert [p["pool_name"] for p in after["pools"]] == [p["pool_name"] for p in before["pools"]]
    assert after["max_osd"] == before["max_osd"]
    assert run(ceph, "pve1", "test -f /etc/pve/ceph.conf").returncode == 0
    on_pve1 = next(n["children"][0] for n in ceph_json(ceph, "osd tree")["nodes"] if n["name"] == "pve1")
    foreign = run(ceph, "pve2", f"pveceph osd destroy {on_pve1}")
    assert foreign.returncode == 255 and f"OSD osd.{on_pve1} does not belong to node pve2!" in foreign.stderr


def test_every_get_answers_as_the_schema_says(ceph: Lab) -> None:
    answered = check_every_get(ceph, "pve2")
    assert "GET /nodes/{node}/ceph/osd" in answered and "GET /cluster/ceph/metadata" in answered
    assert {k: v for k, v in answered.items() if v} == {}


def test_a_vm_on_rbd_runs_and_live_migrates_with_its_disk(ceph: Lab) -> None:
    made = run(ceph, "pve1", "qm create 150 --memory 128 --scsi0 vmpool:1 --cdrom local:iso/pvelab-tiny.iso "
                             "--net0 virtio,bridge=vmbr0 && qm start 150")
    assert made.returncode == 0, made.stderr
    assert "vm-150-disk-0" in run(ceph, "pve2", "rbd ls vmpool").stdout  # the image is in Ceph, seen from pve2
    shown = run(ceph, "pve1", "qm showcmd 150").stdout
    if pve_version() == "9":  # QEMU 10: a -blockdev tree, QEMU opening the image through librbd itself
        assert '"conf":"/etc/pve/ceph.conf","detect-zeroes":"on","discard":"ignore","driver":"rbd",' \
            '"image":"vm-150-disk-0"' in shown and '"pool":"vmpool"' in shown and '"user":"admin"' in shown, shown
    else:  # PVE 8's QEMU: -drive with an rbd: file name
        assert "file=rbd:vmpool/vm-150-disk-0:conf=/etc/pve/ceph.conf" in shown, shown
    moved = run(ceph, "pve1", "qm migrate 150 pve2 --online", timeout=300)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "copying local disk images" not in moved.stdout  # shared storage: only the memory moves
    wait_until(lambda: "status: running" in run(ceph, "pve2", "qm status 150").stdout, 60, "vm 150 running on pve2")
    # vzdump reads an RBD disk through QEMU (snapshot mode: the backup job; stop mode: qemu-img over librbd),
    # qmrestore writes one back into a new RBD image
    for mode in ("snapshot", "stop"):  # running, then stopped (the disk holds still for the comparison)
        dumped = run(ceph, "pve2", f"vzdump 150 --storage local --mode {mode} --compress zstd", timeout=300)
        assert dumped.returncode == 0, dumped.stdout + dumped.stderr
        assert run(ceph, "pve2", "qm stop 150").returncode == 0
    archive = run(ceph, "pve2", "ls -t /var/lib/vz/dump/ | grep '^vzdump-qemu-150-.*vma.zst$' | head -1").stdout.strip()
    restored = run(ceph, "pve2", f"qmrestore /var/lib/vz/dump/{archive} 151 --storage vmpool", timeout=300)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "new volume ID is 'vmpool:vm-151-disk-0'" in restored.stdout
    same = run(ceph, "pve2", "cmp <(rbd export vmpool/vm-150-disk-0 - 2>/dev/null) <(rbd export vmpool/vm-151-disk-0 - "
                             "2>/dev/null) && echo same")
    assert "same" in same.stdout  # the stopped VM's disk, restored bit for bit
    assert run(ceph, "pve2", "qm destroy 150 && qm destroy 151").returncode == 0
    assert "vm-15" not in run(ceph, "pve1", "rbd ls vmpool").stdout


@pytest.mark.skipif(pve_version() != "9", reason="a minute of lab time: runs once per CI run, on PVE 9 nodes (it "
                                                "passed on PVE 8 nodes too, in run K)")
def test_a_disk_moved_online_into_rbd_then_lost_with_its_snapshot_and_restored(ceph: Lab) -> None:
    """VM 152 runs from local-lvm; `qm disk move` takes its disk into vmpool while its page is read
    every 100 ms (QEMU's mirror, the guest switched over: it answers throughout, on the same boot).
    A snapshot with its RAM on RBD, rolled back to: the same boot, its memory of that instant. Then
    the snapshot_vs_backup drill on it: its RBD image is lost with the snapshot, the rollback
    fails, the backup restores it. Last, community.proxmox's proxmox_disk moves the restored disk back."""
    address = lab_addr(ceph, 152)
    made = create_tiny_vm(ceph, "pve1", 152, address)
    assert made.returncode == 0, made.stdout + made.stderr
    wait_until(lambda: int(guest_page(address).get("heartbeats", 0)) >= 2, 90, "VM 152's heartbeats",
               explain=lambda: guest_state(ceph, "pve1", 152, address))
    watched = watch_guest(ceph, "pve1", "qm disk move 152 scsi0 vmpool --delete 1", address)
    moved = watched["result"]
    assert moved.returncode == 0, moved.stdout + moved.stderr
    print(f"\nonline move local-lvm -> vmpool: {watched['seconds']:.1f} s, the guest's longest silence "
          f"{watched['longest_gap']:.2f} s")
    assert "drive-scsi0: Completing block job..." in moved.stdout and "all 'mirror' jobs are ready" in moved.stdout
    assert watched["longest_gap"] < 3 and watched["after"].get("boot_id") == watched["before"]["boot_id"], watched
    assert "scsi0: vmpool:vm-152-disk-0,size=64M" in run(ceph, "pve1", "qm config 152").stdout
    assert "vm-152-disk-0" not in run(ceph, "pve1", "ls /var/lib/pvelab/lvmthin/pve/data").stdout  # --delete
    # a snapshot with its RAM on RBD (the state volume an RBD image too): the rollback resumes that instant
    taken = run(ceph, "pve1", "qm snapshot 152 withram --vmstate 1")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "vm-152-state-withram" in run(ceph, "pve1", "rbd ls vmpool").stdout
    at_snapshot = guest_page(address)
    wait_until(lambda: int(guest_page(address).get("counter", 0)) > int(at_snapshot["counter"]) + 3, 30,
               "the guest's page counted on after the snapshot")
    rolled = run(ceph, "pve1", "qm rollback 152 withram")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    wait_until(lambda: bool(guest_page(address)), 30, "VM 152 answering after the rollback")
    resumed = guest_page(address)
    assert resumed["boot_id"] == at_snapshot["boot_id"], resumed  # the same boot: resumed, not restarted
    assert int(resumed["counter"]) <= int(at_snapshot["counter"]) + 2, resumed  # its memory of that instant
    gone = run(ceph, "pve1", "qm delsnapshot 152 withram")
    assert gone.returncode == 0 and "vm-152-state-withram" not in run(ceph, "pve1", "rbd ls vmpool").stdout

    drill = subprocess.run(
        [str(BIN / "ansible-playbook"), "playbooks/drills/snapshot_vs_backup.yml", "-e", json.dumps({
            "drill_snapshot_guest": "vm:152", "drill_backup_storage": "local",
            "drill_guest_pages": {"vm:152": f"http://{address}/cgi-bin/status"}})],
        cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=900, check=False)
    out = drill.stdout + drill.stderr
    assert drill.returncode == 0, out[-4000:]
    assert "rollback to the snapshot: FAILED - the snapshot went with the disk" in out, out[-4000:]
    print(*re.findall(r'"((?:vm:152|snapshot |backup |the guest |rollback |start |restored |the restored |a snapshot )'
                      r'[^"]*)"', out), sep="\n")  # the drill's report, for the CI log

    auth = api_args(ceph, "pve1")
    back = community_module(ceph, "community.proxmox.proxmox_disk", {
        "api_host": auth["api_host"], "api_user": "root@pam", "api_password": auth["api_password"],
        "validate_certs": False, "vmid": 152, "disk": "scsi0", "state": "moved", "target_storage": "local-lvm",
        "delete_moved": True, "timeout": 120})
    assert back["changed"] and not back["_failed"], back
    assert "scsi0: local-lvm:vm-152-disk-0,size=64M" in run(ceph, "pve1", "qm config 152").stdout
    assert guest_page(address), "the restored guest stopped answering while its disk moved back"
    assert run(ceph, "pve1", "qm stop 152 && qm destroy 152").returncode == 0
    assert "vm-152" not in run(ceph, "pve1", "rbd ls vmpool").stdout


def test_an_osd_on_a_too_small_disk_is_refused_on_a_standalone_node() -> None:
    """A one-node lab with a 2 GiB disk: Ceph on a standalone node, and ceph-volume's size floor."""
    small = own_lab(f"{TEST_LAB}-ceph")
    try:
        small.up(LabSpec(node_count=1, pve_version=pve_version(), osd_size=2 * 1024 ** 3))
        subnet = small.require_record().spec.subnet(0)
        for command in (f"pveceph init --network {subnet}", "pveceph mon create"):
            done = run(small, "pve1", command)
            assert done.returncode == 0, done.stderr
        refused = run(small, "pve1", "pveceph osd create /dev/sdb")
        assert refused.returncode == 255 and "Insufficient space (<5GB)" in refused.stderr
        assert run(small, "pve1", "ceph osd ls").stdout.strip() == ""  # no OSD was made
        answered = check_every_get(small, "pve1")  # a standalone node's answers validate too
        assert "GET /nodes/{node}/ceph/mon" in answered and {k: v for k, v in answered.items() if v} == {}
    finally:
        small.down(quiet=True)


def test_an_osd_is_taken_out_destroyed_wiped_and_made_again_by_the_module(ceph: Lab) -> None:
    api1 = api_args(ceph, "pve1")
    gone = module(ceph, "pvelab.pve.pve_ceph_osd", {**api1, "node": "pve3", "dev": "/dev/sdb", "state": "absent"})
    assert not gone["_failed"] and gone["changed"], gone.get("msg")
    log = "\n".join(gone["log"])
    for line in (f"destroy OSD osd.{gone['osdid']}", f"Remove osd.{gone['osdid']} from the CRUSH map",
                 f"Remove the osd.{gone['osdid']} authentication key.", "wipe disk/partition: /dev/sdb"):
        assert line in log, log
    sdb = next(d for d in api(ceph, "pve3").nodes("pve3").disks.list.get() if d["devpath"] == "/dev/sdb")
    assert "used" not in sdb and sdb["osdid"] == -1  # wiped: free for a new OSD
    assert "pve3" not in {n["name"] for n in ceph_json(ceph, "osd tree")["nodes"] if n.get("children")}
    back = module(ceph, "pvelab.pve.pve_ceph_osd", {**api1, "node": "pve3", "dev": "/dev/sdb"})
    assert not back["_failed"] and back["changed"] and back["osdid"] >= 0, back.get("msg")
    wait_until(lambda: healthy(ceph), 300, "HEALTH_OK again with the OSD made anew")
