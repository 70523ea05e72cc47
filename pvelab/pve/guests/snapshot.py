"""VM and container snapshots as PVE takes them (pve-guest-common's AbstractConfig with qemu-server's
QemuConfig and pve-container's LXC::Config): a `[name]` section in the config holding the guest's
options at that moment (`snaptime`, the
`description` as its comment, `parent`, `vmstate` when the RAM was saved), the config's `parent`
naming the newest, `snapstate` and `lock` while one is made or removed, and PVE's refusals and
error texts. Each step writes the config under the VM's lock, so a failure leaves what PVE leaves.

The steps are AbstractConfig's, shared by both kinds; what differs - which options are volumes, how a
running guest is held still (QEMU paused, a container frozen), RAM (VMs only) - is the `World`'s and
`volume_keys`'. The real worlds are below (`Node` for VMs, `ContainerNode`); tests/unit give
qemu-server's and pve-container's own test cases mock ones."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pvelab.poll import poll
from pvelab.pve.guests import containers, qmp, runtime, store
from pvelab.pve.guests.config import Section, VmConfig
from pvelab.pve.guests.store import GuestError
from pvelab.pve.guests.vm_ops import add_unused, start_vm
from pvelab.pve.refusal import Refusal
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.volumes import backend, parse_volume_id, volume_backend

Log = Callable[[str], None]
# The order qemu-server walks a config's drives (valid_drive_names)
DRIVE_ORDER = ("ide", "scsi", "virtio", "sata", "efidisk", "tpmstate")
NOT_COPIED = ("snapstate", "snaptime", "vmstate", "lock", "digest")  # __snapshot_copy_config leaves these
# What a step can fail with: PVE's refusals (guests', storages'), QEMU's answers, the system's
FAILURES = (Refusal, qmp.QmpError, OSError)


class World(Protocol):
    """What the snapshot steps ask of the node (qemu-server's calls into storage and QEMU)."""

    def now(self) -> int: ...
    def running(self, vmid: int) -> bool: ...
    def activate_storages(self, options: dict[str, str], with_vmstate: bool) -> None: ...
    def can_snapshot(self, conf: dict[str, str]) -> bool: ...
    def save_vmstate(self, vmid: int, conf: VmConfig, snapname: str, log: Log) -> dict[str, str]: ...
    def before_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Log) -> None: ...
    def after_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Log) -> None: ...
    def volume_snapshot(self, vmid: int, key: str, volid: str, snapname: str, running: bool, log: Log) -> None: ...
    def volume_snapshot_delete(self, vmid: int, key: str | None, volid: str, snapname: str, running: bool
                               ) -> None: ...
    def rollback_possible(self, volid: str, snapname: str) -> None: ...
    def volume_rollback(self, volid: str, snapname: str) -> None: ...
    def free_vmstate(self, volid: str) -> None: ...
    def free_volume(self, volid: str) -> None: ...
    def stop(self, vmid: int, log: Log) -> None: ...
    def start_with_state(self, vmid: int, vmstate: str, log: Log) -> None: ...


# -- the config -----------------------------------------------------------------------------------
MOUNT_KEY = re.compile(r"^(rootfs|mp(\d+))$")  # a container's volumes: its root and mount points


def drive_keys(options: dict[str, str]) -> list[str]:
    def order(key: str) -> tuple[int, int]:
        found = store.DRIVE_KEY.match(key)
        assert found is not None
        return DRIVE_ORDER.index(found.group(1)), int(found.group(2))

    return sorted((k for k in options if store.DRIVE_KEY.match(k)), key=order)


def mount_keys(options: dict[str, str]) -> list[str]:
    """A container's rootfs and mount points in pve-container's order (valid_volume_keys)."""
    found = [(int(m.group(2) or -1), k) for k in options if (m := MOUNT_KEY.match(k))]
    return [key for _index, key in sorted(found)]


def volume_keys(options: dict[str, str], kind: str) -> list[str]:
    return drive_keys(options) if kind == "qemu" else mount_keys(options)


def volume_of(value: str, kind: str) -> str | None:
    """The storage volume a drive or mount point names: not a CD-ROM (cloud-init drives are CD-ROMs
    too), not a container's bind or device mount (a path)."""
    drive = store.parse_drive(value)
    volid = drive.get("file", "")
    if kind == "qemu":
        return volid if volid and not store.is_cdrom(drive) else None
    return volid if volid and not volid.startswith("/") else None


def volumes(options: dict[str, str], kind: str = "qemu") -> list[tuple[str, str]]:
    """(key, volid) of each drive or mount point that is a storage volume."""
    return [(key, volid) for key in volume_keys(options, kind) if (volid := volume_of(options[key], kind))]


def copy_config(source: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in source.items() if k not in NOT_COPIED and not re.fullmatch(r"unused\d+", k)}


def is_template(conf: VmConfig) -> bool:
    return conf.main.options.get("template") == "1"


@dataclass
class Guest:
    """One guest's config file (a VM's, or a container's when kind is "lxc"), read and written under
    its lock as each step does."""

    node: str
    vmid: int
    kind: str = "qemu"

    def update(self, change: Callable[[VmConfig], Any]) -> Any:
        """Read, change, write under the lock; a change that raises writes nothing (as PVE's lock_config)."""
        with store.locked(self.vmid, self.kind):
            conf = store.load(self.node, self.vmid, self.kind)
            result = change(conf)
            store.save(self.node, self.vmid, conf, self.kind)
            return result

    def load(self) -> VmConfig:
        return store.load(self.node, self.vmid, self.kind)

    def check_lock(self, conf: VmConfig) -> None:
        store.check_lock(conf, self.kind)


# -- create ---------------------------------------------------------------------------------------
def prepare(vm: Guest, snapname: str, save_vmstate: bool, comment: str | None, world: World, log: Log
            ) -> dict[str, str]:
    """__snapshot_prepare: the `[snapname]` section in state `prepare`, the config locked `snapshot`."""
    def change(conf: VmConfig) -> dict[str, str]:
        if is_template(conf):
            raise GuestError("you can't take a snapshot if it's a template")
        vm.check_lock(conf)
        conf.main.options["lock"] = "snapshot"
        if snapname in conf.snapshots:
            raise GuestError(f"snapshot name '{snapname}' already used")
        if not world.can_snapshot(conf.main.options):
            raise GuestError("snapshot feature is not available")
        for name in sorted(conf.snapshots):
            if conf.snapshots[name].options.get("parent") == snapname:
                log(f"deleting parent '{snapname}' reference from '{name}' to avoid bogus snapshot cycle.")
                del conf.snapshots[name].options["parent"]
        snap = conf.snapshots[snapname] = Section(options={})
        if save_vmstate and world.running(vm.vmid):
            snap.options.update(world.save_vmstate(vm.vmid, conf, snapname, log))
        snap.options.update(copy_config(conf.main.options))
        snap.options.update(snapstate="prepare", snaptime=str(world.now()))
        if comment:
            snap.description = comment
        return dict(snap.options)

    return dict(vm.update(change))


def commit(vm: Guest, snapname: str) -> None:
    """__snapshot_commit: the snapshot complete, the lock gone, the config's parent the new snapshot."""
    def change(conf: VmConfig) -> None:
        if conf.main.options.get("lock") != "snapshot":
            raise GuestError("missing snapshot lock")
        snap = store.snapshot_section(conf, snapname)
        if snap.options.get("snapstate") != "prepare":
            raise GuestError("wrong snapshot state")
        del snap.options["snapstate"]
        del conf.main.options["lock"]
        conf.main.options["parent"] = snapname

    vm.update(change)


def create(vm: Guest, snapname: str, save_vmstate: bool, comment: str | None, world: World, log: Log) -> None:
    """snapshot_create: prepare, snapshot each volume (the RAM first when asked), commit; a failure
    removes what was made (snapshot_delete with force) and is raised again."""
    snap = prepare(vm, snapname, save_vmstate, comment, world, log)
    running = world.running(vm.vmid)
    made: dict[str, bool] = {}
    error: Exception | None = None  # PVE goes on to its cleanup after any of these
    try:
        world.activate_storages(snap, False)
        world.before_volume_snapshots(vm.vmid, snap, running, log)
        for key, volid in volumes(snap, vm.kind):
            if vm.kind == "qemu":
                log(f"snapshotting 'drive-{key}' ({volid})")
            world.volume_snapshot(vm.vmid, key, volid, snapname, running, log)
            made[key] = True
    except FAILURES as exc:
        error = exc
    if running:
        try:  # resumes the guest in any case; here it also writes the RAM, so its failure fails the snapshot
            world.after_volume_snapshots(vm.vmid, snap, running, log)
        except FAILURES as exc:
            error = error or exc
    if error is not None:
        log("snapshot create failed: starting cleanup")
        try:
            delete(vm, snapname, True, world, log, made)
        except FAILURES as exc:
            log(str(exc))
        raise GuestError(str(error)) from error
    commit(vm, snapname)


# -- delete ---------------------------------------------------------------------------------------
def _held(conf: VmConfig, snapname: str, lock: str) -> Section:
    """The snapshot, in a config still under the deletion's lock."""
    if conf.main.options.get("lock") != lock:
        raise GuestError(f"encountered invalid lock, expected '{lock}'")
    return store.snapshot_section(conf, snapname)


def _drop_from_snapshot(snapname: str, lock: str, key: str, kind: str) -> Callable[[VmConfig], None]:
    """__snapshot_delete_remove_drive: what is done is written down, one key at a time."""
    def change(conf: VmConfig) -> None:
        found = _held(conf, snapname, lock)
        if key == "vmstate":
            found.options.pop("vmstate", None)
            return
        volid = volume_of(found.options[key], kind)
        if kind == "qemu" and volid is None:  # a CD-ROM stays in the snapshot
            return
        del found.options[key]
        if volid:
            add_unused(found.options, volid)
    return change


def _forget(snapname: str, lock: str, unused: list[str], world: World, log: Log) -> Callable[[VmConfig], None]:
    """The section gone, the parent links mended around it, the lock dropped."""
    def change(conf: VmConfig) -> None:
        parent = _held(conf, snapname, lock).options.get("parent")
        for section in (conf.main, *(s for n, s in conf.snapshots.items() if n != snapname)):
            if section.options.get("parent") == snapname:
                if parent:
                    section.options["parent"] = parent
                else:
                    del section.options["parent"]
        del conf.snapshots[snapname]
        conf.main.options.pop("lock", None)
        for volid in unused:
            if re.search(r"vm-\d+-cloudinit", volid):
                log(f"found unused cloudinit disk '{volid}', removing it")
                world.free_volume(volid)
            else:
                add_unused(conf.main.options, volid)
    return change


def _mark_deleting(snapname: str, lock: str) -> Callable[[VmConfig], dict[str, str]]:
    def change(conf: VmConfig) -> dict[str, str]:
        found = _held(conf, snapname, lock)
        if is_template(conf):
            raise GuestError("you can't delete a snapshot if vm is a template")
        found.options["snapstate"] = "delete"
        return dict(found.options)
    return change


def _tolerated(force: bool, log: Log, step: Callable[[], None]) -> None:
    """A step that may fail when forced (said, then passed over), as PVE's eval/warn."""
    try:
        step()
    except FAILURES as exc:
        if not force:
            raise
        log(str(exc))


def delete(vm: Guest, snapname: str, force: bool, world: World, log: Log, made: dict[str, bool] | None = None
           ) -> None:
    """snapshot_delete: state `delete` under lock `snapshot-delete`, the RAM's volume freed, each
    volume's snapshot removed (each step written down unless forced), then the section gone and
    the parent links mended. From a failed create (`made`), under its `snapshot` lock."""
    snap = store.snapshot_section(vm.load(), snapname)
    if made is None:
        world.activate_storages(snap.options, True)
        vm.update(lambda c: _set_lock(vm, c, "snapshot-delete"))
    lock = "snapshot" if made is not None else "snapshot-delete"
    unused: list[str] = []
    options = vm.update(_mark_deleting(snapname, lock))
    if options.get("vmstate"):
        _tolerated(force, log, lambda: world.free_vmstate(options["vmstate"]))
        if not force:
            vm.update(_drop_from_snapshot(snapname, lock, "vmstate", vm.kind))
    running = world.running(vm.vmid)
    for key in volume_keys(options, vm.kind):
        volid = volume_of(options[key], vm.kind)
        if (made is None or made.get(key)) and volid:
            def remove(volid: str = volid, device: str | None = key if running else None) -> None:
                world.volume_snapshot_delete(vm.vmid, device, volid, snapname, running)
                unused.append(volid)
            _tolerated(force, log, remove)
        if not force:
            vm.update(_drop_from_snapshot(snapname, lock, key, vm.kind))
    vm.update(_forget(snapname, lock, unused, world, log))


def _set_lock(vm: Guest, conf: VmConfig, lock: str) -> None:
    vm.check_lock(conf)
    conf.main.options["lock"] = lock


# -- rollback -------------------------------------------------------------------------------------
def rollback(vm: Guest, snapname: str, world: World, log: Log) -> None:
    """snapshot_rollback: checks, the VM stopped, lock `rollback`; each volume rolled back; then the
    snapshot's options become the config's (parent: the snapshot), and a snapshot with RAM starts
    the VM from it, so it resumes where it was."""
    snap_options: dict[str, str] = {}
    old_machine: list[str] = []  # the config's machine before the rollback (qemu-server's oldmachine)

    def snapshot_of(conf: VmConfig) -> Section:
        if is_template(conf):
            raise GuestError("you can't rollback if vm is a template")
        return store.snapshot_section(conf, snapname)

    def prepare_step(conf: VmConfig) -> None:
        snap = snapshot_of(conf)
        world.activate_storages(snap.options, True)
        for _key, volid in volumes(snap.options, vm.kind):
            world.rollback_possible(volid, snapname)
        if snap.options.get("snapstate"):
            raise GuestError(f"unable to rollback to incomplete snapshot (snapstate = {snap.options['snapstate']})")
        vm.check_lock(conf)
        world.stop(vm.vmid, log)
        if world.running(vm.vmid):
            raise GuestError(f"unable to rollback vm {vm.vmid}: vm is running")
        conf.main.options["lock"] = "rollback"
        snap_options.update(snap.options)
        old_machine.extend([conf.main.options["machine"]] if "machine" in conf.main.options else [])

    def finish_step(conf: VmConfig) -> None:
        snap = snapshot_of(conf)
        if conf.main.options.get("lock") != "rollback":
            raise GuestError("got wrong lock")
        del conf.main.options["lock"]
        kept_by_snapshot = {volid for _key, volid in volumes(snap.options, vm.kind)}
        for _key, volid in volumes(conf.main.options, vm.kind):
            if volid not in kept_by_snapshot:
                add_unused(conf.main.options, volid)
        kept = {k: v for k, v in conf.main.options.items() if re.fullmatch(r"unused\d+", k)}
        conf.main.options = {**kept, **copy_config(snap.options), "parent": snapname}
        options = conf.main.options
        if vm.kind != "qemu":
            return
        # qemu-server's __snapshot_rollback_hook: what QEMU is started with next
        if "runningmachine" in options:  # what QEMU starts with (forcemachine), not kept in the config
            for key in ("runningmachine", "runningcpu"):
                options.pop(key, None)
        elif snap.options.get("vmstate") and not old_machine:
            options.pop("machine", None)  # RAM saved without a machine of the config's own
        if options.get("vmgenid"):  # another generation of the VM: a guest that reads it can tell
            options["vmgenid"] = str(uuid.uuid4())
        options.pop("running-nets-host-mtu", None)

    vm.update(prepare_step)
    for _key, volid in volumes(snap_options, vm.kind):
        world.volume_rollback(volid, snapname)
    vm.update(finish_step)
    if snap_options.get("vmstate"):
        world.start_with_state(vm.vmid, snap_options["vmstate"], log)


# -- the node itself --------------------------------------------------------------------------------
def vmstate_storage(options: dict[str, str]) -> str:
    """qemu-server's find_vmstate_storage: `vmstatestorage`, else a shared storage the VM's disks
    use, else a local one (file-based storages first), else `local`."""
    if options.get("vmstatestorage"):
        return options["vmstatestorage"]
    shared = local = None
    for _key, volid in volumes(options):
        sid = parse_volume_id(volid)[0]
        storage = storage_config.get(sid)
        if storage.get("shared") in (1, "1", True):
            shared = sid if shared is None or storage.get("path") else shared
        else:
            local = sid if local is None or storage.get("path") else local
    return shared or local or "local"


class NodeWorld:
    """What both kinds' worlds do alike on a real node: the clock, the storages' own volume snapshots."""

    kind = "qemu"

    def __init__(self, node: str) -> None:
        self.node = node

    def now(self) -> int:
        return int(time.time())

    def activate_storages(self, options: dict[str, str], with_vmstate: bool) -> None:
        for _key, volid in volumes(options, self.kind):  # a storage that is gone is said at once
            volume_backend(volid)

    def can_snapshot(self, conf: dict[str, str]) -> bool:
        """has_feature('snapshot'): every volume's storage can; a container's bind mount cannot (a VM's
        CD-ROM does not count)."""
        for key in volume_keys(conf, self.kind):
            volid = volume_of(conf[key], self.kind)
            if volid is None:
                if self.kind == "lxc":
                    return False
                continue
            store_, volname = volume_backend(volid)
            if not store_.can_snapshot(volname):
                return False
        return True

    def volume_snapshot(self, vmid: int, key: str, volid: str, snapname: str, running: bool, log: Log) -> None:
        store_, volname = volume_backend(volid)
        store_.snapshot(volname, snapname)

    def volume_snapshot_delete(self, vmid: int, key: str | None, volid: str, snapname: str, running: bool) -> None:
        store_, volname = volume_backend(volid)
        store_.snapshot_delete(volname, snapname)

    def rollback_possible(self, volid: str, snapname: str) -> None:
        volume_backend(volid)

    def volume_rollback(self, volid: str, snapname: str) -> None:
        store_, volname = volume_backend(volid)
        store_.snapshot_rollback(volname, snapname)

    def free_volume(self, volid: str) -> None:
        store_, volname = volume_backend(volid)
        store_.free(volname)


class Node(NodeWorld):
    """The World of a real node: its storages, its QEMU (QMP), the clock."""

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.paused: set[int] = set()  # guests this snapshot paused (a guest paused by its user stays so)

    def running(self, vmid: int) -> bool:
        return runtime.pid_of(vmid) is not None

    def save_vmstate(self, vmid: int, conf: VmConfig, snapname: str, log: Log) -> dict[str, str]:
        """A volume for the RAM (vm-VMID-state-NAME, twice the memory and 500 MiB, as qemu-server
        sizes it) and the machine QEMU runs; the RAM itself is written once the disks are done."""
        options = conf.main.options
        target = vmstate_storage(options)
        storage = storage_config.get(target)
        memory = int(store.parse_props(options.get("memory", "512"), "current")["current"])
        name = f"vm-{vmid}-state-{snapname}" + (".raw" if storage.get("path") else "")
        volid = backend(target, storage).alloc(vmid, name, (memory * 2 + 500) * 1024, "raw" if storage.get("path")
                                               else None)
        machines = qmp.command(vmid, "query-machines")
        alias = options.get("machine", "pc").split("+")[0]
        machine = next((m["name"] for m in machines if m.get("alias") == alias), alias)
        argv = runtime.command(vmid, conf)
        return {"vmstate": volid, "runningmachine": f"{machine}+pve0", "runningcpu": argv[argv.index("-cpu") + 1]}

    def before_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Log) -> None:
        """The guest paused while its volumes are snapshotted, so every disk (and the RAM) is of one instant."""
        if running and qmp.command(vmid, "query-status").get("status") == "running":
            qmp.command(vmid, "stop")
            self.paused.add(vmid)

    def after_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Log) -> None:
        """The RAM written to its volume while the guest is still paused (QEMU's migration stream, which
        is what qemu-server's savevm writes too), then the guest resumed."""
        try:
            if snap.get("vmstate"):
                store_, volname = volume_backend(snap["vmstate"])
                log(f"saving VM state and RAM using storage '{snap['vmstate'].split(':', 1)[0]}'")
                began = time.monotonic()
                qmp.command(vmid, "migrate", uri=f"exec:{store_.state_writer(volname)}")
                while True:
                    state = qmp.command(vmid, "query-migrate")
                    if state.get("status") == "completed":
                        saved = state.get("ram", {}).get("total", 0)
                        log(f"completed saving the VM state in {max(1, round(time.monotonic() - began))}s, "
                            f"saved {saved / (1 << 20):.2f} MiB")
                        break
                    if state.get("status") in ("failed", "cancelled"):
                        why = state.get("error-desc", "unknown error")
                        raise GuestError(f"unable to save VM state and RAM - {why}")
                    time.sleep(0.2)
        finally:
            if vmid in self.paused:
                self.paused.discard(vmid)
                qmp.command(vmid, "cont")

    def volume_snapshot(self, vmid: int, key: str, volid: str, snapname: str, running: bool, log: Log) -> None:
        store_, volname = volume_backend(volid)
        if running and volname.endswith(".qcow2"):  # QEMU holds the image: it takes the internal snapshot
            log("internal qemu snapshot")
            qmp.command(vmid, "blockdev-snapshot-internal-sync", device=f"drive-{key}", name=snapname, timeout=60)
        else:
            super().volume_snapshot(vmid, key, volid, snapname, running, log)

    def volume_snapshot_delete(self, vmid: int, key: str | None, volid: str, snapname: str, running: bool) -> None:
        store_, volname = volume_backend(volid)
        if running and key and volname.endswith(".qcow2"):
            qmp.command(vmid, "blockdev-snapshot-delete-internal-sync", device=f"drive-{key}", name=snapname,
                        timeout=60)
        else:
            super().volume_snapshot_delete(vmid, key, volid, snapname, running)

    def free_vmstate(self, volid: str) -> None:
        self.free_volume(volid)

    def stop(self, vmid: int, log: Log) -> None:
        runtime.stop(vmid, log, timeout=5)

    def start_with_state(self, vmid: int, vmstate: str, log: Log) -> None:
        """The VM started from the saved RAM (as qemu-server's vm_start with a statefile): it resumes."""
        store_, volname = volume_backend(vmstate)
        start_vm(self.node, vmid, log, incoming=f"exec:{store_.state_reader(volname)}")
        # the RAM was saved with the guest paused (so the disks match it), and QEMU keeps that state
        # on loading it: once loaded, the guest runs on, as it does on PVE after a rollback with RAM
        loaded = poll(lambda: qmp.command(vmid, "query-status").get("status") != "inmigrate" or None,
                      timeout=120, interval=0.2)
        if loaded is None:
            raise GuestError(f"VM {vmid} did not load its saved state within 120 s")
        qmp.command(vmid, "cont")


class ContainerNode(NodeWorld):
    """The World of a real node for its containers (pve-container's hooks): a running container is
    frozen and its filesystems synced while its volumes are snapshotted, and thawed after; a rollback
    kills it first. Containers have no RAM to save: PVE's own "implement me" answers say so."""

    kind = "lxc"

    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.frozen: set[int] = set()

    def running(self, vmid: int) -> bool:
        return containers.running(vmid)

    def save_vmstate(self, vmid: int, conf: VmConfig, snapname: str, log: Log) -> dict[str, str]:
        raise GuestError("implement me - snapshot_save_vmstate")

    def before_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Log) -> None:
        if running:
            containers.freeze(vmid, True)
            self.frozen.add(vmid)
            for _key, volid in volumes(snap, "lxc"):  # sync_container_namespace: what it wrote is on disk
                subprocess.run(["sync", "-f", str(containers.volume_path(volid))], capture_output=True, check=False)

    def after_volume_snapshots(self, vmid: int, snap: dict[str, str], running: bool, log: Log) -> None:
        if vmid in self.frozen:
            self.frozen.discard(vmid)
            try:
                containers.freeze(vmid, False)
            except GuestError as exc:  # PVE warns and goes on
                log(str(exc))

    def free_vmstate(self, volid: str) -> None:
        raise GuestError("implement me - saving vmstate")

    def stop(self, vmid: int, log: Log) -> None:
        if containers.running(vmid):
            containers.stop(vmid)

    def start_with_state(self, vmid: int, vmstate: str, log: Log) -> None:
        raise GuestError("implement me - save vmstate")
