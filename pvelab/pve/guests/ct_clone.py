"""Container templates and clones as pve-container makes them: `pct template` (POST .../lxc/{vmid}/template),
`pct clone` (POST .../lxc/{vmid}/clone) full or linked, from the CT or one of its snapshots, to this
node or (on shared storage) another, and GET .../lxc/{vmid}/feature.

A container's volumes are its rootfs and mount points. What a storage can do with them is its
feature table's answer (storage/volumes.py): on the emulated lvmthin a container root is a directory,
so a linked clone there is a copy of the base, as it is for VM disks (no device-mapper, documented);
on a `dir` storage a root is a `subvol` directory, which pve-storage templates in place (its name does
not change) and never links - a clone of it must be full, as on PVE."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.access import store as access_store
from pvelab.pve.api import tasks
from pvelab.pve.api.routes import Context, route
from pvelab.pve.guests import containers, snapshot, store
from pvelab.pve.guests.api import guest_call, worker
from pvelab.pve.guests.clone import check_target_storage, is_template, undo
from pvelab.pve.guests.config import Section, VmConfig
from pvelab.pve.guests.runtime import check_quorum
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.volumes import backend, parse_volume_id, volume_backend

Log = Callable[[str], None]
KIND = "lxc"
NOT_CLONED = ("snapshots", "parent", "snaptime", "snapstate", "template", "lock")


def mount_points(options: dict[str, str]) -> dict[str, dict[str, str]]:
    """rootfs and mpN, parsed, in pve-container's order."""
    return {key: store.parse_drive(options[key]) for key in snapshot.mount_keys(options)}


# -- template ---------------------------------------------------------------------------------------
def check_template(conf: VmConfig, vmid: int) -> None:
    store.check_lock(conf, KIND)
    if conf.snapshots:
        raise GuestError("unable to create template, because CT contains snapshots")
    if is_template(conf):
        raise GuestError("you can't convert a template to a template")
    if containers.running(vmid):
        raise GuestError("you can't convert a CT to template if the CT is running")


def template(node: str, vmid: int) -> None:
    """PVE::LXC::template_create: every volume must allow it, then each becomes a base; then `template: 1`."""
    with store.locked(vmid, KIND):
        conf = store.load(node, vmid, KIND)
        check_template(conf, vmid)
        mounts = mount_points(conf.main.options)
        for mount in mounts.values():
            volid = mount.get("file", "")
            if snapshot.volume_of(volid, KIND) is None:
                raise GuestError(f"Template feature is not available for '{volid}'")
            storage, volname = volume_backend(volid)
            if not storage.has_feature("template", volname):
                raise GuestError(f"Template feature is not available for '{volid}'")
        for key, mount in mounts.items():
            storage, volname = volume_backend(mount["file"])
            mount["file"] = f"{storage.id}:{storage.create_base(volname)}"
            conf.main.options[key] = store.print_drive(mount)
            store.save(node, vmid, conf, KIND)
        conf.main.options["template"] = "1"
        store.save(node, vmid, conf, KIND)


# -- clone ------------------------------------------------------------------------------------------
@dataclass
class ClonePlan:
    source: dict[str, str]
    new: dict[str, str]
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)
    full: bool = True
    running: bool = False


def check_destination(node: str, params: dict[str, Any]) -> None:
    """clone_vm's first checks: the pool, the target node, the target storage, quorum."""
    if params.get("pool") and params["pool"] not in access_store.read().pools:
        raise GuestError(f"pool '{params['pool']}' does not exist")
    check_target_storage(node, params.get("storage"), params.get("target"), content="rootdir")
    check_quorum()


def plan_clone(node: str, vmid: int, params: dict[str, Any], caller: str) -> ClonePlan:
    """clone_vm's checks of the source (locked `disk` already), in pve-container's order."""
    target, storage, snapname = params.get("target"), params.get("storage"), params.get("snapname")
    conf = store.load(node, vmid, KIND)
    running = containers.running(vmid)
    full = bool(params["full"]) if params.get("full") is not None else not is_template(conf)
    if storage and not full:
        raise GuestError("parameter 'storage' not allowed for linked clones")
    source = store.options_at(conf, snapname)
    plan = ClonePlan(source=source, new={}, full=full, running=running)
    shared = True
    for key, value in sorted(source.items()):
        if key.startswith("unused"):
            continue
        if snapshot.MOUNT_KEY.match(key):
            mount = store.parse_drive(value)
            volid = snapshot.volume_of(value, KIND)
            if volid is None:
                kind = "device" if mount.get("file", "").startswith("/dev/") else "bind"
                raise GuestError(f"unable to clone mountpoint '{key}' (type {kind})")
            sid = storage or parse_volume_id(volid)[0]
            if not storage_config.is_shared(storage_config.get(sid)):
                shared = False
            access.require(caller, f"/storage/{sid}", ["Datastore.AllocateSpace"])
            if full and running and not snapname:
                raise GuestError("Full clone of a running container is only possible from a snapshot")
            if not full:
                src, volname = volume_backend(volid)
                if not src.has_feature("clone", volname, snapname):
                    raise GuestError(f"Linked clone feature for '{volid}' is not available")
            plan.mounts[key] = mount
        elif key.startswith("net") and key[3:].isdigit():
            net = store.parse_props(value)
            net["hwaddr"] = store.random_mac()  # always a new MAC
            plan.new[key] = store.print_props(net)
        elif key not in NOT_CLONED:
            plan.new[key] = value
    if target and not shared:
        raise GuestError(f"can't clone CT to node '{target}' (CT uses local storage)")
    if params.get("hostname"):
        plan.new["hostname"] = params["hostname"]
    return plan


def copy_volume(mount: dict[str, str], newid: int, storage: str, snapname: str | None) -> str:
    """PVE::LXC::copy_volume: a new volume of the source's size on `storage`, the tree copied into it
    (from the snapshot when one is named) with owners, modes and links kept."""
    src, volname = volume_backend(mount["file"])
    size = store.size_bytes(mount["size"], "G") if mount.get("size") else src.size(volname)
    new_volid = backend(storage, storage_config.get(storage)).alloc_rootdir(newid, size // 1024)
    source = src.snapshot_source(volname, snapname)[0] if snapname else str(containers.volume_path(mount["file"]))
    copied = subprocess.run(["cp", "-a", "--sparse=always", f"{source}/.", str(containers.volume_path(new_volid))],
                            capture_output=True, text=True, check=False)
    if copied.returncode != 0:
        new_backend, new_name = volume_backend(new_volid)
        new_backend.free(new_name)
        raise GuestError(f"copying the volume failed: {copied.stderr.strip()}")
    return new_volid


def clone(node: str, vmid: int, newid: int, params: dict[str, Any], plan: ClonePlan, log: Log) -> None:
    """The worker: each volume copied or linked, the config written after each; on failure what was
    made is freed and the new config removed ("clone failed: ...")."""
    snapname, storage = params.get("snapname"), params.get("storage")
    log(f"creating a clone of container {vmid} with ID {newid}")
    made: list[str] = []
    try:
        if containers.running(vmid) != plan.running:
            raise GuestError("unexpected state change")
        for key, mount in plan.mounts.items():
            volid = mount["file"]
            if plan.full:
                log(f"create full clone of mountpoint {key} ({volid})")
                new_volid = copy_volume(mount, newid, storage or parse_volume_id(volid)[0], snapname)
            else:
                log(f"create linked clone of mount point {key} ({volid})")
                src, volname = volume_backend(volid)
                new_volid = f"{src.id}:{src.clone_image(volname, newid, snapname)}"
            made.append(new_volid)
            new_mount = {**mount, "file": new_volid}
            with store.locked(newid, KIND):
                conf = store.load(node, newid, KIND)
                conf.main.options[key] = store.print_drive(new_mount)
                store.save(node, newid, conf, KIND)
        if params.get("pool"):
            access_store.add_vm_to_pool(newid, params["pool"])
    except Exception as exc:
        store.set_lock(node, vmid, None, KIND)
        undo(vmid, [], made, log)
        store.config_path(node, newid, KIND).unlink(missing_ok=True)
        raise GuestError(f"clone failed: {exc}") from exc
    store.set_lock(node, vmid, None, KIND)
    with store.locked(newid, KIND):
        conf = store.load(node, newid, KIND)
        conf.main.options.pop("lock", None)
        store.save(node, newid, conf, KIND)
        target = params.get("target")
        if target and target != node:
            store.config_path(node, newid, KIND).rename(store.config_path(target, newid, KIND))


def begin_clone(node: str, vmid: int, newid: int, params: dict[str, Any], caller: str) -> ClonePlan:
    """Before the worker, as pve-container: the source locked `disk`, the new VMID claimed (`create`),
    the plan made and the new config written; any refusal undoes both locks."""
    check_destination(node, params)
    store.set_lock(node, vmid, "disk", KIND)
    try:
        store.reserve(node, newid, KIND, "", lambda: None)
    except GuestError:
        store.set_lock(node, vmid, None, KIND)
        raise
    try:
        plan = plan_clone(node, vmid, params, caller)
        description = params.get("description") or store.load(node, vmid, KIND).main.description
        new = VmConfig(main=Section(options={**plan.new, "lock": "create"}, description=description))
        with store.locked(newid, KIND):
            store.save(node, newid, new, KIND)
    except Exception:
        store.set_lock(node, vmid, None, KIND)
        store.config_path(node, newid, KIND).unlink(missing_ok=True)
        raise
    return plan


# -- API ---------------------------------------------------------------------------------------------
@route("POST /nodes/{node}/lxc/{vmid}/template")
def ct_template(ctx: Context, params: dict[str, Any]) -> Any:
    """PVE answers null and converts in a worker (vztemplate); here the call returns once it is done,
    so a caller that reads the config next finds the template."""
    vmid = int(params["vmid"])
    guest_call(lambda: check_template(store.load(ctx.node, vmid, KIND), vmid))
    tasks.wait(worker(ctx, "vztemplate", vmid, lambda log: template(ctx.node, vmid)))
    return None


@route("POST /nodes/{node}/lxc/{vmid}/clone")
def ct_clone(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, newid = int(params["vmid"]), int(params["newid"])
    if params.get("target") in (ctx.node, "localhost"):
        params = {k: v for k, v in params.items() if k != "target"}
    guest_call(lambda: store.load(ctx.node, vmid, KIND))
    plan = guest_call(lambda: begin_clone(ctx.node, vmid, newid, params, ctx.caller.name))
    return worker(ctx, "vzclone", vmid, lambda log: clone(ctx.node, vmid, newid, params, plan, log))


@route("GET /nodes/{node}/lxc/{vmid}/feature")
def ct_feature(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, snapname, feature = int(params["vmid"]), params.get("snapname"), params["feature"]
    conf = guest_call(lambda: store.load(ctx.node, vmid, KIND))
    options = guest_call(lambda: store.options_at(conf, snapname))
    has = True
    for mount in mount_points(options).values():  # LXC::Config->has_feature: every mount point must have it
        volid = snapshot.volume_of(mount.get("file", ""), KIND)
        if volid is None:
            has = False
            continue
        storage, volname = guest_call(lambda v=volid: volume_backend(v))  # type: ignore[misc]
        has = has and storage.has_feature(feature, volname, snapname)
    return {"hasFeature": int(has)}  # 0 or 1, as has_feature returns
