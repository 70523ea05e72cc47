"""The storage subsystem without a lab: storage.cfg as PVE reads and writes it, volumes on a dir
storage and on the emulated lvmthin, `pvesm status` against PVE's own output, and the API's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.api import direct, schema
from pvelab.pve.api.routes import ApiException
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
