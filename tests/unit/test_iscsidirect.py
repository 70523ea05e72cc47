"""iSCSI on the twin without a kernel initiator: an `iscsidirect` storage (PVE's ISCSIDirectPlugin) lists
the target's LUNs with libiscsi's `iscsi-ls -s`, names them lunN, hands QEMU an iscsi:// URL, and
refuses what PVE refuses; `pvesm scan iscsi` finds the targets behind a portal. `iscsi-ls` is a stub
here that prints what libiscsi 1.19's prints (utils/iscsi-ls.c: `Lun:%-4d Type:%s (Size:%lld%c)`,
sizes divided by 1024 while above it, truncated) and exits as told."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pvelab.pve.storage import config, scan, volumes
from pvelab.pve.storage.config import StorageError
from pvelab.twin.spec import ISCSI_TARGET, LabSpec, StorageServerSpec

LISTING = f"""Target:{ISCSI_TARGET} Portal:198.18.0.5:3260,1
Lun:0    Type:STORAGE_ARRAY_CONTROLLER
Lun:1    Type:DIRECT_ACCESS (Size:2G)
Lun:2    Type:DIRECT_ACCESS (Size:1024M)
Lun:3    Type:DIRECT_ACCESS (Size:1536k)
"""
OPTIONS = {"type": "iscsidirect", "portal": "198.18.0.5", "target": ISCSI_TARGET}


@pytest.fixture
def iscsi_ls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stub iscsi-ls: prints `out` (a file beside it), exits with `code`, notes its arguments."""
    stub = tmp_path / "iscsi-ls"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\ncat {tmp_path}/out\n'
                    f'cat {tmp_path}/err >&2 2>/dev/null\nexit $(cat {tmp_path}/code)\n')
    stub.chmod(0o755)
    (tmp_path / "out").write_text(LISTING)
    (tmp_path / "code").write_text("0")
    monkeypatch.setattr(volumes, "ISCSI_LS", str(stub))
    yield tmp_path


def test_the_luns_are_listed_as_pve_lists_them(iscsi_ls: Path) -> None:
    store = volumes.backend("san", OPTIONS)
    assert store.volumes() == [
        {"volid": "san:lun1", "name": "lun1", "content": "images", "format": "raw", "size": 2 * 1024 ** 3},
        {"volid": "san:lun2", "name": "lun2", "content": "images", "format": "raw", "size": 1024 ** 3},
        {"volid": "san:lun3", "name": "lun3", "content": "images", "format": "raw", "size": 1536 * 1024}]
    assert (iscsi_ls / "calls").read_text() == "-s iscsi://198.18.0.5\n"  # the portal as configured
    assert store.size("lun2") == 1024 ** 3 and store.exists("lun1") and not store.exists("lun9")


def test_qemu_gets_an_iscsi_url_and_the_storage_is_always_active(iscsi_ls: Path) -> None:
    store = volumes.backend("san", OPTIONS)
    assert store.location("lun1") == f"iscsi://198.18.0.5/{ISCSI_TARGET}/1"
    assert store.status() == {"total": 0, "used": 0, "avail": 0}  # PVE: (0, 0, 0, active 1)
    with pytest.raises(StorageError, match="unable to parse iscsi volume name 'vm-100-disk-0'"):
        store.location("vm-100-disk-0")


@pytest.mark.parametrize("call,message", [
    (lambda s: s.alloc(100, None, 1024, None), "can't allocate space in iscsi storage"),
    (lambda s: s.free("lun1"), "can't free space in iscsi storage"),
    (lambda s: s.snapshot("lun1", "s1"), "volume snapshot is not possible on iscsi device"),
    (lambda s: s.snapshot_rollback("lun1", "s1"), "volume snapshot rollback is not possible on iscsi device"),
    (lambda s: s.snapshot_delete("lun1", "s1"), "volume snapshot delete is not possible on iscsi device"),
    (lambda s: s.resize("lun1", 1), "volume resize is not possible on iscsi device"),
    (lambda s: s.clone_image("lun1", 101), "can't clone images in iscsi storage"),
    (lambda s: s.create_base("lun1"), "can't create base images in iscsi storage"),
])
def test_what_pve_refuses_on_iscsi_is_refused_with_its_text(iscsi_ls: Path, call: object, message: str) -> None:
    store = volumes.backend("san", OPTIONS)
    with pytest.raises(StorageError, match=message):
        call(store)  # type: ignore[operator]
    assert not store.has_feature("snapshot", "lun1") and store.has_feature("copy", "lun1")


def test_a_failing_iscsi_ls_is_pves_iscsi_error_unless_a_lun_is_not_ready(iscsi_ls: Path) -> None:
    store = volumes.backend("san", OPTIONS)
    (iscsi_ls / "code").write_text("10")
    with pytest.raises(StorageError, match=r"^iscsi error: command '.*iscsi-ls -s iscsi://198\.18\.0\.5' failed: "
                                           r"exit code 10$"):
        store.volumes()
    (iscsi_ls / "err").write_text("TESTUNITREADY failed with SENSE KEY:NOT_READY(2)\n")
    assert len(store.volumes()) == 3  # PVE lets that one through with what was listed


def test_the_type_is_shared_and_takes_only_images() -> None:
    assert config.is_shared(OPTIONS)
    assert config.TYPES["iscsidirect"].required == ("portal", "target")
    assert config.TYPES["iscsidirect"].content == {"images", "none"}


def test_scan_lists_each_target_with_its_portal(iscsi_ls: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "tcp_ping", lambda address, port, timeout=2.0: True)
    assert scan.scan_iscsi(None, {"portal": "198.18.0.5"}) == [  # type: ignore[arg-type]
        {"target": ISCSI_TARGET, "portal": "198.18.0.5:3260"}]
    assert (iscsi_ls / "calls").read_text() == "iscsi://198.18.0.5:3260\n"


def test_scan_skips_a_portal_it_cannot_reach_and_refuses_one_it_cannot_parse(monkeypatch: pytest.MonkeyPatch
                                                                             ) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert scan.iscsi_discovery(f"127.0.0.1:{port}") == {}
    with pytest.raises(StorageError, match="unable to parse/resolve portal address 'no such host!'"):
        scan.iscsi_discovery("no such host!")


def test_the_storage_server_has_its_own_addresses_and_names() -> None:
    nas = StorageServerSpec(0, 3)
    assert (nas.name, nas.netns, nas.cgroup, nas.host_veth(0)) == ("nas", "pvl03-nas", "pvl03-nas", "pvl03nasl0")
    spec = LabSpec(name="x", slot=3, node_count=2, storage_server=True)
    assert nas.link_addr(0) == str(spec.subnet(0).network_address + 5) and nas.portal().endswith(":3260")
    assert nas.bmc_addr == str(spec.subnet(None).network_address + 5) and nas.control_port == 1003
    assert [m.name for m in spec.machines] == ["pve1", "pve2", "nas"] and spec.node("nas") == nas
    assert LabSpec.from_dict(spec.to_dict()) == spec
    assert LabSpec(node_count=2).nas is None and "nas" not in LabSpec(node_count=2).etc_hosts()
    assert not spec.same_build(LabSpec(name="x", slot=3, node_count=2))
