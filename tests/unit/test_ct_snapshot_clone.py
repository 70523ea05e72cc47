"""Container snapshots, templates and clones without a lab: container roots (directories) on the
emulated lvmthin and a dir storage in a temporary directory, snapshots taken, rolled back and removed
through the same steps the API runs, pve-container's refusals (each leaving everything as it was); and
`qm disk unlink` / `qm set --delete` of drives as qemu-server treats their volumes; a volume handed to
another guest (`qm disk move` / `pct move-volume` with `--target-vmid`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.access import guard
from pvelab.pve.api.routes import ApiException
from pvelab.pve.guests import api, clone, containers, ct_clone, disk_api, snapshot, snapshot_api, store
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config, volumes

STORAGE_CFG = """dir: store
\tpath {root}/store
\tcontent images,rootdir

dir: shared
\tpath {root}/shared
\tcontent rootdir
\tshared 1

lvmthin: thin
\tthinpool data
\tvgname pve
\tcontent images,rootdir

"""
CT = """arch: amd64
hostname: web
memory: 256
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=198.18.1.50/24,type=veth
ostype: unmanaged
rootfs: {root},size=1G
"""


@pytest.fixture
def lab(node_sandbox: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = node_sandbox(STORAGE_CFG)
    monkeypatch.setattr(containers, "running", lambda vmid: False)
    monkeypatch.setattr(ct_clone, "check_quorum", lambda: None)
    monkeypatch.setattr(ct_clone.access_store, "read", type("Access", (), {"pools": {}}))  # no pools
    monkeypatch.setattr(guard, "require", lambda *args, **kwargs: None)
    return root


def make_ct(vmid: int, storage: str = "thin", node: str = "pve1") -> str:
    """A stopped container whose root holds /etc/hostname and a symlink; its root's volume ID."""
    volid = volumes.backend(storage, config.get(storage)).alloc_rootdir(vmid, 1024 * 1024)
    root = containers.volume_path(volid)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("web\n")
    (root / "etc" / "localtime").symlink_to("/usr/share/zoneinfo/UTC")
    path = store.config_path(node, vmid, "lxc")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CT.format(root=volid))
    return volid


def guest(vmid: int) -> snapshot.Guest:
    return snapshot.Guest("pve1", vmid, "lxc")


def quiet(_line: str) -> None:
    pass


@pytest.mark.parametrize(("kind", "refused", "taken"), [
    ("qemu", ["current", "pending", "PENDING", "Pending"], ["Current", "vzdump"]),
    ("lxc", ["current", "vzdump"], ["Current", "VZDUMP", "pending"]),
])
def test_reserved_snapshot_names_are_refused_as_each_kind_refuses_them(
        kind: str, refused: list[str], taken: list[str]) -> None:
    """qemu-server refuses 'current' as written and 'pending' in any case; pve-container 'current'
    and 'vzdump' (its backups' snapshot), as written."""
    for name in refused:
        with pytest.raises(ApiException, match=rf"^unable to use snapshot name '{name.lower()}' \(reserved name\)$"):
            snapshot_api.KINDS[kind].check_name(name)
    for name in taken:
        snapshot_api.KINDS[kind].check_name(name)


def test_a_container_root_on_thin_is_snapshotted_changed_and_rolled_back(lab: Path) -> None:
    volid = make_ct(200)
    root = containers.volume_path(volid)
    world = snapshot.ContainerNode("pve1")
    snapshot.create(guest(200), "before", False, "a save point", world, quiet)
    (root / "etc" / "hostname").write_text("changed\n")
    (root / "etc" / "new-file").write_text("x")
    conf = guest(200).load()
    assert conf.main.options["parent"] == "before"
    assert conf.snapshots["before"].description == "a save point"
    snapshot.rollback(guest(200), "before", world, quiet)
    assert (root / "etc" / "hostname").read_text() == "web\n"
    assert not (root / "etc" / "new-file").exists()
    assert os.readlink(root / "etc" / "localtime") == "/usr/share/zoneinfo/UTC"
    snapshot.delete(guest(200), "before", False, world, quiet)
    pool = lab / "lvm" / "pve" / "data"
    assert sorted(p.name for p in pool.iterdir()) == [".vm-200-disk-0.size", "vm-200-disk-0"]
    assert guest(200).load().snapshots == {}


def test_a_rollback_restores_the_size_the_root_had(lab: Path) -> None:
    volid = make_ct(201)
    thin, volname = volumes.volume_backend(volid)
    world = snapshot.ContainerNode("pve1")
    snapshot.create(guest(201), "small", False, None, world, quiet)
    thin.resize(volname, 2 << 30)
    snapshot.rollback(guest(201), "small", world, quiet)
    assert thin.size(volname) == 1 << 30


def test_a_root_on_a_dir_storage_is_refused_and_nothing_changes(lab: Path) -> None:
    make_ct(202, "store")
    before = store.config_path("pve1", 202, "lxc").read_text()
    with pytest.raises(GuestError, match="^snapshot feature is not available$"):
        snapshot.create(guest(202), "s1", False, None, snapshot.ContainerNode("pve1"), quiet)
    assert store.config_path("pve1", 202, "lxc").read_text() == before


def test_a_bind_mount_makes_a_container_unsnapshottable(lab: Path) -> None:
    make_ct(203)
    path = store.config_path("pve1", 203, "lxc")
    path.write_text(path.read_text() + "mp0: /srv/data,mp=/data\n")
    with pytest.raises(GuestError, match="^snapshot feature is not available$"):
        snapshot.create(guest(203), "s1", False, None, snapshot.ContainerNode("pve1"), quiet)


def test_a_running_container_is_frozen_for_its_snapshot_and_thawed(lab: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    make_ct(204)
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(containers, "running", lambda vmid: True)
    monkeypatch.setattr(containers, "freeze", lambda vmid, frozen: calls.append((vmid, frozen)))
    snapshot.create(guest(204), "live", False, None, snapshot.ContainerNode("pve1"), quiet)
    assert calls == [(204, True), (204, False)]


def test_a_template_on_thin_renames_its_root_and_clones_link_from_it(lab: Path) -> None:
    make_ct(210)
    ct_clone.template("pve1", 210)
    conf = store.load("pve1", 210, "lxc")
    assert conf.main.options["template"] == "1"
    assert conf.main.options["rootfs"] == "thin:base-210-disk-0,size=1G"
    plan = ct_clone.begin_clone("pve1", 210, 211, {"hostname": "web2"}, "root@pam")
    assert not plan.full  # a template's clone is linked unless asked otherwise
    ct_clone.clone("pve1", 210, 211, {}, plan, quiet)
    new = store.load("pve1", 211, "lxc").main.options
    assert new["rootfs"] == "thin:vm-211-disk-0,size=1G"
    assert new["hostname"] == "web2"
    assert "template" not in new and "lock" not in new
    assert new["net0"] != store.load("pve1", 210, "lxc").main.options["net0"]  # a new MAC
    root = containers.volume_path("thin:vm-211-disk-0")
    assert (root / "etc" / "hostname").read_text() == "web\n"
    assert "lock" not in store.load("pve1", 210, "lxc").main.options


def test_a_template_with_snapshots_or_twice_is_refused(lab: Path) -> None:
    make_ct(212)
    snapshot.create(guest(212), "s1", False, None, snapshot.ContainerNode("pve1"), quiet)
    with pytest.raises(GuestError, match="^unable to create template, because CT contains snapshots$"):
        ct_clone.template("pve1", 212)
    make_ct(213)
    ct_clone.template("pve1", 213)
    with pytest.raises(GuestError, match="^you can't convert a template to a template$"):
        ct_clone.template("pve1", 213)


def test_a_subvol_on_a_dir_storage_templates_in_place_and_only_copies(lab: Path) -> None:
    volid = make_ct(214, "store")
    ct_clone.template("pve1", 214)
    assert store.parse_drive(store.load("pve1", 214, "lxc").main.options["rootfs"])["file"] == volid
    source = store.config_path("pve1", 214, "lxc").read_text()
    with pytest.raises(GuestError, match=f"^Linked clone feature for '{volid}' is not available$"):
        ct_clone.begin_clone("pve1", 214, 215, {}, "root@pam")
    assert store.config_path("pve1", 214, "lxc").read_text() == source  # the `disk` lock given back
    assert not store.config_path("pve1", 215, "lxc").exists()
    plan = ct_clone.begin_clone("pve1", 214, 215, {"full": True}, "root@pam")
    ct_clone.clone("pve1", 214, 215, {"full": True}, plan, quiet)
    new_volid = store.parse_drive(store.load("pve1", 215, "lxc").main.options["rootfs"])["file"]
    assert new_volid == "store:215/subvol-215-disk-0.subvol"
    assert (containers.volume_path(new_volid) / "etc" / "hostname").read_text() == "web\n"


def test_a_full_clone_from_a_snapshot_copies_the_snapshot(lab: Path) -> None:
    volid = make_ct(216)
    snapshot.create(guest(216), "s1", False, None, snapshot.ContainerNode("pve1"), quiet)
    (containers.volume_path(volid) / "etc" / "hostname").write_text("later\n")
    params: dict[str, Any] = {"snapname": "s1", "storage": "store"}
    plan = ct_clone.begin_clone("pve1", 216, 217, params, "root@pam")
    ct_clone.clone("pve1", 216, 217, params, plan, quiet)
    new = store.load("pve1", 217, "lxc").main.options
    assert "parent" not in new and "snaptime" not in new
    assert (containers.volume_path(store.parse_drive(new["rootfs"])["file"]) / "etc" / "hostname"
            ).read_text() == "web\n"


@pytest.mark.parametrize(("params", "running", "error"), [
    ({"full": False, "storage": "store"}, False, "parameter 'storage' not allowed for linked clones"),
    ({}, True, "Full clone of a running container is only possible from a snapshot"),
    ({"snapname": "nope"}, False, "snapshot 'nope' does not exist"),
    ({"target": "pve2"}, False, "can't clone CT to node 'pve2' (CT uses local storage)"),
    ({"storage": "store", "target": "pve2"}, False, "can't clone to non-shared storage 'store'"),
])
def test_clone_refusals_leave_source_and_target_as_they_were(lab: Path, monkeypatch: pytest.MonkeyPatch,
                                                            params: dict[str, Any], running: bool,
                                                            error: str) -> None:
    make_ct(218)
    monkeypatch.setattr(containers, "running", lambda vmid: running)
    monkeypatch.setattr(clone.members, "read", lambda: {"nodelist": {"pve1": {}, "pve2": {}}})
    monkeypatch.setattr(config, "available_on", lambda storage, node: True)
    before = store.config_path("pve1", 218, "lxc").read_text()
    with pytest.raises(GuestError, match=f"^{error.replace('(', '[(]').replace(')', '[)]')}$"):
        ct_clone.begin_clone("pve1", 218, 219, params, "root@pam")
    assert store.config_path("pve1", 218, "lxc").read_text() == before
    assert not store.config_path("pve1", 219, "lxc").exists()


# -- qm disk unlink / qm set --delete: what becomes of a removed drive's volume ----------------------
VM = """memory: 256
scsi0: {disk0},size=1M
scsi1: {disk1},size=1M
"""


def make_vm(vmid: int) -> tuple[str, str]:
    thin = volumes.backend("thin", config.get("thin"))
    disks = (thin.alloc(vmid, None, 1024, "raw"), thin.alloc(vmid, None, 1024, "raw"))
    path = store.config_path("pve1", vmid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(VM.format(disk0=disks[0], disk1=disks[1]))
    return disks


def unlink(vmid: int, idlist: str, force: bool = False) -> None:
    ctx = type("Ctx", (), {"node": "pve1", "caller": type("Caller", (), {"name": "root@pam"})()})()
    api.update_config(ctx, {"vmid": vmid, "delete": idlist, "force": force}, quiet)  # type: ignore[arg-type]


def test_an_unlinked_disk_is_kept_as_unused_then_freed_when_unused_goes(lab: Path, monkeypatch: pytest.MonkeyPatch
                                                                        ) -> None:
    monkeypatch.setattr(api.runtime, "pid_of", lambda vmid: None)
    disk0, disk1 = make_vm(300)
    unlink(300, "scsi1")
    options = store.load("pve1", 300).main.options
    assert "scsi1" not in options and options["unused0"] == disk1
    assert volumes.volume_path(disk1).exists()
    unlink(300, "unused0")
    assert "unused0" not in store.load("pve1", 300).main.options
    assert not (lab / "lvm" / "pve" / "data" / volumes.parse_volume_id(disk1)[1]).exists()
    unlink(300, "scsi0", force=True)  # --force: freed at once, no unusedN
    assert store.load("pve1", 300).main.options == {"memory": "256"}
    assert not (lab / "lvm" / "pve" / "data" / volumes.parse_volume_id(disk0)[1]).exists()


def test_a_disk_a_snapshot_holds_is_not_freed(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.runtime, "pid_of", lambda vmid: None)
    _disk0, disk1 = make_vm(301)
    path = store.config_path("pve1", 301)
    path.write_text(path.read_text() + f"\n[s1]\nmemory: 256\nscsi1: {disk1},size=1M\nsnaptime: 1\n")
    before = path.read_text()
    with pytest.raises(GuestError, match=r"volume is still in use \(snapshot\?\)$"):
        unlink(301, "scsi1", force=True)
    assert path.read_text() == before
    assert volumes.volume_path(disk1).exists()


# -- a volume handed to another guest (move_disk / move_volume with target-vmid) --------------------------
def listed(lab: Path, guests: dict[int, str]) -> None:
    """The cluster's VMID list (/etc/pve/.vmlist) naming these guests on pve1."""
    (lab / "vmlist").write_text(json.dumps({"ids": {str(v): {"node": "pve1", "type": t} for v, t in guests.items()}}))


def test_a_vm_disk_goes_to_another_vm_under_its_next_name_and_leaves_the_boot_order(lab: Path) -> None:
    disk0, disk1 = make_vm(310)
    make_vm(311)
    path = store.config_path("pve1", 310)
    path.write_text(path.read_text() + "boot: order=scsi0;scsi1;net0\n")
    listed(lab, {310: "qemu", 311: "qemu"})
    lines: list[str] = []
    clone.reassign_disk("pve1", 310, {"disk": "scsi1", "target-vmid": 311, "target-disk": "scsi2"}, lines.append)
    source, target = store.load("pve1", 310).main.options, store.load("pve1", 311).main.options
    assert "scsi1" not in source and source["boot"] == "order=scsi0;net0"
    assert target["scsi2"] == "thin:vm-311-disk-2,size=1M"  # 311 has disks 0 and 1 already
    assert volumes.volume_path("thin:vm-311-disk-2").exists() and not volumes.volume_path(disk1).exists()
    assert lines[0] == "reassign disk 'scsi1' from VM '310' as 'scsi2' to VM '311'"
    assert disk0 in source["scsi0"]


@pytest.mark.parametrize(("params", "error"), [
    ({"disk": "scsi0", "target-vmid": 313}, "Target disk key 'scsi0' is already in use for VM '313'"),
    ({"disk": "scsi9", "target-vmid": 313, "target-disk": "scsi5"}, "Disk 'scsi9' for VM '312' does not exist"),
    ({"disk": "scsi0", "target-vmid": 399, "target-disk": "scsi5"}, "could not find target VM 399"),
])
def test_a_reassign_refused_changes_nothing(lab: Path, params: dict[str, Any], error: str) -> None:
    make_vm(312)
    make_vm(313)
    listed(lab, {312: "qemu", 313: "qemu"})
    before = [store.config_path("pve1", v).read_text() for v in (312, 313)]
    with pytest.raises(GuestError, match=f"^{error}$"):
        clone.reassign_disk("pve1", 312, params, quiet)
    assert [store.config_path("pve1", v).read_text() for v in (312, 313)] == before


def two_cts(lab: Path, vmid: int, target_vmid: int, extra: str) -> Path:
    """Two listed containers, the first with one more volume of its own, named by `extra`'s lines
    ({spare}); the first's config file."""
    make_ct(vmid)
    make_ct(target_vmid)
    spare = volumes.backend("thin", config.get("thin")).alloc_rootdir(vmid, 1024)
    path = store.config_path("pve1", vmid, "lxc")
    path.write_text(path.read_text() + extra.format(spare=spare))
    listed(lab, {vmid: "lxc", target_vmid: "lxc"})
    return path


def test_an_unused_ct_volume_goes_to_another_ct_and_a_root_never_does(lab: Path) -> None:
    two_cts(lab, 320, 321, "unused0: {spare}\n")
    with pytest.raises(GuestError, match="^Cannot move to/from 'rootfs'$"):
        disk_api.check_ct_reassign("pve1", 320, 321, "rootfs", "mp0", (None, None))
    disk_api.reassign_ct_volume("pve1", 320, 321, "unused0", "unused3", (None, None), quiet)
    assert "unused0" not in store.load("pve1", 320, "lxc").main.options
    assert store.load("pve1", 321, "lxc").main.options["unused3"] == "thin:vm-321-disk-1"
    assert (lab / "lvm" / "pve" / "data" / ".vm-321-disk-1.size").exists()


def test_a_ct_mount_point_a_snapshot_holds_stays_with_its_container(lab: Path) -> None:
    path = two_cts(lab, 322, 323, "mp0: {spare},mp=/srv,size=1M\n\n[before]\nmp0: {spare},mp=/srv,size=1M\n")
    before = path.read_text()
    with pytest.raises(GuestError, match="^Cannot move volume used by a snapshot to another container$"):
        disk_api.reassign_ct_volume("pve1", 322, 323, "mp0", "mp1", (None, None), quiet)
    assert path.read_text() == before and "mp1" not in store.load("pve1", 323, "lxc").main.options


def test_a_running_vms_drive_removal_waits_pending_and_is_carried_out_at_its_next_start(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AbstractConfig's pending deletions: each key once (`!` when forced), a new value takes an
    earlier deletion back, and the start that applies them keeps a drive as unusedN or frees it."""
    from pvelab.pve.guests import vm_ops

    monkeypatch.setattr(api.runtime, "pid_of", lambda vmid: 4242)  # running
    disk0, disk1 = make_vm(302)
    unlink(302, "scsi1")
    unlink(302, "scsi1")
    unlink(302, "scsi0", force=True)
    conf = store.load("pve1", 302)
    assert conf.pending is not None and conf.pending.options == {"delete": "!scsi0,scsi1"}
    api.revert_pending(conf, ["scsi1"])
    assert conf.pending is not None and conf.pending.options == {"delete": "!scsi0"}
    api.add_to_pending_delete(conf, "scsi1")
    vm_ops.apply_pending("pve1", 302, conf)  # what the next start does first
    options = store.load("pve1", 302).main.options
    assert options == {"memory": "256", "unused0": disk1}
    assert not (lab / "lvm" / "pve" / "data" / volumes.parse_volume_id(disk0)[1]).exists()
