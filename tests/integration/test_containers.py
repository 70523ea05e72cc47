"""Containers on a 3-node twin, as a student makes and moves them: `pct` and the API create real
LXC containers from the lab's busybox template, the host reaches their page, `pct exec` runs in
them, a restart-mode migration moves config and root filesystem (heartbeats kept, new boot), and
PVE's refusals change nothing. One cluster per module."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pvelab.twin.drive import SHARED_STORAGE, add_shared_storage, form_cluster, guest_page, ssh
from pvelab.twin.guest_os import CT_TEMPLATE_NAME
from pvelab.twin.lab import Lab

from .conftest import GuestAddresses, api, backup_job_run_once, check_every_get, guest_ids, wait_until

pytestmark = pytest.mark.lab
CT, BY_API, RESTORED, TEMPLATE_CT, LINKED, FULL = 200, 210, 220, 230, 231, 232
ADDRESS = GuestAddresses({CT: 200, BY_API: 210, LINKED: 231, FULL: 232})
TEMPLATE = f"local:vztmpl/{CT_TEMPLATE_NAME}"


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Lab:
    form_cluster(lab, "cts")
    add_shared_storage(lab)
    return lab


@pytest.fixture(scope="module")
def container(cluster: Lab) -> dict[str, str]:
    made = ssh(cluster, "pve1", f"pct create {CT} {TEMPLATE} --hostname ct{CT} --memory 128 "
                                f"--net0 name=eth0,bridge=vmbr0,ip={ADDRESS[CT]}/24 --rootfs local-lvm:1 --start 1")
    assert made.returncode == 0, made.stdout + made.stderr
    wait_until(lambda: bool(guest_page(ADDRESS[CT])), 30, "CT 200 answering HTTP")
    return guest_page(ADDRESS[CT])


def test_pct_creates_and_starts_a_container_in_pves_format(cluster: Lab, container: dict[str, str]) -> None:
    config = ssh(cluster, "pve1", f"cat /etc/pve/lxc/{CT}.conf").stdout
    assert f"rootfs: local-lvm:vm-{CT}-disk-0,size=1G" in config and "hostname: ct200" in config
    assert "hwaddr=BC:24:11:" in config
    assert (container["vmid"], container["name"], container["node"]) == (str(CT), f"ct{CT}", "pve1")
    listed = ssh(cluster, "pve1", "pct list").stdout
    assert "ct200" in listed and "running" in listed
    assert ssh(cluster, "pve1", f"pct exec {CT} -- hostname").stdout.strip() == f"ct{CT}"
    assert f"vm-{CT}-disk-0 raw     rootdir" in ssh(cluster, "pve1", "pvesm list local-lvm").stdout


def test_refusals_change_nothing(cluster: Lab, container: dict[str, str]) -> None:
    before = ssh(cluster, "pve1", f"cat /etc/pve/lxc/{CT}.conf").stdout
    cases = {
        f"pct create {CT} {TEMPLATE}": f"CT {CT} already exists on node 'pve1'",
        f"pct destroy {CT}": f"CT {CT} is running - destroy failed",
        f"pct migrate {CT} pve2": "running container can only be migrated in restart mode",
        f"pct migrate {CT} pve2 --online": "lxc live migration is currently not implemented",
        f"pct create 299 {TEMPLATE} --rootfs local:1": "storage 'local' does not support container directories",
    }
    for command, message in cases.items():
        out = ssh(cluster, "pve1", command)
        assert out.returncode == 255 and message in out.stdout + out.stderr, (command, out.stdout, out.stderr)
    assert ssh(cluster, "pve1", f"cat /etc/pve/lxc/{CT}.conf").stdout == before
    assert "299" not in guest_ids(cluster)


def test_restart_migration_moves_the_root_filesystem(cluster: Lab, container: dict[str, str]) -> None:
    wait_until(lambda: int(guest_page(ADDRESS[CT]).get("heartbeats", 0)) >= 5, 15, "five heartbeats")
    before = guest_page(ADDRESS[CT])
    moved = ssh(cluster, "pve1", f"pct migrate {CT} pve2 --restart")
    assert moved.returncode == 0 and "migration finished successfully" in moved.stdout, moved.stdout + moved.stderr
    wait_until(lambda: guest_page(ADDRESS[CT]).get("node") == "pve2", 30, "CT 200 answering from pve2")
    after = guest_page(ADDRESS[CT])
    assert after["boot_id"] != before["boot_id"]  # a restart, not a live migration
    assert int(after["heartbeats"]) >= int(before["heartbeats"])  # the same root filesystem
    assert f"vm-{CT}-disk-0" not in ssh(cluster, "pve1", "pvesm list local-lvm").stdout
    resources = {r["id"]: r for r in api(cluster, "pve3").cluster.resources.get(type="vm")}
    assert resources[f"lxc/{CT}"]["node"] == "pve2" and resources[f"lxc/{CT}"]["status"] == "running"


def test_backups_of_a_container_and_a_restore_on_another_node(cluster: Lab, container: dict[str, str]) -> None:
    """Backups of CT 200 in two modes, one restored on pve3; the restored CT's root is grown (`pct
    resize`) and moved to a directory storage (`pct move-volume`, its files with it)."""
    holder = str(guest_ids(cluster)[str(CT)]["node"])  # pve2 after the migration test, pve1 alone
    # five heartbeats to find in the restored copy (run alone, this test sees the CT just started)
    wait_until(lambda: int(guest_page(ADDRESS[CT]).get("heartbeats", 0)) >= 5, 60, "CT 200's heartbeats")
    archives = {}
    for mode, compress in (("snapshot", "zstd"), ("stop", "gzip")):
        out = ssh(cluster, holder, f"vzdump {CT} --mode {mode} --storage {SHARED_STORAGE} --compress {compress}")
        assert out.returncode == 0 and "Backup job finished successfully" in out.stdout, out.stdout + out.stderr
        archives[mode] = out.stdout.split("creating vzdump archive '")[1].split("'")[0]
        log = ssh(cluster, holder, f"cat {archives[mode].rsplit('.tar', 1)[0]}.log").stdout
        assert f"Finished Backup of VM {CT}" in log
        if mode == "snapshot":  # a snapshot of its root on the (emulated) thin pool, archived, removed
            assert "create storage snapshot 'vzdump'" in log and "cleanup temporary 'vzdump' snapshot" in log
        wait_until(lambda: bool(guest_page(ADDRESS[CT])), 30, f"CT 200 answering after the {mode} backup")
    assert archives["snapshot"].endswith(".tar.zst") and archives["stop"].endswith(".tar.gz")
    assert f"/dump/vzdump-lxc-{CT}-" in archives["stop"]
    assert "lock" not in ssh(cluster, holder, f"pct config {CT}").stdout
    restored = ssh(cluster, "pve3", f"pct restore {RESTORED} {archives['stop']} --storage local-lvm --unique 1")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    config = ssh(cluster, "pve3", f"pct config {RESTORED}").stdout
    assert f"rootfs: local-lvm:vm-{RESTORED}-disk-0,size=1G" in config and "hostname: ct200" in config
    heartbeats = ssh(cluster, "pve3", f"wc -l < /dev/pve/vm-{RESTORED}-disk-0/var/lib/pvelab/heartbeats").stdout
    assert int(heartbeats) >= 5
    grown = ssh(cluster, "pve3", f"pct resize {RESTORED} rootfs +1G")
    assert grown.returncode == 0 and f"rootfs: local-lvm:vm-{RESTORED}-disk-0,size=2G" in \
        ssh(cluster, "pve3", f"pct config {RESTORED}").stdout, grown.stdout + grown.stderr
    assert ssh(cluster, "pve1", "pvesm set local --content iso,vztmpl,backup,rootdir").returncode == 0
    moved = ssh(cluster, "pve3", f"pct move-volume {RESTORED} rootfs local --delete 1", timeout=300)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    config = ssh(cluster, "pve3", f"pct config {RESTORED}").stdout
    assert f"rootfs: local:{RESTORED}/subvol-{RESTORED}-disk-0.subvol,size=2G" in config and "unused" not in config
    moved_beats = ssh(cluster, "pve3", f"wc -l < /var/lib/vz/images/{RESTORED}/subvol-{RESTORED}-disk-0.subvol"
                                       "/var/lib/pvelab/heartbeats").stdout
    assert moved_beats == heartbeats and f"vm-{RESTORED}-disk-0" not in ssh(cluster, "pve3", "ls /dev/pve").stdout


def test_a_running_container_snapshotted_and_rolled_back(cluster: Lab, container: dict[str, str]) -> None:
    """`pct snapshot` of the running CT (frozen while its root is copied, on the emulated thin pool),
    a file made after it, `pct rollback --start 1`: the CT runs again, a new boot, without the file."""
    holder = str(guest_ids(cluster)[str(CT)]["node"])
    taken = ssh(cluster, holder, f"pct snapshot {CT} before --description 'a save point'")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert ssh(cluster, holder, f"pct exec {CT} -- touch /var/lib/pvelab/after-the-snapshot").returncode == 0
    tree = ssh(cluster, holder, f"pct listsnapshot {CT}").stdout.splitlines()
    assert tree[0].startswith("`-> before") and tree[0].endswith("a save point"), tree
    assert tree[1].startswith(" `-> current") and tree[1].endswith("You are here!"), tree
    booted = guest_page(ADDRESS[CT])["boot_id"]
    rolled = ssh(cluster, holder, f"pct rollback {CT} before --start 1")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    wait_until(lambda: guest_page(ADDRESS[CT]).get("boot_id") not in (None, booted), 30, "CT 200 booted again")
    assert ssh(cluster, holder, f"pct exec {CT} -- test -e /var/lib/pvelab/after-the-snapshot").returncode == 1
    config = ssh(cluster, holder, f"cat /etc/pve/lxc/{CT}.conf").stdout
    assert "parent: before" in config and "[before]" in config and "#a save point" in config
    dropped = ssh(cluster, holder, f"pct delsnapshot {CT} before")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert "before" not in ssh(cluster, holder, f"cat /etc/pve/lxc/{CT}.conf").stdout
    assert "snap_" not in ssh(cluster, holder, "ls -a /var/lib/pvelab/lvmthin/pve/data").stdout


def test_a_container_template_cloned_linked_here_and_full_to_another_node(cluster: Lab) -> None:
    """`pct template` on local-lvm, `pct clone` linked (the default for a template) on its node and
    `--full` onto the shared storage of pve2: both clones start, with their own names and addresses."""
    ssh(cluster, "pve1", f"pvesm set {SHARED_STORAGE} --content images,iso,backup,rootdir")
    made = ssh(cluster, "pve1", f"pct create {TEMPLATE_CT} {TEMPLATE} --hostname tpl --memory 64 "
                                f"--net0 name=eth0,bridge=vmbr0,ip={ADDRESS[LINKED]}/24 --rootfs local-lvm:1")
    assert made.returncode == 0, made.stdout + made.stderr
    try:
        assert ssh(cluster, "pve1", f"pct template {TEMPLATE_CT}").returncode == 0
        config = ssh(cluster, "pve1", f"pct config {TEMPLATE_CT}").stdout
        assert f"rootfs: local-lvm:base-{TEMPLATE_CT}-disk-0,size=1G" in config and "template: 1" in config
        refused = ssh(cluster, "pve1", f"pct start {TEMPLATE_CT}")
        assert refused.returncode == 255 and "you can't start a CT if it's a template" in refused.stderr, \
            refused.stdout + refused.stderr
        linked = ssh(cluster, "pve1", f"pct clone {TEMPLATE_CT} {LINKED} --hostname linked")
        assert linked.returncode == 0 and "create linked clone of mount point rootfs" in linked.stdout, \
            linked.stdout + linked.stderr
        full = ssh(cluster, "pve1", f"pct clone {TEMPLATE_CT} {FULL} --full 1 --storage {SHARED_STORAGE} "
                                    "--target pve2 --hostname full")
        assert full.returncode == 0 and "create full clone of mountpoint rootfs" in full.stdout, \
            full.stdout + full.stderr
        for vmid, node in ((LINKED, "pve1"), (FULL, "pve2")):
            started = ssh(cluster, node, f"pct set {vmid} --net0 name=eth0,bridge=vmbr0,ip={ADDRESS[vmid]}/24 "
                                         f"&& pct start {vmid}")
            assert started.returncode == 0, started.stdout + started.stderr
            wait_until(lambda v=vmid: bool(guest_page(ADDRESS[v])), 30, f"CT {vmid} answering HTTP")
        assert (guest_page(ADDRESS[LINKED])["name"], guest_page(ADDRESS[LINKED])["node"]) == ("linked", "pve1")
        assert (guest_page(ADDRESS[FULL])["name"], guest_page(ADDRESS[FULL])["node"]) == ("full", "pve2")
        assert f"rootfs: {SHARED_STORAGE}:{FULL}/subvol-{FULL}-disk-0.subvol,size=1G" in \
            ssh(cluster, "pve2", f"pct config {FULL}").stdout
    finally:
        for vmid, node in ((LINKED, "pve1"), (FULL, "pve2"), (TEMPLATE_CT, "pve1")):
            ssh(cluster, node, f"pct stop {vmid}; pct destroy {vmid}")


def test_a_backup_job_for_all_guests_backs_up_the_container(cluster: Lab, container: dict[str, str]) -> None:
    """`all 1` in jobs.cfg means every guest of the node, containers too (the job is held to the CT's node)."""
    node = str(guest_ids(cluster)[str(CT)]["node"])
    _, ran = backup_job_run_once(cluster, "all-minutely", all=1, node=node, storage=SHARED_STORAGE, mode="snapshot",
                                 compress="zstd")
    assert [(t["node"], t.get("exitstatus")) for t in ran] == [(node, "OK")]
    listed = ssh(cluster, node, f"pvesm list {SHARED_STORAGE} --content backup").stdout
    assert f"vzdump-lxc-{CT}-" in listed and ".tar.zst" in listed, listed


def test_a_policy_of_keep_last_2_run_three_times_leaves_two_and_the_protected_one(cluster: Lab,
                                                                                  container: dict[str, str]) -> None:
    """vzdump as a job runs it (`--prune-backups keep-last=2`), three times after a protected backup
    with notes: the CT's older backups on the storage go, the protected one stays and cannot be freed."""
    node = str(guest_ids(cluster)[str(CT)]["node"])
    first = ssh(cluster, node, f"vzdump {CT} --storage {SHARED_STORAGE} --mode suspend --protected 1 "
                               "--notes-template '{{guestname}} before the drill'")
    assert first.returncode == 0 and "marking backup as protected" in first.stdout, first.stdout + first.stderr
    for _ in range(3):
        time.sleep(1)  # one archive per second: vzdump names them by the second
        out = ssh(cluster, node, f"vzdump {CT} --storage {SHARED_STORAGE} --mode suspend --prune-backups keep-last=2")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "INFO: prune older backups with retention: keep-last=2" in out.stdout, out.stdout
    assert "INFO: pruned 1 backup(s) not covered by keep-retention policy" in out.stdout, out.stdout
    backups = api(cluster, "pve1").nodes(node).storage(SHARED_STORAGE).content.get(content="backup", vmid=CT)
    kept = [b for b in backups if b.get("protected")]
    assert len(backups) == 3 and len(kept) == 1, backups
    assert kept[0]["notes"] == f"ct{CT} before the drill"
    refused = ssh(cluster, node, f"pvesm free {kept[0]['volid']}")
    assert refused.returncode == 255 and "cannot remove protected volume" in refused.stdout + refused.stderr
    wait_until(lambda: bool(guest_page(ADDRESS[CT])), 30, "CT 200 answering after its backups")


def test_an_upload_lands_in_the_storage(cluster: Lab, tmp_path: Any) -> None:
    client = api(cluster, "pve1")
    template = tmp_path / "uploaded-ct_1.0_amd64.tar.gz"
    template.write_bytes(b"\x1f\x8b" + b"\0" * 1000)
    with open(template, "rb") as handle:
        upid = client.nodes("pve1").storage("local").upload.post(content="vztmpl", filename=handle)
    wait_until(lambda: client.nodes("pve1").tasks(upid).status.get()["status"] == "stopped", 30, "the upload")
    assert client.nodes("pve1").tasks(upid).status.get()["exitstatus"] == "OK"
    assert "local:vztmpl/uploaded-ct_1.0_amd64.tar.gz" in ssh(cluster, "pve1", "pvesm list local").stdout


def test_the_api_creates_a_container_and_every_get_answers_as_pve(cluster: Lab) -> None:
    client = api(cluster, "pve1")
    upid = client.nodes("pve3").lxc.post(vmid=BY_API, ostemplate=TEMPLATE, hostname="byapi", memory=128,
                                         net0=f"name=eth0,bridge=vmbr0,ip={ADDRESS[BY_API]}/24",
                                         rootfs="local-lvm:1", start=1)
    wait_until(lambda: client.nodes("pve3").tasks(upid).status.get()["status"] == "stopped", 60, "vzcreate")
    assert client.nodes("pve3").tasks(upid).status.get()["exitstatus"] == "OK"
    wait_until(lambda: bool(guest_page(ADDRESS[BY_API])), 30, "CT 210 answering HTTP")
    assert client.nodes("pve3").lxc(BY_API).status.current.get()["status"] == "running"
    snap = client.nodes("pve3").lxc(BY_API).snapshot.post(snapname="swept", description="for the GET sweep")
    wait_until(lambda: client.nodes("pve3").tasks(snap).status.get()["status"] == "stopped", 30, "vzsnapshot")
    assert client.nodes("pve3").tasks(snap).status.get()["exitstatus"] == "OK"
    problems = {path: found for path, found in check_every_get(cluster, "pve3").items() if found}
    assert problems == {}
    stop = client.nodes("pve3").lxc(BY_API).status.stop.post()
    wait_until(lambda: client.nodes("pve3").tasks(stop).status.get()["status"] == "stopped", 30, "vzstop")
    gone = client.nodes("pve3").lxc(BY_API).delete()
    wait_until(lambda: client.nodes("pve3").tasks(gone).status.get()["status"] == "stopped", 30, "vzdestroy")
    assert str(BY_API) not in guest_ids(cluster)
