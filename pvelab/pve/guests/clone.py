"""Templates, clones and disk moves of VMs, as qemu-server does them: `qm template`, `qm clone`,
`qm disk move` and their API (POST template, clone, move_disk; GET feature).

A template's disks become base images (vm-100-disk-0 renamed base-100-disk-0, read-only); a
linked clone is a new volume on the same storage that reads the base (a qcow2 backed by it on a
directory, an RBD clone of its __base__ snapshot, a thin copy on lvmthin); a full clone is a copy
(qemu-img convert, or QEMU's drive-mirror while the source VM runs). The storage's own rules
(pve-storage's volume_has_feature) decide what is possible."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pvelab.pve import members
from pvelab.pve.access import guard as access
from pvelab.pve.access import store as access_store
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import blockjob, runtime, store
from pvelab.pve.guests.api import guest_call, worker
from pvelab.pve.guests.config import Section, VmConfig
from pvelab.pve.guests.store import GuestError
from pvelab.pve.guests.vm_ops import add_unused, in_use_by_snapshots
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.volumes import Backend, backend, parse_volume_id, volume_backend

Log = Callable[[str], None]
SNAPSHOT_KEYS = ("snapshots", "parent", "snaptime", "vmstate", "snapstate", "runningcpu", "runningmachine",
                 "running-nets-host-mtu")
CLOUDINIT_BYTES = 4 * 1024 * 1024


def is_template(conf: VmConfig) -> bool:
    return conf.main.options.get("template") == "1"


def disk_drives(options: dict[str, str]) -> dict[str, dict[str, str]]:
    """The drives that hold a volume of ours (not CD-ROMs, not host paths)."""
    return {k: d for k, d in store.drives(options).items()
            if not (store.is_cdrom(d) and not store.is_cloudinit(d)) and ":" in d.get("file", "")}


# -- template ---------------------------------------------------------------------------------------
def check_template(conf: VmConfig, vmid: int, disk: str | None) -> None:
    store.check_lock(conf)
    if conf.snapshots:
        raise GuestError("unable to create template, because VM contains snapshots")
    if is_template(conf) and not disk:
        raise GuestError("you can't convert a template to a template")
    if runtime.pid_of(vmid) is not None:
        raise GuestError("you can't convert a VM to template if VM is running")


def make_base_images(node: str, vmid: int, conf: VmConfig, disk: str | None) -> None:
    """qemu-server's template_create: each disk (or the one named) becomes a base image; the config is
    written after each, so a failure midway leaves it naming what exists."""
    for key, drive in disk_drives(conf.main.options).items():
        if (disk and key != disk) or store.is_cloudinit(drive):
            continue
        storage, volname = volume_backend(drive["file"])
        if not storage.has_feature("template", volname):
            continue
        drive["file"] = f"{storage.id}:{storage.create_base(volname)}"
        conf.main.options[key] = store.print_drive(drive)
        store.save(node, vmid, conf)


def template(node: str, vmid: int, disk: str | None) -> None:
    with store.locked(vmid):
        conf = store.load(node, vmid)
        check_template(conf, vmid, disk)
        conf.main.options["template"] = "1"
        store.save(node, vmid, conf)
        make_base_images(node, vmid, conf, disk)


# -- clone ------------------------------------------------------------------------------------------
@dataclass
class ClonePlan:
    """What load_and_check found: the new config so far, the drives to clone and how."""

    source: dict[str, str]
    new: dict[str, str]
    drives: dict[str, dict[str, str]] = field(default_factory=dict)
    full: dict[str, bool] = field(default_factory=dict)
    running: bool = False


def check_target_storage(node: str, storage: str | None, target: str | None, content: str = "images") -> None:
    if target and target not in (members.read().get("nodelist") or {}):
        raise GuestError(f"no such cluster node '{target}'")
    if not storage:
        return
    options = storage_config.get(storage)
    if not storage_config.available_on(options, node):
        raise GuestError(f"storage '{storage}' is not available on node '{node}'")
    if content not in storage_config.content_of(options):
        what = "vm images" if content == "images" else "container directories"
        raise GuestError(f"storage '{storage}' does not support {what}", param="storage", status=400)
    if target:
        if not storage_config.available_on(options, target):
            raise GuestError(f"storage '{storage}' is not available on node '{target}'")
        if not storage_config.is_shared(options):
            raise GuestError(f"can't clone to non-shared storage '{storage}'")


def check_storage_access(old: dict[str, str], storage: str | None, caller: str) -> bool:
    """check_storage_access_clone: the caller may use each storage; True when every volume is shared."""
    shared = True
    for drive in store.drives(old).values():
        file = drive.get("file", "")
        if ":" not in file:
            continue
        sid = parse_volume_id(file)[0]
        if store.is_cdrom(drive) and not store.is_cloudinit(drive):
            access.require(caller, f"/storage/{sid}", ["Datastore.Audit", "Datastore.AllocateSpace"], any_of=True)
        else:
            access.require(caller, f"/storage/{storage or sid}", ["Datastore.AllocateSpace"])
        shared = shared and storage_config.is_shared(storage_config.get(sid))
    return shared


def plan_clone(node: str, vmid: int, newid: int, params: dict[str, Any], caller: str) -> ClonePlan:
    """The API's load_and_check: every refusal before any work, in qemu-server's order."""
    target, storage, snapname = params.get("target"), params.get("storage"), params.get("snapname")
    if params.get("pool") and params["pool"] not in access_store.read().pools:
        raise GuestError(f"pool '{params['pool']}' does not exist")
    check_target_storage(node, storage, target)
    runtime.check_quorum()
    conf = store.load(node, vmid)
    store.check_lock(conf)
    store.options_at(conf, snapname)  # the snapshot named exists
    full = bool(params["full"]) if params.get("full") is not None else not is_template(conf)
    for name in ("storage", "format"):
        if params.get(name) and not full:
            raise GuestError(f"parameter '{name}' not allowed for linked clones")
    old = conf.snapshots[snapname].options if snapname else conf.main.options
    if not check_storage_access(old, storage, caller) and target:
        raise GuestError(f"can't clone VM to node '{target}' (VM uses local storage)")
    if store.config_path(node, newid).exists() or store.owner(newid) is not None:
        raise GuestError(f"unable to create VM {newid}: config file already exists")
    plan = ClonePlan(source=old, new={"lock": "clone"}, running=runtime.pid_of(vmid) is not None)
    disks = disk_drives(old)
    for key, value in sorted(old.items()):
        if key in SNAPSHOT_KEYS or key.startswith("unused"):
            continue
        if key.startswith("net") and key[3:].isdigit():
            net = store.parse_net(value)
            net["macaddr"] = store.random_mac()  # always a new MAC
            plan.new[key] = store.print_net(net)
        elif key in disks:
            plan.drives[key] = disks[key]
            plan.full[key] = clone_kind(key, disks[key], full, snapname, plan.running)
        else:
            plan.new[key] = value
    return plan


def clone_kind(key: str, drive: dict[str, str], full: bool, snapname: str | None, running: bool) -> bool:
    """Whether the drive is copied (True) or linked, refused where its storage cannot."""
    if full and running and not snapname and key == "tpmstate0":
        raise GuestError("cannot clone TPM state while VM is running")
    storage, volname = volume_backend(drive["file"])
    what = f"clone feature is not supported for{' a snapshot of' if snapname else ''} '{drive['file']}' ({key})"
    if full or store.is_cloudinit(drive):
        if not storage.has_feature("copy", volname, snapname):
            raise GuestError(f"Full {what}")
        return True
    if not storage.has_feature("clone", volname, snapname):
        raise GuestError(f"Linked {what}")
    return False


def clone(node: str, vmid: int, newid: int, params: dict[str, Any], caller: str, log: Log) -> None:
    snapname = params.get("snapname")
    with store.locked(vmid), store.locked(newid):
        plan = plan_clone(node, vmid, newid, params, caller)
        log(f"creating a clone of VM {vmid} with ID {newid}")
        new = plan.new
        smbios = store.parse_props(new.get("smbios1", ""))
        smbios["uuid"] = str(uuid.uuid4())
        new["smbios1"] = store.print_props(smbios)
        if new.get("vmgenid"):
            new["vmgenid"] = str(uuid.uuid4())
        new.pop("template", None)
        new["name"] = params.get("name") or f"Copy-of-VM-{plan.source.get('name') or vmid}"
        conf = VmConfig(main=Section(options=new, description=params.get("description")
                                     or store.load(node, vmid).main.description))
        store.save(node, newid, VmConfig(main=Section(options={"lock": "clone"})))
        made: list[str] = []
        jobs: list[str] = []
        try:
            for key, drive in sorted(plan.drives.items()):
                source = DiskSource(vmid, key, drive, snapname, plan.running)
                new[key] = store.print_drive(clone_disk(source, newid, plan.full.get(key, False),
                                                        params.get("storage"), params.get("format"), made,
                                                        jobs, log))
                store.save(node, newid, conf)
            if jobs:  # a running VM's disks: copies in sync, the VM stays on its own
                blockjob.wait_ready(vmid, jobs, log)
                blockjob.finish(vmid, jobs, switch=False, log=log)
            new.pop("lock", None)
            store.save(node, newid, conf)
            target = params.get("target")
            if target and target != node:
                store.config_path(node, newid).rename(store.config_path(target, newid))
            if params.get("pool"):
                access_store.add_vm_to_pool(newid, params["pool"])
        except Exception as exc:
            undo(vmid, jobs, made, log)
            store.config_path(node, newid).unlink(missing_ok=True)
            raise GuestError(f"clone failed: {exc}") from exc


def undo(vmid: int, jobs: list[str], made: list[str], log: Log) -> None:
    """After a failed clone or move: the mirrors stopped, the volumes made so far removed."""
    if jobs:
        blockjob.cancel(vmid, jobs)
    for volid in made:
        try:
            storage, volname = volume_backend(volid)
            storage.free(volname)
        except storage_config.StorageError as exc:
            log(f"{exc}")


@dataclass
class DiskSource:
    vmid: int
    key: str
    drive: dict[str, str]
    snapname: str | None = None
    running: bool = False


def clone_disk(source: DiskSource, newid: int, full: bool, storage: str | None, fmt: str | None,
               made: list[str], jobs: list[str], log: Log) -> dict[str, str]:
    """qemu-server's clone_disk: a linked clone, or a new volume with the data copied (mirrored while
    the VM runs: the job is added to `jobs`, for the caller to finish). Returns the new drive."""
    volid = source.drive["file"]
    src, volname = volume_backend(volid)
    log(f"create {'full' if full else 'linked'} clone of drive {source.key} ({volid})")
    if not full:
        new_volid = f"{src.id}:{src.clone_image(volname, newid, source.snapname)}"
        made.append(new_volid)
    else:
        dst = backend(storage, storage_config.get(storage)) if storage else src
        dst_fmt = target_format(dst, fmt or src.volume_format(volname))
        if fmt and fmt != dst_fmt:
            log(f"format '{fmt}' is not supported by the target storage '{dst.id}' - using '{dst_fmt}' instead")
        if store.is_cloudinit(source.drive):
            name = f"vm-{newid}-cloudinit" + (f".{dst_fmt}" if dst.options.get("path") else "")
            new_volid = dst.alloc(newid, name, CLOUDINIT_BYTES // 1024, None)
            made.append(new_volid)
            log(f"allocated target volume '{new_volid}'")  # no data: PVE writes the drive at start
        else:
            size = src.size(volname)
            new_volid = dst.alloc(newid, None, -(-size // 1024), dst_fmt if dst.options["type"] == "dir" else None)
            made.append(new_volid)
            log(f"allocated target volume '{new_volid}'")
            target = dst.path(parse_volume_id(new_volid)[1])
            if source.running and not source.snapname:
                jobs.append(blockjob.start(source.vmid, source.key, str(target), dst_fmt, log, (volid, new_volid)))
            else:
                copy_data(src, volname, source.snapname, str(target), dst_fmt)
    new_drive = {k: v for k, v in source.drive.items() if k != "format"}
    new_drive["file"] = new_volid
    new_storage, new_volname = volume_backend(new_volid)
    if not store.is_cloudinit(source.drive):
        new_drive["size"] = store.size_text(new_storage.size(new_volname))
    return new_drive


def target_format(storage: Backend, wanted: str) -> str:
    """pve-storage's resolve_format_hint: the wanted format where the storage has it, else its default."""
    if storage.options["type"] == "dir":
        return wanted if wanted in ("raw", "qcow2", "vmdk") else str(storage.options.get("format", "raw"))
    return "raw"


def copy_data(src: Backend, volname: str, snapname: str | None, target: str, dst_fmt: str) -> None:
    """QemuImage::convert: the whole volume (or a snapshot of it) into the new one, which exists already."""
    path, extra = src.snapshot_source(volname, snapname) if snapname else (str(src.path(volname)), [])
    if path.startswith("/"):  # read while a running VM's QEMU holds the file (a clone of its snapshot)
        extra = ["-U", *extra]
    argv = ["qemu-img", "convert", "-p", "-n", *extra, "-f", src.volume_format(volname), "-O", dst_fmt, path, target]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise GuestError(f"copy failed: command '{' '.join(argv)}' failed: exit code {done.returncode}"
                         + (f": {done.stderr.strip()}" if done.stderr.strip() else ""))


# -- move disk --------------------------------------------------------------------------------------
def move_disk(node: str, vmid: int, params: dict[str, Any], log: Log) -> None:
    """POST move_disk to another storage: copied (mirrored while the VM runs, the guest switched over at
    the end), the old volume kept as unusedN or, with `delete`, removed."""
    disk, storage, fmt = params["disk"], params["storage"], params.get("format")
    with store.locked(vmid):
        conf = store.load(node, vmid)
        drive, old_storage, snapshotted = check_move(conf, disk, storage, fmt, params)
        old_volid = drive["file"]
        log(f"copying volume '{old_volid}' from current storage '{old_storage}' to target storage '{storage}'")
        running = runtime.pid_of(vmid) is not None
        made: list[str] = []
        jobs: list[str] = []
        try:
            if snapshotted:
                log("moving disk with snapshots, snapshots will not be moved!")
            new_drive = clone_disk(DiskSource(vmid, disk, drive, None, running), vmid, True, storage, fmt, made,
                                   jobs, log)
            if jobs:
                blockjob.wait_ready(vmid, jobs, log)
                blockjob.finish(vmid, jobs, switch=True, log=log)
            conf.main.options[disk] = store.print_drive(new_drive)
            if not params.get("delete"):
                unused = add_unused(conf.main.options, old_volid)
                log(f"adding source volume '{old_volid}' as '{unused}' to config")
            if is_template(conf):
                make_base_images(node, vmid, conf, disk)
            store.save(node, vmid, conf)
        except Exception as exc:
            undo(vmid, jobs, made, log)
            raise GuestError(f"storage migration failed: {exc}") from exc
        if params.get("delete"):
            log(f"removing source volume '{old_volid}' after successful copy")
            try:
                storage_of, volname = volume_backend(old_volid)
                storage_of.free(volname)
            except storage_config.StorageError as exc:
                log(f"{exc}")


# -- a disk handed to another VM (move_disk with target-vmid) ------------------------------------------
def check_reassign(node: str, vmid: int, target_vmid: int, disk: str, target_disk: str, digests: tuple[Any, Any]
                   ) -> tuple[VmConfig, VmConfig, dict[str, str]]:
    """qemu-server's load_and_check_reassign_configs: both VMs here, unlocked, not templates; the disk a
    volume no snapshot holds, on a storage that can rename it, not in use by a running VM."""
    found, target = store.owner(vmid), store.owner(target_vmid)
    if found is None:
        raise GuestError(f"could not find VM {vmid}")
    if target is None:
        raise GuestError(f"could not find target VM {target_vmid}")
    if found["node"] != target["node"]:
        raise GuestError(f"Both VMs need to be on the same node ({found['node']} != {target['node']})")
    source_conf, target_conf = store.load(node, vmid), store.load(node, target_vmid)
    store.check_lock(source_conf)
    store.check_lock(target_conf)
    if is_template(source_conf) or is_template(target_conf):
        raise GuestError("Can't move disks from or to template VMs")
    for which, conf, digest in ((vmid, source_conf, digests[0]), (target_vmid, target_conf, digests[1])):
        if digest and digest != conf.digest:
            raise GuestError(f"VM {which}: detected modified configuration - file changed by other user? Try again.")
    if disk not in source_conf.main.options:
        raise GuestError(f"Disk '{disk}' for VM '{vmid}' does not exist")
    if target_disk in target_conf.main.options:
        raise GuestError(f"Target disk key '{target_disk}' is already in use for VM '{target_vmid}'")
    drive = store.parse_drive(source_conf.main.options[disk])
    volid = drive.get("file", "")
    if not volid:
        raise GuestError(f"disk '{disk}' has no associated volume")
    if store.is_cdrom(drive) or store.is_cloudinit(drive):
        raise GuestError("CD drive contents can't be moved to another VM")
    if ":" not in volid:
        raise GuestError(f"Volume '{volid}' not managed by PVE")
    if in_use_by_snapshots(source_conf, volid):
        raise GuestError("Can't move disk used by a snapshot to another VM")
    storage, volname = volume_backend(volid)
    if not storage.has_feature("rename", volname):
        raise GuestError("Storage does not support moving of this disk to another VM")
    if runtime.pid_of(vmid) is not None and not disk.startswith("unused"):
        raise GuestError("Cannot move disk to another VM while the source VM is running - detach first")
    return source_conf, target_conf, drive


def reassign_disk(node: str, vmid: int, params: dict[str, Any], log: Log) -> None:
    """The disk's volume renamed to the target VM's next free name, taken out of the source's config
    (and its boot order) and added to the target's, as `target-disk` (unusedN, or a drive)."""
    target_vmid, disk = int(params["target-vmid"]), params["disk"]
    target_disk = params.get("target-disk") or disk
    with store.locked(vmid), store.locked(target_vmid):
        source_conf, target_conf, drive = check_reassign(node, vmid, target_vmid, disk, target_disk,
                                                         (params.get("digest"), params.get("target-digest")))
        log(f"reassign disk '{disk}' from VM '{vmid}' as '{target_disk}' to VM '{target_vmid}'")
        storage, volname = volume_backend(drive["file"])
        new_volid = f"{storage.id}:{storage.rename_volume(volname, target_vmid)}"
        options = source_conf.main.options
        order = store.parse_props(options.get("boot", ""))
        if disk in order.get("order", "").split(";"):
            log(f"removing disk '{disk}' from boot order config")
            options["boot"] = store.print_props({**order, "order": ";".join(
                d for d in order["order"].split(";") if d != disk)})
        del options[disk]
        log(f"removing disk '{disk}' from VM '{vmid}' config")
        store.save(node, vmid, source_conf)
        new = {"file": new_volid} if target_disk.startswith("unused") else {**drive, "file": new_volid}
        target_conf.main.options[target_disk] = store.print_drive(new)
        store.save(node, target_vmid, target_conf)


def check_move(conf: VmConfig, disk: str, storage: str, fmt: str | None, params: dict[str, Any]
               ) -> tuple[dict[str, str], str, bool]:
    """load_and_check_move's refusals; returns the drive, its storage and whether a snapshot uses it."""
    store.check_lock(conf)
    if params.get("digest") and params["digest"] != conf.digest:
        raise GuestError("detected modified configuration - file changed by other user? Try again.")
    if disk not in conf.main.options:
        raise GuestError(f"disk '{disk}' does not exist")
    drive = store.parse_drive(conf.main.options[disk]) if not disk.startswith("unused") else \
        {"file": conf.main.options[disk]}
    if not drive.get("file"):
        raise GuestError(f"disk '{disk}' has no associated volume")
    if store.is_cdrom(drive) and not store.is_cloudinit(drive):
        raise GuestError("you can't move a cdrom")
    old_storage, old_volname = parse_volume_id(drive["file"])
    old_fmt = volume_backend(drive["file"])[0].volume_format(old_volname)
    if old_storage == storage and (not fmt or fmt == old_fmt):
        raise GuestError("you can't move to the same storage with same format")
    options = storage_config.get(storage)
    if "images" not in storage_config.content_of(options):
        raise GuestError(f"storage '{storage}' does not support vm images", param="storage", status=400)
    snapshotted = any(drive["file"] == store.parse_drive(snap.options.get(disk, "")).get("file")
                      for snap in conf.snapshots.values() if disk in snap.options)
    if snapshotted and params.get("delete"):
        raise GuestError("you can't move a disk with snapshots and delete the source")
    return drive, old_storage, snapshotted


# -- import -----------------------------------------------------------------------------------------
def import_disk(node: str, vmid: int, source: str, storage: str, fmt: str | None, target_disk: str | None,
                log: Log) -> None:
    """`qm disk import` (qm's importdisk and ImportDisk::do_import): an image file qemu-img reads, copied
    into a new volume of the VM, added as unusedN (or as the drive `target_disk` names)."""
    if target_disk and not store.DRIVE_KEY.match(target_disk):
        target_disk = None  # unusedN: do_import takes only drive names
    store.check_lock(store.load(node, vmid))
    path = Path(source)
    if not path.is_file():
        raise GuestError(f"{source}: non-existent or non-regular file")
    options = storage_config.get(storage)
    if not storage_config.available_on(options, node):
        raise GuestError(f"storage '{storage}' is not available on node '{node}'")
    if "images" not in storage_config.content_of(options):
        raise GuestError(f"storage {storage} does not support vm images")
    log(f"importing disk '{source}' to VM {vmid} ...")
    info = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True,
                          check=False)
    if info.returncode != 0:
        raise GuestError(f"could not parse qemu-img info command output for '{source}' - {info.stderr.strip()}")
    image = json.loads(info.stdout)
    dst = backend(storage, options)
    dst_fmt = target_format(dst, fmt or str(options.get("format", "raw")))
    if fmt and fmt != dst_fmt:
        log(f"format '{fmt}' is not supported by the target storage - using '{dst_fmt}' instead")
    size = int(image["virtual-size"])
    volid = dst.alloc(vmid, None, -(-size // 1024), dst_fmt if options["type"] == "dir" else None)
    try:
        argv = ["qemu-img", "convert", "-p", "-n", "-f", str(image["format"]), "-O", dst_fmt, str(path),
                str(dst.path(parse_volume_id(volid)[1]))]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise GuestError(f"copy failed: command '{' '.join(argv)}' failed: exit code {done.returncode}")
        key, shown = attach_imported(node, vmid, volid, size, target_disk)
    except Exception:
        with contextlib.suppress(storage_config.StorageError):
            dst.free(parse_volume_id(volid)[1])
        raise
    log(f"{key}: successfully imported disk '{shown}'")


def attach_imported(node: str, vmid: int, volid: str, size: int, target_disk: str | None) -> tuple[str, str]:
    """The imported volume into the config: as unusedN, or as `target_disk` (pending while the VM runs);
    the key and the value written."""
    with store.locked(vmid):
        conf = store.load(node, vmid)
        store.check_lock(conf)
        if not target_disk:
            key = add_unused(conf.main.options, volid)
            store.save(node, vmid, conf)
            return key, volid
        if target_disk in conf.main.options:
            raise GuestError(f"cowardly refusing to overwrite existing entry: {target_disk}")
        drive = f"{volid},size={store.size_text(size)}"
        if runtime.pid_of(vmid) is not None:  # waits for the next start, as a disk PVE cannot hotplug
            conf.pending = conf.pending or Section()
            conf.pending.options[target_disk] = drive
        else:
            conf.main.options[target_disk] = drive
        store.save(node, vmid, conf)
        return target_disk, drive


# -- API ---------------------------------------------------------------------------------------------
@route("POST /nodes/{node}/qemu/{vmid}/template")
def vm_template(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: check_template(store.load(ctx.node, vmid), vmid, params.get("disk")))
    return worker(ctx, "qmtemplate", vmid, lambda log: template(ctx.node, vmid, params.get("disk")))


@route("POST /nodes/{node}/qemu/{vmid}/clone")
def vm_clone(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, newid = int(params["vmid"]), int(params["newid"])
    if params.get("target") in (ctx.node, "localhost"):
        params = {k: v for k, v in params.items() if k != "target"}
    guest_call(lambda: plan_clone(ctx.node, vmid, newid, params, ctx.caller.name))  # early checks
    return worker(ctx, "qmclone", vmid, lambda log: clone(ctx.node, vmid, newid, params, ctx.caller.name, log))


@route("GET /nodes/{node}/qemu/{vmid}/feature")
def vm_feature(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, snapname, feature = int(params["vmid"]), params.get("snapname"), params["feature"]
    conf = guest_call(lambda: store.load(ctx.node, vmid))
    options = guest_call(lambda: store.options_at(conf, snapname))
    has, nodes = True, set(members.node_info(ctx.node))
    for drive in disk_drives(options).values():  # QemuConfig->has_feature: every disk (not a CD-ROM,
        if store.is_cloudinit(drive):             # nor a cloud-init drive) must have it
            continue
        storage, volname = guest_call(lambda d=drive: volume_backend(d["file"]))  # type: ignore[misc]
        has = has and storage.has_feature(feature, volname, snapname)
        if not storage_config.is_shared(storage.options):  # shared_nodes: where every disk is
            nodes &= {ctx.node}
        nodes &= {n for n in nodes if storage_config.available_on(storage.options, n)}
    return {"hasFeature": int(has), "nodes": sorted(nodes)}  # 0 or 1, as has_feature returns


@route("POST /nodes/{node}/qemu/{vmid}/move_disk")
def vm_move_disk(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    if params.get("target-vmid") is not None and params.get("storage"):
        msg = "either set 'storage' or 'target-vmid', but not both"
        raise ApiException(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
    if params.get("target-vmid") is not None:
        target_vmid = int(params["target-vmid"])
        if ctx.caller.name != "root@pam":
            access.require_vm(ctx.caller.name, target_vmid, ["VM.Config.Disk"])
        if target_vmid == vmid:
            raise ApiException(400, "Parameter verification failed.",
                               {"target-vmid": "must be different than source VMID to reassign disk"})
        target_disk = params.get("target-disk") or params["disk"]
        _, _, drive = guest_call(lambda: check_reassign(ctx.node, vmid, target_vmid, params["disk"], target_disk,
                                                        (params.get("digest"), params.get("target-digest"))))
        access.require(ctx.caller.name, f"/storage/{parse_volume_id(drive['file'])[0]}", ["Datastore.AllocateSpace"])
        return worker(ctx, "qmmove", f"{vmid}-{params['disk']}>{target_vmid}-{target_disk}",
                      lambda log: reassign_disk(ctx.node, vmid, params, log))
    if not params.get("storage"):
        msg = "both 'storage' and 'target-vmid' missing, either needs to be set"
        raise ApiException(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
    access.require(ctx.caller.name, f"/storage/{params['storage']}", ["Datastore.AllocateSpace"])
    guest_call(lambda: check_move(store.load(ctx.node, vmid), params["disk"], params["storage"], params.get("format"),
                                  params))
    return worker(ctx, "qmmove", vmid, lambda log: move_disk(ctx.node, vmid, params, log))
