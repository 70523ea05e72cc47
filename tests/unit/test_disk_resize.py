"""`qm resize` without a lab: qemu-server's reading of sizes, growing a stopped VM's raw volume on a dir
storage (the file), the config's size= as PVE prints it, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvelab.pve.guests import disk_api, runtime, store
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config

VM = """boot: order=scsi0
ide2: none,media=cdrom
memory: 256
scsi0: store:150/vm-150-disk-0.raw,size=64M
"""


@pytest.mark.parametrize(("given", "current", "expected"), [
    ("+32M", 64 << 20, 96 << 20), ("1G", 64 << 20, 1 << 30), ("+0.5G", 1 << 30, 3 << 29), ("4096", 0, 4096),
])
def test_sizes_are_read_as_qemu_server_reads_them(given: str, current: int, expected: int) -> None:
    assert disk_api.new_size(given, current) == expected


@pytest.fixture
def vm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "storage.cfg"
    cfg.write_text(f"dir: store\n\tpath {tmp_path / 'store'}\n\tcontent images\n\n")
    monkeypatch.setattr(config, "STORAGE_CFG", cfg)
    monkeypatch.setattr(store, "NODES_DIR", tmp_path / "nodes")
    monkeypatch.setattr(store, "LOCK_DIR", tmp_path / "locks")
    monkeypatch.setattr(runtime, "pid_of", lambda vmid: None)
    images = tmp_path / "store" / "images" / "150"
    images.mkdir(parents=True)
    with open(images / "vm-150-disk-0.raw", "wb") as raw:
        raw.truncate(64 << 20)
    conf = tmp_path / "nodes" / "pve1" / "qemu-server" / "150.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(VM)
    return images


def test_a_stopped_vms_raw_disk_grows_and_its_config_says_so(vm: Path) -> None:
    disk_api.resize("pve1", 150, "scsi0", "+32M", None, False, "root@pam", print)
    assert (vm / "vm-150-disk-0.raw").stat().st_size == 96 << 20
    assert "scsi0: store:150/vm-150-disk-0.raw,size=96M\n" in store.config_path("pve1", 150).read_text()


@pytest.mark.parametrize(("disk", "size", "message"), [
    ("scsi0", "32M", "shrinking disks is not supported"),
    ("scsi5", "+1G", "disk 'scsi5' does not exist"),
    ("ide2", "+1G", "you can't resize a cdrom"),
])
def test_refusals_change_nothing(vm: Path, disk: str, size: str, message: str) -> None:
    before = store.config_path("pve1", 150).read_text()
    with pytest.raises(GuestError, match=message):
        disk_api.resize("pve1", 150, disk, size, None, False, "root@pam", print)
    assert store.config_path("pve1", 150).read_text() == before
    assert (vm / "vm-150-disk-0.raw").stat().st_size == 64 << 20


@pytest.fixture
def ct_storages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dir storage and the emulated lvmthin holding containers, an ISO-only dir, a node's configs."""
    from pvelab.pve.guests import containers
    from pvelab.pve.storage import volumes
    cfg = tmp_path / "storage.cfg"
    cfg.write_text(f"dir: store\n\tpath {tmp_path / 'store'}\n\tcontent rootdir\n\n"
                   f"dir: iso\n\tpath {tmp_path / 'iso'}\n\tcontent iso\n\n"
                   "lvmthin: thin\n\tthinpool data\n\tvgname pve\n\tcontent rootdir\n\n")
    monkeypatch.setattr(config, "STORAGE_CFG", cfg)
    monkeypatch.setattr(volumes, "LVM_BACKING", tmp_path / "lvm")
    monkeypatch.setattr(volumes, "DEV", tmp_path / "dev")
    monkeypatch.setattr(store, "NODES_DIR", tmp_path / "nodes")
    monkeypatch.setattr(store, "LXC_LOCK_DIR", tmp_path / "locks")
    monkeypatch.setattr(containers, "running", lambda vmid: False)
    return tmp_path


def test_a_containers_root_on_thin_grows_its_recorded_size_and_a_subvol_on_dir_is_refused(ct_storages: Path) -> None:
    from pvelab.pve.storage import volumes
    tmp_path = ct_storages
    thin = volumes.backend("thin", config.get("thin")).alloc_rootdir(200, 1024 * 1024)
    subvol = volumes.backend("store", config.get("store")).alloc_rootdir(200, 1024 * 1024)
    conf = tmp_path / "nodes" / "pve1" / "lxc" / "200.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"hostname: ct200\nmp0: {subvol},mp=/data,size=1G\nrootfs: {thin},size=1G\n")
    disk_api.resize_ct("pve1", 200, "rootfs", "+1G", None, "root@pam")
    assert f"rootfs: {thin},size=2G\n" in conf.read_text()
    for disk, size, message in (("rootfs", "1G", "unable to shrink disk size"),
                                ("rootfs", "2G", "disk is already at specified size"),
                                ("mp0", "+1G", "can't resize this image format")):
        before = conf.read_text()
        with pytest.raises((GuestError, config.StorageError), match=message):
            disk_api.resize_ct("pve1", 200, disk, size, None, "root@pam")
        assert conf.read_text() == before


def test_a_stopped_containers_root_moves_to_another_storage_with_its_files(ct_storages: Path) -> None:
    from pvelab.pve.guests import containers
    from pvelab.pve.storage import volumes
    tmp_path = ct_storages
    thin = volumes.backend("thin", config.get("thin")).alloc_rootdir(200, 1024 * 1024)
    (containers.volume_path(thin) / "etc").mkdir()
    (containers.volume_path(thin) / "etc" / "hostname").write_text("ct200\n")
    conf = tmp_path / "nodes" / "pve1" / "lxc" / "200.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"hostname: ct200\nrootfs: {thin},size=1G\n")
    for storage, message in (("iso", "storage 'iso' does not support container directories"),
                             ("store", None)):
        if message:
            with pytest.raises((GuestError, config.StorageError), match=message):
                disk_api.lock_ct_move("pve1", 200, "rootfs", storage, False, None)
            assert "lock" not in conf.read_text()
            continue
        disk_api.lock_ct_move("pve1", 200, "rootfs", storage, False, None)
        assert "lock: disk\n" in conf.read_text()
        disk_api.move_ct_volume("pve1", 200, "rootfs", storage, False, print)
    text = conf.read_text()
    assert "rootfs: store:200/subvol-200-disk-0.subvol,size=1G\n" in text and f"unused0: {thin}\n" in text
    assert "lock" not in text
    assert (tmp_path / "store/images/200/subvol-200-disk-0.subvol/etc/hostname").read_text() == "ct200\n"
    with pytest.raises(GuestError, match="cannot move volume 'unused0', only configured volumes can be moved"):
        disk_api.lock_ct_move("pve1", 200, "unused0", "thin", False, None)
