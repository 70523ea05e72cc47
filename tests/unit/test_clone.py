"""Templates, clones and disk moves without a lab: real images made with qemu-img on a dir storage
and the emulated lvmthin in a temporary directory, the configs qemu-server writes, PVE's refusals
(each leaving everything as it was), and the feature answers pve-storage's tables give."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pvelab.pve.guests import clone, runtime, store
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config, volumes
from pvelab.pve.storage.config import StorageError

VM = """boot: order=scsi0
ide2: none,media=cdrom
memory: 256
name: web
net0: virtio=BC:24:11:00:00:01,bridge=vmbr0
scsi0: {disk},size=64M
smbios1: uuid=11111111-2222-3333-4444-555555555555
"""
STORAGE_CFG = """dir: store
\tpath {root}/store
\tcontent images

dir: shared
\tpath {root}/shared
\tcontent images
\tshared 1

lvmthin: thin
\tthinpool data
\tvgname pve
\tcontent images,rootdir

"""


@pytest.fixture
def lab(node_sandbox: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = node_sandbox(STORAGE_CFG)
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: None)
    monkeypatch.setattr(runtime, "check_quorum", lambda: None)
    monkeypatch.setattr(clone.members, "read", lambda: {"nodelist": {"pve1": {}, "pve2": {}}})
    return root


def make_vm(lab: Path, vmid: int, storage: str) -> str:
    """A stopped VM with a 64 MiB disk on `storage` holding a marker at its start; its volume ID."""
    sid, options = storage, config.get(storage)
    volid = volumes.backend(sid, options).alloc(vmid, None, 64 * 1024, "raw")
    path = volumes.volume_path(volid)
    with open(path, "r+b") as disk:
        disk.write(b"pvelab-marker")
    conf = store.config_path("pve1", vmid)
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(VM.format(disk=volid))
    return volid


def read_start(volid: str, fmt: str = "raw") -> bytes:
    """The first bytes of a volume as a guest sees them (through its backing file, if any)."""
    path = volumes.volume_path(volid)
    flat = path.parent / f"{path.name}.flat"
    subprocess.run(["qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", str(path), str(flat)], check=True)
    try:
        return flat.read_bytes()[:13]
    finally:
        flat.unlink()


def test_a_template_turns_disks_into_read_only_base_images(lab: Path) -> None:
    make_vm(lab, 100, "store")
    clone.template("pve1", 100, None)
    text = store.config_path("pve1", 100).read_text()
    assert "scsi0: store:100/base-100-disk-0.raw,size=64M\n" in text and "template: 1\n" in text
    base = lab / "store" / "images" / "100" / "base-100-disk-0.raw"
    assert base.stat().st_mode & 0o777 == 0o444 and not (base.parent / "vm-100-disk-0.raw").exists()


def test_a_linked_clone_on_a_directory_is_a_qcow2_backed_by_the_base(lab: Path) -> None:
    make_vm(lab, 100, "store")
    clone.template("pve1", 100, None)
    clone.clone("pve1", 100, 101, {"name": "linked"}, "root@pam", print)
    conf = store.load("pve1", 101).main.options
    assert conf["scsi0"] == "store:100/base-100-disk-0.raw/101/vm-101-disk-0.qcow2,size=64M"
    assert conf["name"] == "linked" and "template" not in conf and "lock" not in conf
    assert conf["net0"] != "virtio=BC:24:11:00:00:01,bridge=vmbr0" and conf["net0"].startswith("virtio=BC:24:11:")
    assert "11111111-2222" not in conf["smbios1"]
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(
        lab / "store/images/101/vm-101-disk-0.qcow2")], capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == "../100/base-100-disk-0.raw"
    assert read_start("store:100/base-100-disk-0.raw/101/vm-101-disk-0.qcow2", "qcow2") == b"pvelab-marker"
    listed = {v["volid"]: v for v in volumes.backend("store", config.get("store")).volumes()}
    assert listed["store:100/base-100-disk-0.raw/101/vm-101-disk-0.qcow2"]["parent"] == "../100/base-100-disk-0.raw"


def test_a_base_image_in_use_cannot_be_removed(lab: Path) -> None:
    make_vm(lab, 100, "store")
    clone.template("pve1", 100, None)
    clone.clone("pve1", 100, 101, {}, "root@pam", print)
    storage = volumes.backend("store", config.get("store"))
    with pytest.raises(StorageError, match="base volume '100/base-100-disk-0.raw' is still in use by linked clones"):
        storage.free("100/base-100-disk-0.raw")
    assert (lab / "store/images/100/base-100-disk-0.raw").exists()
    storage.free("100/base-100-disk-0.raw/101/vm-101-disk-0.qcow2")  # the clone goes: the base is free
    storage.free("100/base-100-disk-0.raw")
    assert not (lab / "store/images/100/base-100-disk-0.raw").exists()


def test_a_full_clone_copies_the_data_to_another_storage_and_format(lab: Path) -> None:
    make_vm(lab, 100, "thin")
    clone.clone("pve1", 100, 102, {"storage": "store", "format": "qcow2"}, "root@pam", print)
    conf = store.load("pve1", 102).main.options
    assert conf["scsi0"] == "store:102/vm-102-disk-0.qcow2,size=64M" and conf["name"] == "Copy-of-VM-web"
    assert read_start("store:102/vm-102-disk-0.qcow2", "qcow2") == b"pvelab-marker"


def test_a_linked_clone_on_thin_and_a_clone_of_a_snapshot(lab: Path) -> None:
    make_vm(lab, 100, "thin")
    thin = volumes.backend("thin", config.get("thin"))
    thin.snapshot("vm-100-disk-0", "before")
    with pytest.raises(StorageError, match="unable to create base volume - found snaphost 'snap_vm-100-disk-0_before'"):
        thin.create_base("vm-100-disk-0")
    assert thin.clone_image("vm-100-disk-0", 103, "before") == "vm-103-disk-0"
    assert read_start("thin:vm-103-disk-0") == b"pvelab-marker"


@pytest.mark.parametrize(("params", "message"), [
    ({"full": 0}, "Linked clone feature is not supported for 'thin:vm-100-disk-0' \\(scsi0\\)"),
    ({"target": "pve2"}, "can't clone VM to node 'pve2' \\(VM uses local storage\\)"),
    ({"target": "pve9"}, "no such cluster node 'pve9'"),
    ({"storage": "store", "target": "pve2"}, "can't clone to non-shared storage 'store'"),
    ({"snapname": "nope"}, "snapshot 'nope' does not exist"),
    ({"full": 0, "storage": "store"}, "parameter 'storage' not allowed for linked clones"),
])
def test_clone_refusals_change_nothing(lab: Path, params: dict[str, object], message: str) -> None:
    make_vm(lab, 100, "thin")
    before = sorted(p.name for p in (lab / "lvm").rglob("*"))
    with pytest.raises(GuestError, match=message):
        clone.clone("pve1", 100, 104, params, "root@pam", print)
    assert not store.config_path("pve1", 104).exists() and not store.config_path("pve2", 104).exists()
    assert sorted(p.name for p in (lab / "lvm").rglob("*")) == before


def test_a_template_refuses_to_start_to_be_templated_again_and_to_be_destroyed_under_a_clone(lab: Path) -> None:
    from pvelab.pve.guests.vm_ops import start_vm
    make_vm(lab, 100, "store")
    clone.template("pve1", 100, None)
    with pytest.raises(GuestError, match="you can't start a vm if it's a template"):
        start_vm("pve1", 100, print)
    with pytest.raises(GuestError, match="you can't convert a template to a template"):
        clone.check_template(store.load("pve1", 100), 100, None)


def test_a_vm_with_snapshots_is_not_made_a_template(lab: Path) -> None:
    make_vm(lab, 100, "store")
    path = store.config_path("pve1", 100)
    path.write_text(path.read_text() + "\n[before]\nmemory: 256\nsnaptime: 1\n")
    with pytest.raises(GuestError, match="unable to create template, because VM contains snapshots"):
        clone.template("pve1", 100, None)
    assert "template" not in path.read_text()


def test_an_offline_move_keeps_the_old_volume_as_unused_or_deletes_it(lab: Path) -> None:
    make_vm(lab, 100, "thin")
    clone.move_disk("pve1", 100, {"disk": "scsi0", "storage": "store", "format": "qcow2"}, print)
    conf = store.load("pve1", 100).main.options
    assert conf["scsi0"] == "store:100/vm-100-disk-0.qcow2,size=64M" and conf["unused0"] == "thin:vm-100-disk-0"
    assert read_start("store:100/vm-100-disk-0.qcow2", "qcow2") == b"pvelab-marker"
    clone.move_disk("pve1", 100, {"disk": "scsi0", "storage": "thin", "delete": 1}, print)
    conf = store.load("pve1", 100).main.options
    assert conf["scsi0"] == "thin:vm-100-disk-1,size=64M" and "unused1" not in conf
    assert not (lab / "store/images/100/vm-100-disk-0.qcow2").exists()


@pytest.mark.parametrize(("params", "message"), [
    ({"disk": "scsi0", "storage": "thin"}, "you can't move to the same storage with same format"),
    ({"disk": "ide2", "storage": "store"}, "you can't move a cdrom"),
    ({"disk": "scsi3", "storage": "store"}, "disk 'scsi3' does not exist"),
])
def test_move_refusals_change_nothing(lab: Path, params: dict[str, object], message: str) -> None:
    make_vm(lab, 100, "thin")
    before = store.config_path("pve1", 100).read_text()
    with pytest.raises(GuestError, match=message):
        clone.move_disk("pve1", 100, params, print)
    assert store.config_path("pve1", 100).read_text() == before
    assert not (lab / "store" / "images" / "100").exists()


@pytest.mark.parametrize(("storage", "volname", "feature", "snap", "expected"), [
    ("store", "100/vm-100-disk-0.raw", "snapshot", None, False),  # raw on a directory: none
    ("store", "100/vm-100-disk-0.qcow2", "snapshot", None, True),
    ("store", "100/vm-100-disk-0.raw", "clone", None, False),  # linked clones come from base images only
    ("store", "100/base-100-disk-0.raw", "clone", None, True),
    ("store", "100/vm-100-disk-0.raw", "copy", "s1", False),  # a raw file has no snapshot to copy
    ("thin", "vm-100-disk-0", "clone", "s1", True),  # a thin snapshot can be cloned
    ("thin", "vm-100-disk-0", "snapshot", "s1", False),
    ("thin", "base-100-disk-0", "template", None, False),
])
def test_features_follow_pve_storages_tables(lab: Path, storage: str, volname: str, feature: str,
                                             snap: str | None, expected: bool) -> None:
    assert volumes.backend(storage, config.get(storage)).has_feature(feature, volname, snap) is expected


@pytest.mark.parametrize(("value", "text"), [(0, "0.0 B"), (1023, "1023.0 B"), (1024, "1.0 KiB"),
                                             (64 << 20, "64.0 MiB"), (3 << 29, "1.5 GiB")])
def test_mirror_progress_renders_bytes_as_pve_tools(value: int, text: str) -> None:
    from pvelab.pve.guests import blockjob
    assert blockjob.render_bytes(value) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59, "59s"), (63, "1m 3s")])
def test_mirror_progress_renders_durations_as_pve_tools(seconds: int, text: str) -> None:
    from pvelab.pve.guests import blockjob
    assert blockjob.render_duration(seconds) == text


def test_a_full_clone_of_a_snapshot_holds_the_disk_as_it_was_then(lab: Path) -> None:
    storage = volumes.backend("store", config.get("store"))
    volid = storage.alloc(100, None, 64 * 1024, "qcow2")
    path = volumes.volume_path(volid)

    def write(text: bytes) -> None:
        raw = lab / "content.raw"
        raw.write_bytes(text.ljust(64 << 20, b"\0"))
        subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)

    write(b"pvelab-marker")
    storage.snapshot(volid.split(":", 1)[1], "s1")
    write(b"changed-after")
    conf = store.config_path("pve1", 100)
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(VM.format(disk=volid) + "\n[s1]\nscsi0: " + volid + ",size=64M\nsnaptime: 1\n")
    clone.clone("pve1", 100, 105, {"snapname": "s1"}, "root@pam", print)
    assert store.load("pve1", 105).main.options["scsi0"] == "store:105/vm-105-disk-0.qcow2,size=64M"
    assert read_start("store:105/vm-105-disk-0.qcow2", "qcow2") == b"pvelab-marker"
    assert read_start(volid, "qcow2") == b"changed-after"


def test_vzdump_all_leaves_out_the_excluded_and_refuses_them_beside_vmid(lab: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pvelab.pve.api import tasks
    from pvelab.pve.api.routes import ApiException, Caller, Context
    from pvelab.pve.guests import api, backup

    for vmid in (100, 101, 102):
        make_vm(lab, vmid, "store")
    store.VMLIST.write_text(json.dumps({"ids": {str(v): {"node": "pve1", "type": "qemu"} for v in (100, 101, 102)}}))
    config.STORAGE_CFG.write_text(config.STORAGE_CFG.read_text() + f"dir: bak\n\tpath {lab}/bak\n\tcontent backup\n\n")
    backed_up: list[int] = []
    monkeypatch.setattr(backup, "vzdump", lambda node, vmid, params, log: backed_up.append(vmid))
    monkeypatch.setattr(tasks, "start", lambda node, kind, ident, user, work: work(print) or "UPID")
    ctx = Context(Caller("root@pam"), "pve1")
    api.vzdump(ctx, {"node": "pve1", "all": 1, "exclude": "101", "storage": "bak"})
    assert backed_up == [100, 102]
    backed_up.clear()
    api.vzdump(ctx, {"node": "pve1", "exclude": "100,102", "storage": "bak"})  # exclude alone means all
    assert backed_up == [101]
    for option in ("all", "exclude"):
        with pytest.raises(ApiException) as refused:
            api.vzdump(ctx, {"node": "pve1", "vmid": "100", option: 1 if option == "all" else "101", "storage": "bak"})
        assert refused.value.errors == {option: "option conflicts with option 'vmid'"}


def test_an_image_file_is_imported_as_an_unused_disk_or_as_the_drive_named(lab: Path) -> None:
    make_vm(lab, 100, "store")
    raw = lab / "cloud.raw"
    raw.write_bytes(b"pvelab-marker".ljust(32 << 20, b"\0"))
    image = lab / "cloud.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
    said: list[str] = []
    clone.import_disk("pve1", 100, str(image), "thin", None, None, said.append)
    assert said == [f"importing disk '{image}' to VM 100 ...",
                    "unused0: successfully imported disk 'thin:vm-100-disk-0'"]
    assert store.load("pve1", 100).main.options["unused0"] == "thin:vm-100-disk-0"
    assert read_start("thin:vm-100-disk-0") == b"pvelab-marker"
    clone.import_disk("pve1", 100, str(image), "store", "qcow2", "scsi1", said.append)
    assert store.load("pve1", 100).main.options["scsi1"] == "store:100/vm-100-disk-1.qcow2,size=32M"


@pytest.mark.parametrize(("source", "storage", "message"), [
    ("/nonexistent.img", "store", "/nonexistent.img: non-existent or non-regular file"),
    ("IMAGE", "nowhere", "storage 'nowhere' does not exist"),
])
def test_import_refusals_change_nothing(lab: Path, source: str, storage: str, message: str) -> None:
    make_vm(lab, 100, "store")
    image = lab / "cloud.raw"
    image.write_bytes(b"\0" * 4096)
    before = store.config_path("pve1", 100).read_text()
    with pytest.raises((GuestError, StorageError), match=message):
        clone.import_disk("pve1", 100, source.replace("IMAGE", str(image)), storage, None, None, print)
    assert store.config_path("pve1", 100).read_text() == before
    assert sorted(p.name for p in (lab / "store" / "images" / "100").iterdir()) == ["vm-100-disk-0.raw"]
