"""The storage subsystem without a lab: storage.cfg as PVE reads and writes it, volumes on a dir
storage and on the emulated lvmthin, `pvesm status` against PVE's own output, and the API's refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.api import direct, schema, tasks
from pvelab.pve.api.routes import ApiException
from pvelab.pve.guests import backup
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config, pvesm, volumes
from pvelab.pve.storage.config import INSTALLER_DEFAULT, StorageError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve"


def test_the_installer_default_reads_and_writes_back_byte_for_byte() -> None:
    sections = config.parse(INSTALLER_DEFAULT)
    assert sections == {"local": {"type": "dir", "path": "/var/lib/vz", "content": "iso,vztmpl,backup"},
                        "local-lvm": {"type": "lvmthin", "thinpool": "data", "vgname": "pve",
                                      "content": "rootdir,images"}}
    assert config.dump(sections) == INSTALLER_DEFAULT


def test_pve_write_order_comment_disable_required_then_optional() -> None:
    sections = {"backup": {"type": "dir", "shared": "1", "content": "backup", "path": "/mnt/b", "disable": True,
                           "comment": "lab share"}}
    assert config.dump(sections) == ("dir: backup\n\tcomment lab share\n\tdisable\n\tpath /mnt/b\n"
                                     "\tcontent backup\n\tshared 1\n\n")
    assert config.parse(config.dump(sections)) == sections


def test_a_missing_or_broken_local_storage_is_put_back_as_pve_does(tmp_path: Path) -> None:
    assert config.read(tmp_path / "none.cfg")["local"]["path"] == "/var/lib/vz"
    odd = tmp_path / "storage.cfg"
    odd.write_text("dir: local\n\tpath /srv\n\n")
    assert config.read(odd)["local"]["path"] == "/var/lib/vz"


def test_content_types_a_storage_type_cannot_hold_are_dropped_with_a_warning(capsys: pytest.CaptureFixture[str]
                                                                           ) -> None:
    assert config.check_content("dir", "iso,backup") == "iso,backup"
    assert config.check_content("lvmthin", "images,iso") == "images"
    assert capsys.readouterr().err == "storage does not support content type 'iso'\n"
    with pytest.raises(StorageError, match="storage does not support content type 'none'"):
        config.check_content("lvmthin", "iso")


@pytest.fixture
def lvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> volumes.Backend:
    monkeypatch.setattr(volumes, "LVM_BACKING", tmp_path / "lvm")
    monkeypatch.setattr(volumes, "DEV", tmp_path / "dev")
    return volumes.backend("local-lvm", config.parse(INSTALLER_DEFAULT)["local-lvm"])


def test_emulated_lvmthin_allocates_thin_volumes_behind_dev_links(lvm: volumes.Backend, tmp_path: Path) -> None:
    assert lvm.alloc(100, None, 4 * 1024 * 1024, None) == "local-lvm:vm-100-disk-0"
    assert lvm.alloc(100, None, 1024, None) == "local-lvm:vm-100-disk-1"
    device = lvm.path("vm-100-disk-0")
    assert device == tmp_path / "dev" / "pve" / "vm-100-disk-0" and device.resolve().stat().st_size == 4 << 30
    listed = lvm.volumes()
    assert [(v["volid"], v["format"], v["size"], v["vmid"]) for v in listed] == [
        ("local-lvm:vm-100-disk-0", "raw", 4 << 30, 100), ("local-lvm:vm-100-disk-1", "raw", 1 << 20, 100)]
    assert lvm.status()["used"] < 1 << 20  # thin: nothing written yet
    with pytest.raises(StorageError, match='Logical Volume "vm-100-disk-0" already exists in volume group "pve"'):
        lvm.alloc(100, "vm-100-disk-0", 1024, None)
    with pytest.raises(StorageError, match="illegal name 'vm-101-disk-0' - should be 'vm-100-\\*'"):
        lvm.alloc(100, "vm-101-disk-0", 1024, None)
    lvm.free("vm-100-disk-0")
    assert not device.exists() and [v["volid"] for v in lvm.volumes()] == ["local-lvm:vm-100-disk-1"]


def test_dir_storage_keeps_images_per_guest_and_content_in_its_subdirs(tmp_path: Path) -> None:
    store = volumes.backend("local", {"type": "dir", "path": str(tmp_path), "content": "images,iso,backup"})
    assert store.alloc(101, None, 1024, None) == "local:101/vm-101-disk-0.raw"
    assert store.path("101/vm-101-disk-0.raw") == tmp_path / "images" / "101" / "vm-101-disk-0.raw"
    (tmp_path / "template" / "iso").mkdir(parents=True)
    (tmp_path / "template" / "iso" / "boot.iso").write_bytes(b"x" * 10)
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "vzdump-qemu-101-2026_11_27-10_00_00.vma.zst").write_bytes(b"y")
    (tmp_path / "dump" / "vzdump-qemu-101-2026_11_27-10_00_00.log").write_text("log")
    listed = {v["volid"]: (v["content"], v["format"], v.get("vmid")) for v in store.volumes()}
    assert listed == {"local:101/vm-101-disk-0.raw": ("images", "raw", 101), "local:iso/boot.iso": ("iso", "iso", None),
                      "local:backup/vzdump-qemu-101-2026_11_27-10_00_00.vma.zst": ("backup", "vma.zst", 101)}
    with pytest.raises(StorageError, match="already exists"):
        store.alloc(101, "vm-101-disk-0.raw", 1024, None)


def test_volume_ids_and_sizes_as_pve_reads_them() -> None:
    assert volumes.parse_volume_id("local-lvm:vm-100-disk-0") == ("local-lvm", "vm-100-disk-0")
    with pytest.raises(StorageError, match="unable to parse volume ID 'nocolon'"):
        volumes.parse_volume_id("nocolon")
    assert [volumes.parse_size(s) for s in ("512", "4M", "2G")] == [512, 4096, 2 << 20]
    with pytest.raises(StorageError, match="unable to parse size '4T'"):
        volumes.parse_size("4T")


def test_pvesm_status_prints_as_pve_8(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pvesm.version, "major", lambda: "8")
    kib = {"ceph-vm": (1073741824, 5242880, 1068498944), "local": (98497780, 10485760, 83066788),
           "local-lvm": (367001600, 0, 367001600), "nfs-old": (0, 0, 0)}
    types = {"ceph-vm": "rbd", "local": "dir", "local-lvm": "lvmthin", "nfs-old": "nfs"}
    entries = [{"storage": sid, "type": types[sid], "active": int(sid != "nfs-old"),
                "enabled": int(sid != "nfs-old"), "total": t * 1024, "used": u * 1024, "avail": a * 1024}
               for sid, (t, u, a) in kib.items()]
    pvesm.print_status(entries)
    assert capsys.readouterr().out == (FIXTURES / "pvesm-status.txt").read_text()


def test_pvesm_status_names_the_unit_on_pve_9(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pvesm.version, "major", lambda: "9")
    pvesm.print_status([{"storage": "local", "type": "dir", "active": 1, "enabled": 1, "total": 2048, "used": 1024,
                         "avail": 1024}])
    assert capsys.readouterr().out.splitlines() == [
        "Name         Type     Status     Total (KiB)      Used (KiB) Available (KiB)        %",
        "local         dir     active               2               1               1   50.00%"]


@pytest.fixture
def node_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lvm: volumes.Backend) -> Path:
    """The storage API on a fake node: storage.cfg in tmp_path, PVE 9's schema, node name pve1."""
    cfg = tmp_path / "storage.cfg"
    cfg.write_text(INSTALLER_DEFAULT)
    monkeypatch.setattr(config, "STORAGE_CFG", cfg)
    monkeypatch.setattr(direct.version, "major", lambda: "9")
    monkeypatch.setattr(direct, "nodename", lambda: "pve1")
    return cfg


def call(method: str, api_path: str, **params: Any) -> Any:
    return direct.call(method, api_path, {k: str(v) for k, v in params.items()})


def test_storage_create_update_delete_through_the_api(node_storage: Path, tmp_path: Path) -> None:
    assert call("POST", "/storage", storage="shared", type="dir", path=str(tmp_path / "s"), content="images,backup",
                shared=1) == {"storage": "shared", "type": "dir"}
    assert "dir: shared\n\tpath " in node_storage.read_text()
    digest = call("GET", "/storage/shared")["digest"]
    call("PUT", "/storage/shared", content="backup", digest=digest)
    assert call("GET", "/storage/shared")["content"] == "backup"
    with pytest.raises(ApiException, match="detected modified configuration"):
        call("PUT", "/storage/shared", content="iso", digest=digest)
    call("DELETE", "/storage/shared")
    assert [s["storage"] for s in call("GET", "/storage")] == ["local", "local-lvm"]


@pytest.mark.parametrize("params,message", [
    ({"storage": "local", "type": "dir", "path": "/x"}, "storage ID 'local' already defined"),
    ({"storage": "nopath", "type": "dir"}, "missing value for required option 'path'"),
    ({"storage": "thin2", "type": "lvmthin", "vgname": "pve", "thinpool": "data", "shared": "1"},
     "unexpected property 'shared'"),
])
def test_bad_storage_definitions_are_refused_and_change_nothing(node_storage: Path, params: dict[str, str],
                                                               message: str) -> None:
    before = node_storage.read_text()
    with pytest.raises(ApiException, match=message):
        call("POST", "/storage", **params)
    assert node_storage.read_text() == before


def test_content_and_parameter_refusals(node_storage: Path) -> None:
    with pytest.raises(ApiException, match="storage does not support content type 'none'"):
        call("POST", "/storage", storage="thin3", type="lvmthin", vgname="pve", thinpool="x", content="iso")
    with pytest.raises(schema.ParamError) as bad:
        call("POST", "/nodes/pve1/storage/local-lvm/content", vmid=99, filename="vm-99-disk-0", size="1G")
    assert bad.value.errors == {"vmid": "value must have a minimum value of 100"}


def test_alloc_list_and_status_through_the_api(node_storage: Path) -> None:
    assert call("POST", "/nodes/pve1/storage/local-lvm/content", vmid=100, filename="vm-100-disk-0",
                size="1G") == "local-lvm:vm-100-disk-0"
    listed = call("GET", "/nodes/pve1/storage/local-lvm/content")
    assert [(v["volid"], v["size"]) for v in listed] == [("local-lvm:vm-100-disk-0", 1 << 30)]
    status = call("GET", "/nodes/pve1/storage/local-lvm/status")
    assert (status["type"], status["active"], status["content"]) == ("lvmthin", 1, "images,rootdir")
    with pytest.raises(ApiException, match="storage 'nope' does not exist"):
        call("GET", "/nodes/pve1/storage/nope/status")


# -- backups: listing, notes and protection, retention ------------------------------------------
@pytest.fixture
def backups(node_storage: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A dir storage `store` holding VM 110's backups of four days (with logs, notes and one
    protected), one of CT 200, and a renamed archive; times in UTC as the names say."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(tasks, "TASK_DIR", tmp_path / "tasks")
    call("POST", "/storage", storage="store", type="dir", path=str(tmp_path / "store"), content="backup")
    dump = tmp_path / "store" / "dump"
    dump.mkdir(parents=True)
    for day in (1, 2, 3, 4):
        stem = f"vzdump-qemu-110-2026_11_0{day}-10_00_00"
        (dump / f"{stem}.vma.zst").write_bytes(b"x" * day)
        (dump / f"{stem}.log").write_text("INFO: done\n")
    (dump / "vzdump-qemu-110-2026_11_01-10_00_00.vma.zst.notes").write_text("before the upgrade\nsecond line\n")
    (dump / "vzdump-qemu-110-2026_10_01-10_00_00.vma.zst").write_bytes(b"kept")
    (dump / "vzdump-qemu-110-2026_10_01-10_00_00.vma.zst.protected").touch()
    (dump / "vzdump-lxc-200-2026_11_01-10_00_00.tar.zst").write_bytes(b"ct")
    (dump / "my-copy-of-110.vma.zst").write_bytes(b"renamed")
    yield dump
    monkeypatch.delenv("TZ")
    time.tzset()


def test_backups_are_listed_as_pves_dir_storage_lists_them(backups: Path) -> None:
    listed = {v["volid"].split("/", 1)[1]: v for v in call("GET", "/nodes/pve1/storage/store/content")}
    assert len(listed) == 7  # logs, notes and protection files are not backups
    first = listed["vzdump-qemu-110-2026_11_01-10_00_00.vma.zst"]
    assert (first["ctime"], first["subtype"], first["vmid"], first["format"], first["notes"]) == \
        (1793527200, "qemu", 110, "vma.zst", "before the upgrade")
    assert listed["vzdump-qemu-110-2026_10_01-10_00_00.vma.zst"]["protected"] == 1
    assert "protected" not in first
    assert listed["my-copy-of-110.vma.zst"]["subtype"] == "unknown"
    assert listed["vzdump-lxc-200-2026_11_01-10_00_00.tar.zst"]["subtype"] == "lxc"


def test_a_protected_backup_is_not_removed_until_unprotected_then_goes_with_its_log_and_notes(backups: Path
                                                                                            ) -> None:
    volume = "store:backup%2Fvzdump-qemu-110-2026_11_01-10_00_00.vma.zst"  # the '/' URL-encoded, as in a URL
    call("PUT", f"/nodes/pve1/storage/store/content/{volume}", protected=1, notes="keep me")
    assert (backups / "vzdump-qemu-110-2026_11_01-10_00_00.vma.zst.notes").read_text() == "keep me"
    assert direct.finish_task(call("DELETE", f"/nodes/pve1/storage/store/content/{volume}")) is False
    assert (backups / "vzdump-qemu-110-2026_11_01-10_00_00.vma.zst").exists()
    call("PUT", f"/nodes/pve1/storage/store/content/{volume}", protected=0)
    assert direct.finish_task(call("DELETE", f"/nodes/pve1/storage/store/content/{volume}")) is True
    assert sorted(p.name for p in backups.glob("vzdump-qemu-110-2026_11_01*")) == []
    with pytest.raises(ApiException, match="volume notes are not supported for PVE::Storage::LvmThinPlugin"):
        call("PUT", "/nodes/pve1/storage/local-lvm/content/local-lvm:vm-100-disk-0", notes="x")
    with pytest.raises(ApiException, match="only backups can have notes"):
        call("PUT", "/nodes/pve1/storage/store/content/store:100%2Fvm-100-disk-0.raw", notes="x")


def test_prune_dry_run_marks_as_pve_and_pvesm_prints_pves_preview(backups: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    marks = {e["volid"].split("/", 1)[1]: e["mark"] for e in
             call("GET", "/nodes/pve1/storage/store/prunebackups", **{"prune-backups": "keep-last=2"})}
    assert marks == {"vzdump-qemu-110-2026_11_04-10_00_00.vma.zst": "keep",
                     "vzdump-qemu-110-2026_11_03-10_00_00.vma.zst": "keep",
                     "vzdump-qemu-110-2026_11_02-10_00_00.vma.zst": "remove",
                     "vzdump-qemu-110-2026_11_01-10_00_00.vma.zst": "remove",
                     "vzdump-qemu-110-2026_10_01-10_00_00.vma.zst": "protected",
                     "vzdump-lxc-200-2026_11_01-10_00_00.tar.zst": "keep",
                     "my-copy-of-110.vma.zst": "renamed"}
    assert pvesm.main(["prune-backups", "store", "--dry-run", "--keep-last", "2", "--vmid", "110"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["NOTE: this is only a preview and might not be what a subsequent",
                       "prune call does if backups are removed/added in the meantime.", ""]
    width = len("store:backup/vzdump-qemu-110-2026_10_01-10_00_00.vma.zst") + 1
    assert out[3] == f"{'Backup':<{width}} {'Backup-ID':>15} {'Prune-Mark':>10}"
    assert out[4] == f"{'store:backup/vzdump-qemu-110-2026_10_01-10_00_00.vma.zst':<{width}} {'qemu/110':>15} " \
                     f"{'protected':>10}"
    assert [line.split()[-1] for line in out[5:]] == ["remove", "remove", "keep", "keep"]


def test_pruning_removes_what_the_policy_does_not_cover_and_nothing_else(backups: Path) -> None:
    assert pvesm.main(["prune-backups", "store", "--keep-last", "1", "--type", "qemu", "--vmid", "110"]) == 0
    left = sorted(p.name for p in backups.iterdir())
    assert left == ["my-copy-of-110.vma.zst", "vzdump-lxc-200-2026_11_01-10_00_00.tar.zst",
                    "vzdump-qemu-110-2026_10_01-10_00_00.vma.zst",
                    "vzdump-qemu-110-2026_10_01-10_00_00.vma.zst.protected",
                    "vzdump-qemu-110-2026_11_04-10_00_00.log", "vzdump-qemu-110-2026_11_04-10_00_00.vma.zst"]


@pytest.mark.parametrize("given,message", [
    ("keep-all=1,keep-last=2", "keep-all cannot be set together with other options."),
    ("keep-lots=2", "unknown key 'keep-lots'"),
    ("keep-last=two", "type check ('integer') failed - got 'two'"),
])
def test_bad_retention_is_refused_and_changes_nothing(backups: Path, given: str, message: str) -> None:
    before = sorted(backups.iterdir())
    for method, api_path in (("DELETE", "/nodes/pve1/storage/store/prunebackups"), ("PUT", "/storage/store")):
        with pytest.raises(ApiException) as refused:
            call(method, api_path, **{"prune-backups": given})
        assert message in refused.value.errors["prune-backups"], (method, refused.value.errors)
    assert sorted(backups.iterdir()) == before and "prune-backups" not in call("GET", "/storage/store")


def test_without_options_the_storages_own_policy_applies_or_pve_says_there_is_none(backups: Path) -> None:
    with pytest.raises(ApiException, match="no prune-backups options configured for storage 'store'"):
        call("GET", "/nodes/pve1/storage/store/prunebackups")
    call("PUT", "/storage/store", **{"prune-backups": "keep-daily=3"})
    marks = [e["mark"] for e in call("GET", "/nodes/pve1/storage/store/prunebackups", vmid=110)]
    assert sorted(marks) == ["keep", "keep", "keep", "protected", "remove"]  # the renamed one names no -110-


def test_vzdump_adds_notes_protects_then_prunes_the_guests_older_backups(backups: Path) -> None:
    lines: list[str] = []
    params = {"storage": "store", "compress": "zstd", "prune-backups": "keep-last=2", "protected": 1,
              "notes-template": "{{guestname}} on {{node}}\\n{{cluster}} \\\\ {{vmid}}"}
    run = backup.BackupRun("pve1", 110, "qemu", params, "vma", lines.append)
    run.dir.mkdir(parents=True, exist_ok=True)
    run.archive.write_bytes(b"new")
    run.finish("web110")
    assert Path(f"{run.archive}.notes").read_text() == "web110 on pve1\nstandalone node \\ 110"
    assert Path(f"{run.archive}.protected").exists()
    assert "INFO: prune older backups with retention: keep-last=2" in lines
    removed = [line for line in lines if line.startswith("INFO: removing backup")]
    assert removed == [f"INFO: removing backup 'store:backup/vzdump-qemu-110-2026_11_0{day}-10_00_00.vma.zst'"
                       for day in (1, 2)]  # the new one is protected: it counts apart, as on PVE
    assert "INFO: pruned 2 backup(s) not covered by keep-retention policy" in lines
    assert sorted(p.name for p in backups.glob("vzdump-qemu-110-*.vma.zst")) == [
        "vzdump-qemu-110-2026_10_01-10_00_00.vma.zst", "vzdump-qemu-110-2026_11_03-10_00_00.vma.zst",
        "vzdump-qemu-110-2026_11_04-10_00_00.vma.zst", run.archive.name]


def test_vzdump_keeps_everything_by_default_and_says_nothing_of_pruning(backups: Path) -> None:
    lines: list[str] = []
    run = backup.BackupRun("pve1", 110, "qemu", {"storage": "store", "compress": "zstd"}, "vma", lines.append)
    run.archive.write_bytes(b"new")
    run.finish("web110")
    assert not any("prune" in line for line in lines) and len(list(backups.glob("vzdump-qemu-110-*.vma.zst"))) == 6


@pytest.mark.parametrize("template,message", [
    ("a\nb", "contains a line feed"),
    ("{{guest}} \\t", "found unknown: escape sequence '\\t' at char 10, variable 'guest' at char 4"),
])
def test_a_bad_notes_template_is_refused_with_vzdumps_words(template: str, message: str) -> None:
    with pytest.raises(GuestError) as refused:
        backup.check_notes_template(template)
    assert str(refused.value) == message
