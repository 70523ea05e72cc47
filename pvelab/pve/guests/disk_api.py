"""Guests' disks changed in place: `qm resize` / `qm disk resize` and PUT /nodes/{node}/qemu/{vmid}/resize,
as qemu-server's resize_vm does it (a task; only growing; a running VM's QEMU grows the volume itself
through block_resize, so the guest sees the new size at once); `pct resize` and PUT .../lxc/{vmid}/resize,
as pve-container's (a mount point's volume grown; on the emulated lvmthin a container's root is a
directory whose recorded size grows - there is no filesystem to grow, see storage/volumes.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import qmp, runtime, store
from pvelab.pve.guests.api import guest_call, worker
from pvelab.pve.guests.config import VmConfig
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage.volumes import volume_backend

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
        backend, volname = volume_backend(volid)
        access.require(caller, f"/storage/{backend.id}", ["Datastore.AllocateSpace"])
        current = backend.size(volname)
        wanted = new_size(size_text, current)
        if wanted < current:
            raise GuestError("shrinking disks is not supported")
        if wanted == current:
            return
        if runtime.pid_of(vmid) is not None:  # QEMU grows the image it holds, and tells the guest
            qmp.command(vmid, "block_resize", device=f"drive-{disk}", size=wanted, timeout=60)
        else:
            backend.resize(volname, wanted)
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
        backend, volname = volume_backend(volid)
        owner = re.search(r"(?:vm|base|subvol)-(\d+)-", volname)
        if owner and int(owner.group(1)) != vmid:
            raise GuestError(f"can't resize mount point owned by another container ({owner.group(1)})")
        access.require(caller, f"/storage/{backend.id}", ["Datastore.AllocateSpace"])
        current = backend.size(volname)
        wanted = int(new_size(size_text, current))
        if wanted < current:
            raise GuestError("unable to shrink disk size")
        if wanted == current:
            raise GuestError("disk is already at specified size")
        backend.resize(volname, wanted)
        mount["size"] = store.size_text(wanted)
        conf.main.options[disk] = store.print_drive(mount)
        store.save(node, vmid, conf, "lxc")


@route("PUT /nodes/{node}/lxc/{vmid}/resize")
def ct_resize(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: store.load(ctx.node, vmid, "lxc"))
    return worker(ctx, "resize", vmid, lambda log: resize_ct(
        ctx.node, vmid, params["disk"], str(params["size"]), params.get("digest"), ctx.caller.name))
