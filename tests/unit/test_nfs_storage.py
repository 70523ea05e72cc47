"""NFS on the twin without a kernel NFS client: an `nfs` storage (PVE's NFSPlugin) checks the server
with `showmount` as PVE does (stubbed here, printing what nfs-utils' prints), is "not online" when the
server does not answer, finds its mount in /proc/mounts (the kernel's `nfs` type or pvelab's FUSE
client's `fuse.nfs`), mounts it only when it is not there, and is laid out as a directory storage;
QEMU opens its disks with its own NFS driver. `pvesm scan nfs` lists the exports as PVE does. The
real client and server meet in tests/integration/test_storage_server.py."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.api import direct, schema
from pvelab.pve.api.routes import ApiException
from pvelab.pve.guests import qemu_drive
from pvelab.pve.storage import config, nfs, volumes
from pvelab.pve.storage.config import INSTALLER_DEFAULT, StorageError
from pvelab.twin import nas

SERVER, EXPORT = "198.18.0.5", "/vmstore"


@pytest.fixture
def showmount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stub showmount and rpcinfo: print `out`, exit with `code`, note their arguments in `calls`."""
    for name, attribute in (("showmount", "SHOWMOUNT"), ("rpcinfo", "RPCINFO")):
        stub = tmp_path / name
        stub.write_text(f'#!/bin/sh\necho {name} "$@" >> {tmp_path}/calls\ncat {tmp_path}/out\n'
                        f'sleep $(cat {tmp_path}/delay)\nexit $(cat {tmp_path}/code)\n')
        stub.chmod(0o755)
        monkeypatch.setattr(nfs, attribute, str(stub))
    (tmp_path / "out").write_text(f"{EXPORT} (everyone)\n/archive 198.18.0.0/24\n")
    (tmp_path / "code").write_text("0")
    (tmp_path / "delay").write_text("0")
    return tmp_path


@pytest.mark.parametrize("line,mounted", [
    (f"{SERVER}:{EXPORT} /mnt/pve/nas nfs rw,relatime,vers=3 0 0", True),  # the kernel's client
    (f"{SERVER}:{EXPORT}/ /mnt/pve/nas nfs4 rw 0 0", True),
    (f"{SERVER}:{EXPORT} /mnt/pve/nas fuse.nfs rw,nosuid,nodev,relatime,user_id=0 0 0", True),  # pvelab's client
    (f"{SERVER}:{EXPORT} /mnt/pve/other fuse.nfs rw 0 0", False),
    (f"{SERVER}:/vmstore2 /mnt/pve/nas nfs rw 0 0", False),
    (f"{SERVER}:{EXPORT} /mnt/pve/nas fuse.nfsx rw 0 0", False),
    ("cfs_fuse.py /etc/pve fuse.cfs_fuse.py rw 0 0", False),
])
def test_the_mount_check_is_pves_and_knows_the_fuse_client(line: str, mounted: bool) -> None:
    assert nfs.is_mounted(SERVER, EXPORT, "/mnt/pve/nas", f"proc /proc proc rw 0 0\n{line}\n") is mounted


def test_an_ipv6_server_is_written_in_brackets() -> None:
    assert nfs.source("fd00::5", EXPORT) == f"[fd00::5]:{EXPORT}"
    assert nfs.is_mounted("fd00::5", EXPORT, "/mnt/pve/nas", f"[fd00::5]:{EXPORT} /mnt/pve/nas fuse.nfs rw 0 0\n")


def test_the_connection_check_asks_the_mount_service_or_nfs_4(showmount: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    assert nfs.check_connection({"server": SERVER}) is True
    (showmount / "code").write_text("1")
    assert nfs.check_connection({"server": SERVER}) is False
    (showmount / "code").write_text("0")
    assert nfs.check_connection({"server": SERVER, "options": "vers=4.2"}) is True
    assert (showmount / "calls").read_text().splitlines() == [
        f"showmount --no-headers --exports {SERVER}", f"showmount --no-headers --exports {SERVER}",
        f"rpcinfo -T tcp {SERVER} nfs 4"]
    # a server that does not answer: the check gives up at PVE's timeout
    monkeypatch.setattr(nfs, "CHECK_TIMEOUT", 0.5)
    (showmount / "delay").write_text("5")
    assert nfs.check_connection({"server": SERVER}) is False


def test_scan_lists_the_exports_sorted_as_pve_does(showmount: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert nfs.scan(SERVER) == [{"path": "/archive", "options": "198.18.0.0/24"},
                                {"path": EXPORT, "options": "(everyone)"}]
    (showmount / "code").write_text("1")
    with pytest.raises(StorageError, match=f"command '{showmount}/showmount --no-headers --exports {SERVER}' "
                                           "failed: exit code 1"):
        nfs.scan(SERVER)

    def unresolvable(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    with pytest.raises(StorageError, match="^unable to resolve address for server 'nosuch'$"):
        nfs.scan("nosuch")


@pytest.mark.parametrize("code,text", [
    (13, f"mount.nfs: access denied by server while mounting {SERVER}:{EXPORT}"),
    (2, f"mount.nfs: mounting {SERVER}:{EXPORT} failed, reason given by server: No such file or directory"),
    (111, "mount.nfs: Connection refused"),
])
def test_mount_failures_read_as_mount_nfs_reports_them(code: int, text: str) -> None:
    assert nfs.mount_failure(f"{SERVER}:{EXPORT}", code) == text


@pytest.fixture
def nfs_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, showmount: Path) -> dict[str, Any]:
    """A node with storage.cfg in tmp_path, /proc/mounts a file, and mount() noted instead of run."""
    cfg = tmp_path / "storage.cfg"
    cfg.write_text(INSTALLER_DEFAULT)
    monkeypatch.setattr(config, "STORAGE_CFG", cfg)
    monkeypatch.setattr(direct.version, "major", lambda: "9")
    monkeypatch.setattr(direct, "nodename", lambda: "pve1")
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    monkeypatch.setattr(nfs, "PROC_MOUNTS", mounts)
    mounted: list[tuple[str, str, str, str]] = []

    def mount(storage_id: str, server: str, export: str, path: str) -> None:
        mounted.append((storage_id, server, export, path))
        with mounts.open("a") as fh:
            fh.write(f"{server}:{export} {path} fuse.nfs rw 0 0\n")

    monkeypatch.setattr(nfs, "mount", mount)
    return {"cfg": cfg, "mounted": mounted, "mounts": mounts, "path": tmp_path / "mnt" / "nas", "calls": showmount}


def test_an_nfs_storage_mounts_once_and_is_a_directory_storage(nfs_node: dict[str, Any]) -> None:
    options = {"type": "nfs", "server": SERVER, "export": EXPORT, "path": str(nfs_node["path"]),
               "content": "images,iso,backup"}
    store = volumes.backend("nas", options)
    assert store.status()["total"] > 0
    assert nfs_node["mounted"] == [("nas", SERVER, EXPORT, str(nfs_node["path"]))]
    volid = volumes.backend("nas", options).alloc(100, None, 1024, None)  # a new backend: mounted already
    assert volid == "nas:100/vm-100-disk-0.raw" and len(nfs_node["mounted"]) == 1
    assert (nfs_node["path"] / "images" / "100" / "vm-100-disk-0.raw").stat().st_size == 1024 * 1024
    assert [v["volid"] for v in volumes.backend("nas", options).volumes()] == [volid]
    assert config.is_shared(options)  # PVE forces `shared` for nfs


def test_a_server_that_does_not_answer_is_not_online_and_nothing_is_mounted(nfs_node: dict[str, Any]) -> None:
    (nfs_node["calls"] / "code").write_text("1")
    options = {"type": "nfs", "server": SERVER, "export": EXPORT, "path": str(nfs_node["path"])}
    with pytest.raises(StorageError, match="^storage 'nas' is not online$"):
        volumes.backend("nas", options).volumes()
    assert nfs_node["mounted"] == [] and not nfs_node["path"].exists()


def call(method: str, api_path: str, **params: Any) -> Any:
    return direct.call(method, api_path, {k: str(v) for k, v in params.items()})


def test_adding_nfs_mounts_it_at_pves_path_and_a_dead_server_adds_nothing(nfs_node: dict[str, Any],
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(config, "MOUNT_BASE", str(nfs_node["path"].parent))
    assert call("POST", "/storage", storage="nas", type="nfs", server=SERVER, export=EXPORT,
                content="iso,backup") == {"storage": "nas", "type": "nfs"}
    assert config.read()["nas"] == {"type": "nfs", "server": SERVER, "export": EXPORT, "content": "iso,backup",
                                    "path": str(nfs_node["path"])}
    assert nfs_node["mounted"] == [("nas", SERVER, EXPORT, str(nfs_node["path"]))]  # PVE activates on add
    with pytest.raises(schema.ParamError) as fixed:  # a fixed option is not a parameter of the update
        call("PUT", "/storage/nas", export="/other")
    assert list(fixed.value.errors) == ["export"]
    before = nfs_node["cfg"].read_text()
    (nfs_node["calls"] / "code").write_text("1")
    with pytest.raises(ApiException, match="^create storage failed: storage 'nas2' is not online$"):
        call("POST", "/storage", storage="nas2", type="nfs", server="198.18.0.9", export=EXPORT)
    with pytest.raises(ApiException, match="^create storage failed: storage ID 'nas' already defined$"):
        call("POST", "/storage", storage="nas", type="nfs", server=SERVER, export=EXPORT)
    assert nfs_node["cfg"].read_text() == before
    # the status lists it inactive and says why on stderr, as PVE's storage_info warns
    nfs_node["mounts"].write_text("")
    entry = next(e for e in call("GET", "/nodes/pve1/storage") if e["storage"] == "nas")
    assert (entry["active"], entry["total"], entry["shared"]) == (0, 0, 1)
    assert "storage 'nas' is not online" in capsys.readouterr().err


class NoDevices:
    def is_device(self, path: str) -> bool:
        return False


def test_qemu_opens_a_disk_on_nfs_with_its_own_nfs_driver() -> None:
    options = {"type": "nfs", "server": SERVER, "export": EXPORT, "path": "/mnt/pve/nas"}
    volume = qemu_drive.Volume("nas", options, "images", "vm-100-disk-0.raw", "raw",
                               "/mnt/pve/nas/images/100/vm-100-disk-0.raw")
    assert qemu_drive.storage_blockdev(volume, NoDevices()) == {  # type: ignore[arg-type]
        "driver": "nfs", "server": {"type": "inet", "host": SERVER}, "path": f"{EXPORT}/images/100/vm-100-disk-0.raw"}


def test_the_servers_export_is_v3_and_v4_rw_and_root_not_squashed(tmp_path: Path) -> None:
    text = nas.ganesha_config(tmp_path / "vmstore", tmp_path / "recovery")
    for line in (f'Path = "{tmp_path}/vmstore";', 'Pseudo = "/vmstore";', "Access_Type = RW;",
                 "Squash = No_Root_Squash;", "Protocols = 3, 4;", "mount_path_pseudo = true;", "MNT_Port = 20048;",
                 "Graceless = true;"):
        assert line in text


def test_verify_and_the_grader_say_why_an_nfs_storage_is_inactive_on_a_node() -> None:
    from tests.unit.test_probes_ceph import run

    nas_cfg = {"storage": "nas", "type": "nfs", "server": SERVER, "export": EXPORT, "path": "/mnt/pve/nas",
               "content": "iso,backup"}
    answers: dict[str, Any] = {"/storage": [nas_cfg]}
    for node in ("pve1", "pve2", "pve3"):
        answers[f"/nodes/{node}/storage"] = [{"storage": "nas", "type": "nfs", "active": int(node != "pve2")}]
        answers[f"/nodes/{node}/storage/nas/content"] = [{"volid": "nas:iso/pvelab-tiny.iso"}]
    outcome = run("storage.defined", answers, {"storage": "nas", "type": "nfs", "content": ["iso", "backup"],
                                               "isos": ["/var/lib/vz/template/iso/pvelab-tiny.iso"]})
    assert not outcome.ok and outcome.problems == [
        f"storage 'nas' is not active on pve2: does its server answer from there (pvesm scan nfs {SERVER} on pve2) "
        f"and export {EXPORT}? PVE mounts it at /mnt/pve/nas when the server answers"]
    answers["/nodes/pve2/storage"] = answers["/nodes/pve1/storage"]
    assert run("storage.defined", answers, {"storage": "nas", "type": "nfs"}).ok
