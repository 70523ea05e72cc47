"""Guests' disks changed in place: `qm resize` / `qm disk resize` and PUT /nodes/{node}/qemu/{vmid}/resize,
as qemu-server's resize_vm does it (a task; only growing; a running VM's QEMU grows the volume itself
through block_resize, so the guest sees the new size at once); `pct resize` and PUT .../lxc/{vmid}/resize,
as pve-container's (a mount point's volume grown; on the emulated lvmthin a container's root is a
directory whose recorded size grows - there is no filesystem to grow, see storage/volumes.py)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import containers, qmp, runtime, store
from pvelab.pve.guests.api import guest_call, worker
from pvelab.pve.guests.config import VmConfig
from pvelab.pve.guests.ct_clone import copy_volume
from pvelab.pve.guests.store import GuestError
from pvelab.pve.guests.vm_ops import add_unused, in_use_by_snapshots
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.api import volume_kind
from pvelab.pve.storage.config import StorageError
from pvelab.pve.storage.volumes import parse_volume_id, volume_backend

Log = Callable[[str], None]
SIZE = re.compile(r"^(\+)?(\d+(?:\.\d+)?)([KMGT])?$")
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def new_size(text: str, current: int) -> int:
    """qemu-server's reading of `size`: bytes, or K/M/G/T; a leading + adds to the current size."""
    found = SIZE.match(text)
    if not found:  # the schema's pattern lets none through; qemu-server says the same if one did
        raise GuestError("internal error")
    grown = int(float(found.group(2)) * UNITS[found.group(3) or ""])
    return current + grown if found.group(1) else grown


def resize(node: str, vmid: int, disk: str, size_text: str, digest: str | None, skiplock: bool, caller: str,
           log: Log) -> None:
    with store.locked(vmid):
        conf: VmConfig = store.load(node, vmid)
        if digest and digest != conf.digest:
            raise GuestError("checksum mismatch (file change by other user?)")
        if not skiplock:
            store.check_lock(conf)
        if disk not in conf.main.options:
            raise GuestError(f"disk '{disk}' does not exist")
        drive = store.parse_drive(conf.main.options[disk])
        volid = drive.get("file", "")
        if not volid:
            raise GuestError(f"disk '{disk}' has no associated volume")
        if store.is_cdrom(drive):
            raise GuestError("you can't resize a cdrom")
        storage, volname = volume_backend(volid)
        access.require(caller, f"/storage/{storage.id}", ["Datastore.AllocateSpace"])
        current = storage.size(volname)
        wanted = new_size(size_text, current)
        if wanted < current:
            raise GuestError("shrinking disks is not supported")
        if wanted == current:
            return
        if runtime.pid_of(vmid) is not None:  # QEMU grows the image it holds, and tells the guest
            qmp.command(vmid, "block_resize", **qmp.block_node(vmid, disk), size=wanted, timeout=60)
        else:
            storage.resize(volname, wanted)
        drive["size"] = store.size_text(wanted)
        conf.main.options[disk] = store.print_drive(drive)
        store.save(node, vmid, conf)


@route("PUT /nodes/{node}/qemu/{vmid}/resize")
def vm_resize(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    if params.get("skiplock") and ctx.caller.name != "root@pam":
        raise ApiException(400, "Parameter verification failed.", {"skiplock": "Only root may use this option."})
    guest_call(lambda: store.load(ctx.node, vmid))
    return worker(ctx, "resize", vmid, lambda log: resize(
        ctx.node, vmid, params["disk"], str(params["size"]), params.get("digest"), bool(params.get("skiplock")),
        ctx.caller.name, log))


def resize_ct(node: str, vmid: int, disk: str, size_text: str, digest: str | None, caller: str) -> None:
    """pve-container's resize_vm: the mount point's volume grown and its size= written."""
    with store.locked(vmid, "lxc"):
        conf: VmConfig = store.load(node, vmid, "lxc")
        store.check_lock(conf, "lxc")
        if digest and digest != conf.digest:
            raise GuestError("detected modified configuration - file changed by other user? Try again.")
        if disk not in conf.main.options:  # parse_volume of an empty string: PVE's property check
            raise GuestError("volume: property is missing and it is not optional")
        mount = store.parse_drive(conf.main.options[disk])
        volid = mount.get("file", "")
        storage, volname = volume_backend(volid)
        owner = volume_kind(volname)[0]
        if owner is not None and owner != vmid:
            raise GuestError(f"can't resize mount point owned by another container ({owner})")
        access.require(caller, f"/storage/{storage.id}", ["Datastore.AllocateSpace"])
        current = storage.size(volname)
        wanted = int(new_size(size_text, current))
        if wanted < current:
            raise GuestError("unable to shrink disk size")
        if wanted == current:
            raise GuestError("disk is already at specified size")
        storage.resize(volname, wanted)
        mount["size"] = store.size_text(wanted)
        conf.main.options[disk] = store.print_drive(mount)
        store.save(node, vmid, conf, "lxc")


@route("PUT /nodes/{node}/lxc/{vmid}/resize")
def ct_resize(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: store.load(ctx.node, vmid, "lxc"))
    return worker(ctx, "resize", vmid, lambda log: resize_ct(
        ctx.node, vmid, params["disk"], str(params["size"]), params.get("digest"), ctx.caller.name))


def lock_ct_move(node: str, vmid: int, key: str, storage: str, delete: bool, digest: str | None) -> None:
    """move_volume's checks to another storage and its `disk` lock, taken before the task, as PVE does."""
    with store.locked(vmid, "lxc"):
        conf: VmConfig = store.load(node, vmid, "lxc")
        store.check_lock(conf, "lxc")
        if containers.running(vmid):
            raise GuestError("cannot move volumes of a running container")
        if re.fullmatch(r"unused\d+", key):
            raise GuestError(f"cannot move volume '{key}', only configured volumes can be moved to another storage")
        if key not in conf.main.options:
            raise GuestError("volume: property is missing and it is not optional")
        volid = store.parse_drive(conf.main.options[key])["file"]
        if delete and any(store.parse_drive(snap.options.get(key, "none")).get("file") == volid
                          for snap in conf.snapshots.values()):
            raise GuestError("you can't move a volume with snapshots and delete the source")
        if digest and digest != conf.digest:
            raise GuestError("detected modified configuration - file changed by other user? Try again.")
        if "rootdir" not in storage_config.content_of(storage_config.get(storage)):
            raise GuestError(f"storage '{storage}' does not support container directories")
        conf.main.options["lock"] = "disk"
        store.save(node, vmid, conf, "lxc")


def move_ct_volume(node: str, vmid: int, key: str, storage: str, delete: bool, log: Log) -> None:
    """pve-container's move_volume to another storage (the CT locked `disk` already): its volume copied
    into a new one there, the config pointed at it, the old one kept as unusedN or removed."""
    mount = store.parse_drive(store.load(node, vmid, "lxc").main.options[key])
    old_volid = mount["file"]
    new_volid = None
    try:
        new_volid = copy_volume(mount, vmid, storage, None)
        with store.locked(vmid, "lxc"):
            conf = store.load(node, vmid, "lxc")
            mount["file"] = new_volid
            conf.main.options[key] = store.print_drive(mount)
            if not delete:
                add_unused(conf.main.options, old_volid)
            conf.main.options.pop("lock", None)
            store.save(node, vmid, conf, "lxc")
    except Exception:
        if new_volid:
            with contextlib.suppress(StorageError):
                volume_backend(new_volid)[0].free(parse_volume_id(new_volid)[1])
        store.set_lock(node, vmid, None, "lxc")
        raise
    if delete:
        try:
            old_backend, volname = volume_backend(old_volid)
            old_backend.free(volname)
        except StorageError as exc:
            log(f"{exc}")


def check_ct_reassign(node: str, vmid: int, target_vmid: int, key: str, target_key: str, digests: tuple[Any, Any]
                      ) -> tuple[VmConfig, VmConfig, dict[str, str]]:
    """pve-container's load_and_check_reassign_configs (the target may be the CT itself: a key renamed)."""
    if "rootfs" in (key, target_key):
        raise GuestError("Cannot move to/from 'rootfs'")
    if key.startswith("unused") and not target_key.startswith("unused"):
        raise GuestError("Moving an unused volume to a used one is not possible")
    found, target = store.owner(vmid), store.owner(target_vmid)
    if found is None:
        raise GuestError(f"could not find CT {vmid}")
    if target is None:
        raise GuestError(f"could not find CT {target_vmid}")
    if found["node"] != target["node"]:
        raise GuestError(f"Both containers need to be on the same node ({found['node']} != {target['node']})")
    source_conf = store.load(node, vmid, "lxc")
    store.check_lock(source_conf, "lxc")
    target_conf = source_conf if target_vmid == vmid else store.load(node, target_vmid, "lxc")
    store.check_lock(target_conf, "lxc")
    if "1" in (source_conf.main.options.get("template"), target_conf.main.options.get("template")):
        raise GuestError("Can't move volumes from or to template CT")
    for which, conf, digest in ((vmid, source_conf, digests[0]), (target_vmid, target_conf, digests[1])):
        if digest and digest != conf.digest:
            raise GuestError(f"Container {which}: detected modified configuration - file changed by other user? "
                             "Try again.")
    if key not in source_conf.main.options:
        raise GuestError(f"volume '{key}' for container '{vmid}' does not exist")
    if target_key in target_conf.main.options:
        raise GuestError(f"Target volume key '{target_key}' is already in use for container '{target_vmid}'")
    mount = store.parse_drive(source_conf.main.options[key])
    volid = mount.get("file", "")
    if not volid:
        raise GuestError(f"Volume '{key}' has no associated image")
    if in_use_by_snapshots(source_conf, volid):
        raise GuestError("Cannot move volume used by a snapshot to another container")
    if volid.startswith("/"):
        raise GuestError("Cannot move a bindmount or device mount to another container")
    storage, volname = volume_backend(volid)
    if not storage.has_feature("rename", volname):
        raise GuestError("Storage does not support moving of this disk to another container")
    if containers.running(vmid) and not key.startswith("unused"):
        raise GuestError("Cannot move in-use volume while the source CT is running - detach or shutdown first")
    return source_conf, target_conf, mount


def reassign_ct_volume(node: str, vmid: int, target_vmid: int, key: str, target_key: str, digests: tuple[Any, Any],
                       log: Log) -> None:
    with store.locked(vmid, "lxc"), contextlib.ExitStack() as both:
        if target_vmid != vmid:
            both.enter_context(store.locked(target_vmid, "lxc"))
        source_conf, target_conf, mount = check_ct_reassign(node, vmid, target_vmid, key, target_key, digests)
        log(f"moving volume '{key}' from container '{vmid}' to '{target_vmid}'")
        storage, volname = volume_backend(mount["file"])
        new_volid = f"{storage.id}:{storage.rename_volume(volname, target_vmid)}"
        del source_conf.main.options[key]
        log(f"removing volume '{key}' from container '{vmid}' config")
        store.save(node, vmid, source_conf, "lxc")
        if target_vmid == vmid:
            target_conf = source_conf
        target_conf.main.options[target_key] = new_volid if target_key.startswith("unused") \
            else store.print_drive({**mount, "file": new_volid})
        store.save(node, target_vmid, target_conf, "lxc")
        log(f"target container '{target_vmid}' updated with '{target_key}'")


@route("POST /nodes/{node}/lxc/{vmid}/move_volume")
def ct_move_volume(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, key, storage = int(params["vmid"]), params["volume"], params.get("storage")
    if params.get("target-vmid") is not None and storage:
        msg = "either set 'storage' or 'target-vmid', but not both"
        raise ApiException(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
    if params.get("target-vmid") is not None:
        target_vmid, target_key = int(params["target-vmid"]), params.get("target-volume") or key
        if ctx.caller.name != "root@pam":
            access.require_vm(ctx.caller.name, target_vmid, ["VM.Config.Disk"])
        digests = (params.get("digest"), params.get("target-digest"))
        _, _, mount = guest_call(lambda: check_ct_reassign(ctx.node, vmid, target_vmid, key, target_key, digests))
        access.require(ctx.caller.name, f"/storage/{parse_volume_id(mount['file'])[0]}", ["Datastore.AllocateSpace"])
        return worker(ctx, "move_volume", f"{vmid}-{key}>{target_vmid}-{target_key}", lambda log: reassign_ct_volume(
            ctx.node, vmid, target_vmid, key, target_key, digests, log))
    if not storage:
        msg = "both 'storage' and 'target-vmid' missing, either needs to be set"
        raise ApiException(400, "Parameter verification failed.", {"target-vmid": msg, "storage": msg})
    access.require(ctx.caller.name, f"/storage/{storage}", ["Datastore.AllocateSpace"])
    delete = bool(params.get("delete"))
    guest_call(lambda: lock_ct_move(ctx.node, vmid, key, storage, delete, params.get("digest")))
    return worker(ctx, "move_volume", vmid, lambda log: move_ct_volume(ctx.node, vmid, key, storage, delete, log))
