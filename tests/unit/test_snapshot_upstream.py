"""qemu-server's and pve-container's own snapshot tests (src/test/snapshot-test.pm with its
snapshot-input and snapshot-expected configs, tests/fixtures/{qemu-server,pve-container}/SOURCES.md)
against pvelab's snapshot steps.

The configs are Proxmox's, unchanged; each case below is one testcase_* call of snapshot-test.pm
with the same VMID, snapshot name, arguments, expected error, expected volume snapshots and the
mock flags set before it (the .pm's mocks: which volumes may be snapshotted, deleted, rolled back,
whether QEMU's savevm works, whether storages activate, whether the VM stops). Our World
implementation answers as those mocks do; the steps under test are pvelab.pve.guests.snapshot."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.guests import snapshot, store
from pvelab.pve.guests.store import GuestError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qemu-server"
CT_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve-container"
DISKS = {n: f"local:snapshotable-disk-{n}" for n in (1, 2, 3, 4)}
# The mocks' state from the .pm's create phase on (set once, before the create tests)
LATER = {"vol_snapshot": {DISKS[1], DISKS[2], DISKS[3]}, "vol_snapshot_delete": {DISKS[1], DISKS[3]},
         "vol_rollback_enabled": {DISKS[1], DISKS[2], DISKS[3]},
         "vol_rollback_possible": {DISKS[1], DISKS[2], DISKS[3], DISKS[4]}}


@dataclass
class MockWorld:
    """The .pm's mocks, answering as they do."""

    snapshot_possible: bool = True
    up: bool = True  # the .pm's $running: each rollback case begins with it set
    save_vmstate_works: bool = True
    savevm_start: bool = True
    activate_storage_possible: bool = True
    stop_possible: bool = True
    vol_snapshot: set[str] = field(default_factory=set)
    vol_snapshot_delete: set[str] = field(default_factory=set)
    vol_rollback_enabled: set[str] = field(default_factory=set)
    vol_rollback_possible: set[str] = field(default_factory=set)
    made: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)
    rolled_back: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def record(done: dict[str, str], volid: str, snapname: str) -> None:
        done[volid] = f"{done[volid]},{snapname}" if volid in done else snapname

    def now(self) -> int:
        return 1234567890  # the .pm's write_config pins every snaptime to this

    def running(self, vmid: int) -> bool:
        return self.up

    def activate_storages(self, options: dict[str, str], with_vmstate: bool) -> None:
        if not self.activate_storage_possible:
            raise GuestError("storage activation failed")

    def can_snapshot(self, conf: dict[str, str]) -> bool:
        return self.snapshot_possible

    def save_vmstate(self, vmid: int, conf: Any, snapname: str, log: Any) -> dict[str, str]:
        if not self.save_vmstate_works:
            raise GuestError("save_vmstate failed")
        return {"vmstate": "somestorage:state-volume", "runningmachine": "q35"}

    def before_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Any) -> None:
        if running and not self.savevm_start:
            raise GuestError("savevm-start disabled")

    def after_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Any) -> None:
        pass

    def volume_snapshot(self, vmid: int, key: str, volid: str, snapname: str, running: bool, log: Any) -> None:
        if volid not in self.vol_snapshot:
            raise GuestError("volume snapshot disabled")
        self.record(self.made, volid, snapname)

    def volume_snapshot_delete(self, vmid: int, key: str | None, volid: str, snapname: str, running: bool) -> None:
        if volid not in self.vol_snapshot_delete:
            raise GuestError("volume snapshot delete disabled")
        self.record(self.deleted, volid, snapname)

    def rollback_possible(self, volid: str, snapname: str) -> None:
        if volid not in self.vol_rollback_possible:
            raise GuestError("volume_rollback_is_possible failed")

    def volume_rollback(self, volid: str, snapname: str) -> None:
        if volid not in self.vol_rollback_enabled:
            raise GuestError("volume snapshot rollback disabled")
        self.record(self.rolled_back, volid, snapname)

    def free_vmstate(self, volid: str) -> None:
        if volid != "somestorage:state-volume":
            raise GuestError("wrong vdisk - fake vmstate expected!")

    def free_volume(self, volid: str) -> None:
        raise GuestError(f"unexpected free of '{volid}'")

    def stop(self, vmid: int, log: Any) -> None:
        if self.stop_possible:
            self.up = False

    def start_with_state(self, vmid: int, vmstate: str, log: Any) -> None:
        pass


@dataclass
class ContainerMockWorld(MockWorld):
    """pve-container's .pm mocks: a running container is frozen (which may fail), it has no RAM to
    save (pve-container's own "implement me" answers), a rollback kills it (which may fail)."""

    freeze_possible: bool = True

    def save_vmstate(self, vmid: int, conf: Any, snapname: str, log: Any) -> dict[str, str]:
        raise GuestError("implement me - snapshot_save_vmstate")

    def before_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Any) -> None:
        if running and not self.freeze_possible:
            raise GuestError("freeze disabled")

    def free_vmstate(self, volid: str) -> None:
        raise GuestError("implement me - saving vmstate")

    def start_with_state(self, vmid: int, vmstate: str, log: Any) -> None:
        raise GuestError("implement me - save vmstate")


# (phase, vmid, snapname, arguments, expected error, expected volume snapshots, mock flags)
CASES: list[tuple[str, str, str, dict[str, Any], str, dict[str, str], dict[str, Any]]] = [
    ("prepare", "101", "test", {"vmstate": False}, "", {}, {}),
    ("prepare", "102", "test", {"vmstate": True}, "", {}, {}),
    ("prepare", "103", "test2", {"vmstate": False}, "", {}, {}),
    ("prepare", "104", "test2", {"vmstate": True}, "", {}, {}),
    ("prepare", "200", "test", {"vmstate": False}, "VM is locked (snapshot)", {}, {}),
    ("prepare", "201", "test", {"vmstate": False}, "snapshot name 'test' already used", {}, {}),
    ("prepare", "202", "test", {"vmstate": True}, "save_vmstate failed", {}, {"save_vmstate_works": False}),
    ("prepare", "300", "test", {"vmstate": False}, "snapshot feature is not available", {},
     {"snapshot_possible": False}),
    ("commit", "101", "test", {}, "", {}, {}),
    ("commit", "102", "test2", {}, "", {}, {}),
    ("commit", "201", "test", {}, "missing snapshot lock", {}, {}),
    ("commit", "202", "test", {}, "snapshot 'test' does not exist", {}, {}),
    ("commit", "203", "test", {}, "wrong snapshot state", {}, {}),
    ("create", "101", "test", {"vmstate": False}, "", {DISKS[1]: "test"}, LATER),
    ("create", "102", "test", {"vmstate": True}, "", {DISKS[1]: "test"}, LATER),
    ("create", "103", "test2", {"vmstate": False}, "", {DISKS[1]: "test2"}, LATER),
    ("create", "104", "test2", {"vmstate": True}, "", {DISKS[1]: "test2"}, LATER),
    ("create", "105", "test", {"vmstate": False}, "", {DISKS[1]: "test", DISKS[2]: "test", DISKS[3]: "test"}, LATER),
    ("create", "106", "test", {"vmstate": True}, "", {DISKS[1]: "test"}, LATER),  # broken guest freeze: no agent here
    ("create", "201", "test", {"vmstate": False}, "volume snapshot disabled", {}, LATER),
    ("create", "202", "test", {"vmstate": False}, "volume snapshot disabled", {DISKS[1]: "test"},
     {**LATER, "deleted": {DISKS[1]: "test"}}),
    ("create", "203", "test", {"vmstate": False}, "savevm-start disabled", {}, {**LATER, "savevm_start": False}),
    ("create", "301", "test", {"vmstate": True}, "", {DISKS[1]: "test"}, LATER),
    ("create", "303", "test", {"vmstate": True}, "storage activation failed", {},
     {**LATER, "activate_storage_possible": False}),
    ("delete", "101", "test", {"force": False}, "", {DISKS[1]: "test"}, LATER),
    ("delete", "102", "test2", {"force": False}, "", {DISKS[1]: "test2"}, LATER),
    ("delete", "103", "test", {"force": False}, "", {DISKS[1]: "test"}, LATER),
    ("delete", "104", "test2", {"force": False}, "", {DISKS[1]: "test2"}, LATER),
    ("delete", "105", "test", {"force": True}, "", {}, LATER),
    ("delete", "106", "test", {"force": True}, "", {DISKS[1]: "test", DISKS[3]: "test"}, LATER),
    ("delete", "201", "test", {"force": False}, "volume snapshot delete disabled", {}, LATER),
    ("delete", "202", "test", {"force": False}, "volume snapshot delete disabled", {DISKS[1]: "test"}, LATER),
    ("delete", "203", "test", {"force": False}, "VM is locked (backup)", {}, LATER),
    ("delete", "204", "test", {"force": False}, "storage activation failed", {},
     {**LATER, "activate_storage_possible": False}),
    ("rollback", "101", "test", {}, "", {DISKS[1]: "test"}, LATER),
    ("rollback", "102", "test2", {}, "", {DISKS[1]: "test2"}, LATER),
    ("rollback", "103", "test", {}, "", {DISKS[1]: "test"}, LATER),
    ("rollback", "104", "test2", {}, "", {DISKS[1]: "test2"}, LATER),
    ("rollback", "105", "test", {}, "", {DISKS[1]: "test", DISKS[2]: "test", DISKS[3]: "test"}, LATER),
    ("rollback", "106", "test", {}, "", {DISKS[1]: "test"}, LATER),
    ("rollback", "201", "test2", {}, "snapshot 'test2' does not exist", {}, LATER),
    ("rollback", "202", "test", {}, "volume_rollback_is_possible failed", {}, LATER),
    ("rollback", "203", "test", {}, "unable to rollback to incomplete snapshot (snapstate = delete)", {}, LATER),
    ("rollback", "204", "test", {}, "VM is locked (backup)", {}, LATER),
    ("rollback", "205", "test", {}, "unable to rollback vm 205: vm is running", {}, {**LATER, "stop_possible": False}),
    ("rollback", "206", "test", {}, "volume_rollback_is_possible failed", {}, LATER),
    ("rollback", "207", "test", {}, "volume snapshot rollback disabled", {DISKS[1]: "test", DISKS[2]: "test"}, LATER),
    ("rollback", "301", "test", {}, "", {DISKS[1]: "test"}, LATER),
    ("rollback", "302", "test", {}, "", {DISKS[1]: "test"}, LATER),
    ("rollback", "303", "test", {}, "storage activation failed", {}, {**LATER, "activate_storage_possible": False}),
]


# pve-container's snapshot-test.pm, in its order; `stop_possible` is its $kill_possible
CT_CASES: list[tuple[str, str, str, dict[str, Any], str, dict[str, str], dict[str, Any]]] = [
    ("prepare", "101", "test", {"vmstate": False}, "", {}, {}),
    ("prepare", "102", "test2", {"vmstate": False}, "", {}, {}),
    ("prepare", "200", "test", {"vmstate": False}, "CT is locked (snapshot)", {}, {}),
    ("prepare", "201", "test", {"vmstate": False}, "snapshot name 'test' already used", {}, {}),
    ("prepare", "202", "test", {"vmstate": True}, "implement me - snapshot_save_vmstate", {}, {}),
    ("prepare", "300", "test", {"vmstate": False}, "snapshot feature is not available", {},
     {"snapshot_possible": False}),
    ("commit", "101", "test", {}, "", {}, {}),
    ("commit", "102", "test2", {}, "", {}, {}),
    ("commit", "201", "test", {}, "missing snapshot lock", {}, {}),
    ("commit", "202", "test", {}, "snapshot 'test' does not exist", {}, {}),
    ("commit", "203", "test", {}, "wrong snapshot state", {}, {}),
    ("create", "101", "test", {"vmstate": False}, "", {DISKS[1]: "test"}, LATER),
    ("create", "102", "test2", {"vmstate": False}, "", {DISKS[1]: "test2"}, LATER),
    ("create", "103", "test", {"vmstate": False}, "", {DISKS[1]: "test", DISKS[2]: "test", DISKS[3]: "test"}, LATER),
    ("create", "201", "test", {"vmstate": False}, "volume snapshot disabled", {}, LATER),
    ("create", "202", "test", {"vmstate": False}, "freeze disabled", {}, {**LATER, "freeze_possible": False}),
    ("create", "203", "test", {"vmstate": False}, "volume snapshot disabled", {DISKS[1]: "test"},
     {**LATER, "deleted": {DISKS[1]: "test"}}),
    ("create", "204", "test", {"vmstate": False}, "storage activation failed", {},
     {**LATER, "activate_storage_possible": False}),
    ("delete", "101", "test", {"force": False}, "", {DISKS[1]: "test"}, LATER),
    ("delete", "102", "test2", {"force": False}, "", {DISKS[1]: "test2"}, LATER),
    ("delete", "103", "test", {"force": False}, "", {DISKS[1]: "test"}, LATER),
    ("delete", "104", "test2", {"force": False}, "", {DISKS[1]: "test2"}, LATER),
    ("delete", "105", "test", {"force": True}, "", {}, LATER),
    ("delete", "106", "test", {"force": True}, "", {DISKS[1]: "test"}, LATER),
    ("delete", "201", "test", {"force": False}, "volume snapshot delete disabled", {}, LATER),
    ("delete", "203", "test", {"force": False}, "volume snapshot delete disabled", {DISKS[1]: "test"}, LATER),
    ("delete", "202", "test", {"force": False}, "CT is locked (backup)", {}, LATER),
    ("delete", "204", "test", {"force": False}, "storage activation failed", {},
     {**LATER, "activate_storage_possible": False}),
    ("rollback", "101", "test", {}, "", {DISKS[1]: "test"}, LATER),
    ("rollback", "102", "test2", {}, "", {DISKS[1]: "test2"}, LATER),
    ("rollback", "103", "test", {}, "", {DISKS[1]: "test"}, LATER),
    ("rollback", "104", "test2", {}, "", {DISKS[1]: "test2"}, LATER),
    ("rollback", "105", "test", {}, "", {DISKS[1]: "test", DISKS[2]: "test", DISKS[3]: "test"}, LATER),
    ("rollback", "201", "test2", {}, "snapshot 'test2' does not exist", {}, LATER),
    ("rollback", "202", "test", {}, "volume_rollback_is_possible failed", {}, LATER),
    ("rollback", "203", "test", {}, "unable to rollback to incomplete snapshot (snapstate = delete)", {}, LATER),
    ("rollback", "204", "test", {}, "CT is locked (backup)", {}, LATER),
    ("rollback", "205", "test", {}, "implement me - save vmstate", {DISKS[1]: "test"}, LATER),
    ("rollback", "206", "test", {}, "unable to rollback vm 206: vm is running", {}, {**LATER, "stop_possible": False}),
    ("rollback", "207", "test", {}, "volume_rollback_is_possible failed", {}, LATER),
    ("rollback", "208", "test", {}, "volume snapshot rollback disabled", {DISKS[1]: "test", DISKS[2]: "test"}, LATER),
    ("rollback", "209", "test", {}, "storage activation failed", {}, {**LATER, "activate_storage_possible": False}),
]


def run_case(phase: str, vmid: str, snapname: str, args: dict[str, Any], world: MockWorld, kind: str = "qemu"
             ) -> str:
    vm = snapshot.Guest(phase, int(vmid), kind)
    calls = {
        "prepare": lambda: snapshot.prepare(vm, snapname, args["vmstate"], "test comment", world, print),
        "commit": lambda: snapshot.commit(vm, snapname),
        "create": lambda: snapshot.create(vm, snapname, args["vmstate"], "test comment", world, print),
        "delete": lambda: snapshot.delete(vm, snapname, args["force"], world, print),
        "rollback": lambda: snapshot.rollback(vm, snapname, world, print),
    }
    try:
        calls[phase]()
    except GuestError as exc:
        return str(exc).strip()
    return ""


def check_case(fixtures: Path, kind: str, world_type: type[MockWorld], case: tuple[Any, ...], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> None:
    phase, vmid, snapname, args, error, volumes, flags = case
    shutil.copytree(fixtures / "snapshot-input", tmp_path / "working")
    monkeypatch.setattr(store, "NODES_DIR", tmp_path / "working")
    monkeypatch.setattr(store, "LOCK_DIR", tmp_path / "locks")
    monkeypatch.setattr(store, "LXC_LOCK_DIR", tmp_path / "locks")
    expected_deleted = flags.get("deleted", {})
    world = world_type(**{k: (set(v) if isinstance(v, set) else v) for k, v in flags.items() if k != "deleted"})
    got = run_case(phase, vmid, snapname, args, world, kind)
    assert got == error
    done = {"create": world.made, "delete": world.deleted, "rollback": world.rolled_back}.get(phase, {})
    assert done == volumes
    if phase == "create":
        assert world.deleted == expected_deleted
    folder = "qemu-server" if kind == "qemu" else "lxc"
    expected = (fixtures / "snapshot-expected" / phase / folder / f"{vmid}.conf").read_text()
    assert (tmp_path / "working" / phase / folder / f"{vmid}.conf").read_text() == expected


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_qemu_servers_snapshot_case(case: tuple[Any, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(FIXTURES, "qemu", MockWorld, case, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", CT_CASES, ids=[f"{c[0]}-{c[1]}" for c in CT_CASES])
def test_pve_containers_snapshot_case(case: tuple[Any, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    check_case(CT_FIXTURES, "lxc", ContainerMockWorld, case, tmp_path, monkeypatch)


def test_every_case_of_both_scripts_is_run() -> None:
    """Each testcase_* call of the two .pm scripts is a row above: none left out, none made up."""
    for fixtures, table in ((FIXTURES, CASES), (CT_FIXTURES, CT_CASES)):
        script = (fixtures / "snapshot-test.pm").read_text()
        calls = re.findall(r'testcase_(\w+)\(\s*"(\d+)"', script)
        assert sorted(calls) == sorted((c[0], c[1]) for c in table)
