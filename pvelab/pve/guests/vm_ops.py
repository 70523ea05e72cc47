"""What qm's API handlers do that other guest code needs too (a restore allocates disks, a stop-mode
backup starts the VM again): new disks and NICs as qemu-server makes them, and a VM's start with its
pending changes applied."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.access.perms import ROOT
from pvelab.pve.guests import runtime, store
from pvelab.pve.guests.config import VOLUME_KEY, VmConfig, parse_pending_delete
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.api import volume_kind
from pvelab.pve.storage.volumes import backend, parse_volume_id, volume_backend

MAX_UNUSED_DISKS = 256
NEW_DISK = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)$", re.IGNORECASE)
NEW_CLOUDINIT = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):cloudinit$", re.IGNORECASE)
CLOUDINIT_KIB = 4 * 1024


def storage_of(sid: str, node: str) -> dict[str, Any]:
    options = storage_config.get(sid)  # "storage 'x' does not exist"
    if not storage_config.available_on(options, node):
        raise GuestError(f"storage '{sid}' is not available on node '{node}'")
    return options


def allocate(vmid: int, options: dict[str, str], node: str, log: Callable[[str], None]) -> dict[str, str]:
    """New disks (`STORAGE:SIZE_GiB`), cloud-init drives and MAC addresses, as qemu-server makes them."""
    out = dict(options)
    for key, value in options.items():
        if store.DRIVE_KEY.match(key):
            drive = store.parse_drive(value)
            file = drive.get("file", "")
            if NEW_DISK.match(file):
                sid, size = NEW_DISK.match(file).groups()  # type: ignore[union-attr]
                kib = int(float(size) * 1024 * 1024)
                volid = backend(sid, storage_of(sid, node)).alloc(vmid, None, kib, drive.get("format"))
                drive.update(file=volid, size=store.size_text(kib * 1024))
                drive.pop("format", None)
                log(f"{key}: successfully created disk '{volid},size={drive['size']}'")
            elif NEW_CLOUDINIT.match(file):
                sid = NEW_CLOUDINIT.match(file).group(1)  # type: ignore[union-attr]
                opts = storage_of(sid, node)
                name = f"vm-{vmid}-cloudinit" + (".qcow2" if opts["type"] == "dir" else "")
                volid = backend(sid, opts).alloc(vmid, name, CLOUDINIT_KIB, None)
                drive.update(file=volid, media="cdrom")
                log(f"{key}: successfully created disk '{volid},media=cdrom'")
            elif store.is_cdrom(drive) and ":" in file:
                sid, volname = parse_volume_id(file)
                path = backend(sid, storage_of(sid, node)).path(volname)
                drive.setdefault("size", store.size_text(path.stat().st_size) if path.exists() else "0")
            out[key] = store.print_drive(drive)
        elif key.startswith("net") and key[3:].isdigit():
            net = store.parse_net(value)
            net.setdefault("macaddr", store.random_mac())
            out[key] = store.print_net(net)
    return out


def start_vm(node: str, vmid: int, log: Callable[[str], None], incoming: str | None = None,
             skiplock: bool = False, config_node: str | None = None, paused: bool = False) -> None:
    """Start the VM; an incoming migration reads the config where it still is (the source node)."""
    runtime.check_quorum()
    with store.locked(vmid):
        conf = store.load(config_node or node, vmid)
        if conf.main.options.get("template") == "1":
            raise GuestError("you can't start a vm if it's a template")
        if not skiplock:
            store.check_lock(conf)
        if conf.pending is not None and runtime.pid_of(vmid) is None and not incoming:
            apply_pending(node, vmid, conf)
        runtime.start(vmid, node, conf, log, incoming=incoming, config_node=config_node, paused=paused)


def add_unused(options: dict[str, str], volid: str) -> str:
    """PVE's add_unused_volume: the lowest free unusedN, never twice (a cloud-init drive is freed instead);
    the key that holds the volume."""
    key = None
    for index in reversed(range(MAX_UNUSED_DISKS)):
        if options.get(f"unused{index}") == volid:
            return f"unused{index}"
        if f"unused{index}" not in options:
            key = f"unused{index}"
    if key is None:
        raise GuestError("Too many unused volumes - please delete them first.")
    options[key] = volid
    return key


def free_volume(volid: str, log: Callable[[str], None]) -> None:
    try:
        storage, volname = volume_backend(volid)
        storage.free(volname)
        log(f"Removed volume '{volid}'")
    except storage_config.StorageError:
        pass  # already gone: destroy goes on, as PVE does


def in_use_by_snapshots(conf: VmConfig, volid: str) -> bool:
    """is_volume_in_use_by_snapshots: a snapshot's drive (a VM's) or mount point (a CT's) names the volume."""
    return any(store.parse_drive(value).get("file") == volid for snap in conf.snapshots.values()
               for key, value in snap.options.items() if VOLUME_KEY.match(key))


def deallocate(conf: VmConfig, vmid: int, key: str, force: bool, caller: str, log: Callable[[str], None]) -> bool:
    """qemu-server's try_deallocate_drive: a volume of this VM's own freed (another's is only dropped
    from the config), unless a snapshot still holds it; CD-ROMs are never freed."""
    drive = store.parse_drive(conf.main.options[key])
    if not (force or key.startswith("unused")) or store.is_cdrom(drive):
        return False
    volid = drive.get("file", "")
    sid, volname = parse_volume_id(volid)
    if volume_kind(volname)[0] == vmid:
        access.require(caller, f"/storage/{sid}", ["Datastore.AllocateSpace"])
        if in_use_by_snapshots(conf, volid):
            raise GuestError(f"unable to delete '{volid}' - volume is still in use (snapshot?)")
        storage, name = volume_backend(volid)
        storage.free(name)
        log(f"Removed volume '{volid}'")
    return True


def delete_or_detach_drive(conf: VmConfig, vmid: int, key: str, force: bool, caller: str,
                           log: Callable[[str], None]) -> None:
    """A drive taken out of a stopped VM's config (qemu-server's vmconfig_delete_or_detach_drive): its
    volume freed with `force`, else kept as `unusedN` when it is the VM's own; a cloud-init drive freed."""
    if force:
        deallocate(conf, vmid, key, force, caller, log)
        return
    drive = store.parse_drive(conf.main.options[key])
    volid = drive.get("file", "")
    if store.is_cloudinit(drive):
        free_volume(volid, log)
    elif not store.is_cdrom(drive) and ":" in volid and volume_kind(parse_volume_id(volid)[1])[0] == vmid:
        add_unused(conf.main.options, volid)


def apply_pending(node: str, vmid: int, conf: VmConfig) -> None:
    """A stopped VM starts with its pending changes applied (qemu-server's vmconfig_apply_pending)."""
    assert conf.pending is not None
    for key, how in parse_pending_delete(conf.pending.options.pop("delete", None)).items():
        if store.DRIVE_KEY.match(key) and key in conf.main.options:  # kept as unusedN, or freed if forced
            delete_or_detach_drive(conf, vmid, key, bool(how["force"]), ROOT, lambda _line: None)
        conf.main.options.pop(key, None)
    conf.main.options.update(conf.pending.options)
    if conf.pending.description is not None:
        conf.main.description = conf.pending.description
    conf.pending = None
    store.save(node, vmid, conf)
