"""The VM API: /nodes/{node}/qemu[...] as qemu-server serves it (create, config, status, start and
stop, destroy, migrate). `qm` calls these same handlers in-process."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.pve import version
from pvelab.pve.access import guard as access
from pvelab.pve.access import store as access_store
from pvelab.pve.api import schema, tasks
from pvelab.pve.api.routes import ApiException, Context, refusing, route
from pvelab.pve.guests import backup, ct_backup, ha_hooks, migrate, qmp, runtime, store, vma
from pvelab.pve.guests.config import (
    NOT_OPTIONS,
    Section,
    VmConfig,
    add_to_pending_delete,
    parse_pending_delete,
    remove_from_pending_delete,
)
from pvelab.pve.guests.store import GuestError
from pvelab.pve.guests.vm_ops import (
    NEW_CLOUDINIT,
    NEW_DISK,
    allocate,
    deallocate,
    delete_or_detach_drive,
    free_volume,
    start_vm,
    storage_of,
)
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.api import check_volume_access, volume_kind
from pvelab.pve.storage.volumes import backend, parse_volume_id, volume_backend

# API parameters of create/config that are not config options.
NOT_CONFIG = ("node", "vmid", "digest", "delete", "revert", "skiplock", "force", "start", "storage", "unique",
              "pool", "archive", "bwlimit", "live-restore", "background_delay")
# Options qemu-server changes on a running VM at once; the rest wait in [PENDING] for a restart.
FAST_PLUG = ("name", "description", "onboot", "startup", "tags", "protection", "lock", "vmstatestorage",
             "hookscript", "shares", "boot", "tablet")
guest_call = refusing  # GuestError, StorageError and no quorum, as PVE answers them


def worker(ctx: Context, kind: str, vmid: int | str, work: Callable[[Callable[[str], None]], None]) -> str:
    """A task of the guest's (its ID the VMID, or another of PVE's, as `100-scsi1>101-scsi1` for a reassign)."""
    def guarded(log: Callable[[str], None]) -> None:
        guest_call(lambda: work(log))

    return tasks.start(ctx.node, kind, str(vmid), ctx.caller.name, guarded)


def typed_options(options: dict[str, str], method: str = "GET",
                  template: str = "/nodes/{node}/qemu/{vmid}/config") -> dict[str, Any]:
    """Config values with the types the endpoint's `returns` schema gives them (ints, numbers)."""
    returns = schema.endpoints(version.major())[f"{method} {template}"].info.get("returns", {})
    properties = returns.get("properties") or {}
    out: dict[str, Any] = {}
    for key, value in options.items():
        prop = properties.get(key) or properties.get(re.sub(r"\d+$", "[n]", key)) or {}
        kind = prop.get("type")
        try:
            out[key] = int(value) if kind in ("integer", "boolean") else float(value) if kind == "number" else value
        except ValueError:
            out[key] = value
    return out


def config_options(params: dict[str, Any]) -> dict[str, str]:
    return {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in params.items()
            if k not in NOT_CONFIG and v is not None}


# -- new disks, NICs and defaults (what qemu-server fills in) ---------------------------------------
def check_new_values(options: dict[str, str], node: str) -> None:
    """Refusals before anything is written: unknown storages, content the storage does not hold."""
    for key, value in options.items():
        if not store.DRIVE_KEY.match(key):
            continue
        drive = store.parse_drive(value)
        file = drive.get("file", "none")
        if file in ("none", "cdrom") or ":" not in file:
            continue
        sid = file.split(":", 1)[0]
        storage = storage_of(sid, node)
        content = "iso" if store.is_cdrom(drive) and not NEW_CLOUDINIT.match(file) else "images"
        if content not in storage_config.content_of(storage):
            raise GuestError(f"storage '{sid}' does not support content-type '{content}'", param=key, status=400)
        if not NEW_DISK.match(file) and not NEW_CLOUDINIT.match(file):
            volname = parse_volume_id(file)[1]
            if not backend(sid, storage).exists(volname):
                raise GuestError(f"volume '{file}' does not exist", param=key, status=400)


def default_boot(options: dict[str, str]) -> str:
    """qemu-server's default boot order: the first disk, the CD-ROMs, the NICs."""
    drives = store.drives(options)
    disks = sorted((k for k, d in drives.items() if not store.is_cdrom(d)), key=lambda k: (k[:3], k))
    cdroms = sorted(k for k, d in drives.items() if store.is_cdrom(d) and not store.is_cloudinit(d))
    nets = sorted(k for k in options if k.startswith("net") and k[3:].isdigit())
    return "order=" + ";".join([*disks[:1], *cdroms, *nets])


# -- /nodes/{node}/qemu -----------------------------------------------------------------------------
@route("GET /nodes/{node}/qemu")
def vm_index(ctx: Context, params: dict[str, Any]) -> Any:
    out = []
    may = access.checker_for(ctx.caller.name)
    for vmid, conf in store.guests_on(ctx.node).items():
        if not may(f"/vms/{vmid}", ["VM.Audit"]):  # only VMs the caller may see (pool rights count)
            continue
        current = runtime.status(vmid, conf)
        current.pop("ha", None)
        out.append(current)
    return out


@route("POST /nodes/{node}/qemu")
def vm_create(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    if params.get("archive"):
        return restore_vm(ctx, params)
    access.require_guest_create(ctx.caller.name, vmid, params.get("pool"))
    options = config_options(params)
    for drive in store.drives(options).values():  # new disks need room on their storage, as PVE checks
        new_disk = NEW_DISK.match(drive.get("file", "")) or NEW_CLOUDINIT.match(drive.get("file", ""))
        if new_disk:
            access.require(ctx.caller.name, f"/storage/{new_disk.group(1)}", ["Datastore.AllocateSpace"])

    def check() -> None:
        if store.config_path(ctx.node, vmid).exists():
            raise GuestError(f"unable to create VM {vmid} - config file already exists")
        check_new_values(options, ctx.node)

    guest_call(runtime.check_quorum)
    guest_call(lambda: store.reserve(ctx.node, vmid, "qemu", f"unable to create VM {vmid} - ", check))

    def work(log: Callable[[str], None]) -> None:
        try:
            made = allocate(vmid, options, ctx.node, log)
            made.setdefault("smbios1", f"uuid={uuid.uuid4()}")
            made.setdefault("vmgenid", str(uuid.uuid4()))
            made.setdefault("meta", f"creation-qemu={runtime.installed_qemu() or '0.0.0'},ctime={int(time.time())}")
            if "boot" not in made and "bootdisk" not in made:
                made["boot"] = default_boot(made)
            description = made.pop("description", None)
            with store.locked(vmid):
                store.save(ctx.node, vmid, VmConfig(main=Section(options=made, description=description)))
        except Exception:
            store.config_path(ctx.node, vmid).unlink(missing_ok=True)
            raise
        if params.get("pool"):
            access_store.add_vm_to_pool(vmid, params["pool"])
        if params.get("start"):
            start_vm(ctx.node, vmid, log)

    return worker(ctx, "qmcreate", vmid, work)


@route("GET /nodes/{node}/qemu/{vmid}")
def vm_dir(ctx: Context, params: dict[str, Any]) -> Any:
    guest_call(lambda: store.load(ctx.node, int(params["vmid"])))
    return [{"subdir": d} for d in ("config", "pending", "status", "unlink", "vncproxy", "termproxy", "migrate",
                                    "resize", "move", "rrd", "rrddata", "monitor", "agent", "snapshot", "spiceproxy",
                                    "sendkey", "firewall", "mtunnel", "remote_migrate")]


@route("DELETE /nodes/{node}/qemu/{vmid}")
def vm_destroy(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])

    def check() -> bool:
        conf = store.load(ctx.node, vmid)
        if not params.get("skiplock"):
            store.check_lock(conf)
        if conf.main.options.get("protection") == "1":
            raise GuestError("can't remove VM - protection mode enabled")
        if runtime.pid_of(vmid) is not None:
            raise GuestError(f"VM {vmid} is running - destroy failed")
        if conf.main.options.get("template") == "1":  # a base image a linked clone reads stays
            for volid in owned_volumes(conf):  # unusedN too, as qemu-server's include_unused
                storage, volname = volume_backend(volid)
                if storage.base_in_use(volname):
                    raise GuestError(f"base volume '{volid}' is still in use by linked cloned")
        return ha_hooks.ha().check_destroy(f"vm:{vmid}", "VM", vmid, bool(params.get("purge")))

    in_ha = guest_call(check)

    def work(log: Callable[[str], None]) -> None:
        if in_ha:
            ha_hooks.ha().remove_resource(f"vm:{vmid}", "VM", vmid, log)
        with store.locked(vmid):
            conf = store.load(ctx.node, vmid)
            for volid in owned_volumes(conf):
                free_volume(volid, log)
            if params.get("destroy-unreferenced-disks", True):
                for sid, options in storage_config.read().items():
                    if not storage_config.available_on(options, ctx.node) or "images" not in \
                            storage_config.content_of(options):
                        continue
                    for volume in backend(sid, options).volumes():
                        if volume.get("vmid") == vmid and volume["content"] == "images":
                            free_volume(volume["volid"], log)
            store.config_path(ctx.node, vmid).unlink()
        if params.get("purge"):
            access_store.remove_vm_access(vmid)
            runtime.cleanup(vmid)

    return worker(ctx, "qmdestroy", vmid, work)


def owned_volumes(conf: VmConfig) -> list[str]:
    """The volumes a VM's config names as its own: disks, cloud-init drives, unusedN."""
    referenced = [d["file"] for d in store.drives(conf.main.options).values()
                  if ":" in d.get("file", "") and not store.is_cdrom(d) or store.is_cloudinit(d)]
    return referenced + [v for k, v in conf.main.options.items() if k.startswith("unused")]


# -- config ---------------------------------------------------------------------------------------
@route("GET /nodes/{node}/qemu/{vmid}/config")
def vm_config(ctx: Context, params: dict[str, Any]) -> Any:
    conf = guest_call(lambda: store.load(ctx.node, int(params["vmid"])))
    if params.get("snapshot"):  # a snapshot's config, with the file's digest (as qemu-server answers)
        snap = guest_call(lambda: store.snapshot_section(conf, params["snapshot"]))
        conf = VmConfig(main=snap, digest=conf.digest)
    options = dict(conf.main.options)
    description = conf.main.description
    if not params.get("current") and conf.pending is not None:
        options.update(conf.pending.options)
        for key in parse_pending_delete(conf.pending.options.get("delete")):
            options.pop(key, None)
        options.pop("delete", None)
        if conf.pending.description is not None:
            description = conf.pending.description
    out = typed_options({k: v for k, v in options.items() if k not in NOT_OPTIONS})
    if description:
        out["description"] = description
    out["digest"] = conf.digest
    return out


@route("GET /nodes/{node}/qemu/{vmid}/pending")
def vm_pending(ctx: Context, params: dict[str, Any]) -> Any:
    conf = guest_call(lambda: store.load(ctx.node, int(params["vmid"])))
    pending = conf.pending.options if conf.pending else {}
    deleted = parse_pending_delete(pending.get("delete"))  # 1 for a delete, 2 for a forced one, as PVE says
    out = []
    for key in sorted({*conf.main.options, *pending} - {"delete", *NOT_OPTIONS}):
        entry: dict[str, Any] = {"key": key}
        if key in conf.main.options:
            entry["value"] = conf.main.options[key]
        if key in pending:
            entry["pending"] = pending[key]
        if key in deleted:
            entry["delete"] = 2 if deleted[key]["force"] else 1
        out.append(entry)
    for key in deleted:
        if key not in conf.main.options and key not in pending:
            out.append({"key": key, "delete": 2 if deleted[key]["force"] else 1})
    return out


def update_config(ctx: Context, params: dict[str, Any], log: Callable[[str], None]) -> None:
    vmid = int(params["vmid"])
    changes = config_options(params)
    deletes = [k for k in re.split(r"[,;\s]+", str(params.get("delete") or "")) if k]
    for key in deletes:
        if key in changes:
            raise GuestError(f"cannot set and delete property '{key}' at the same time!", param="delete",
                             status=400)
    with store.locked(vmid):
        conf = store.load(ctx.node, vmid)
        store.check_digest(conf, params.get("digest"))
        if not params.get("skiplock"):
            store.check_lock(conf)
        check_new_values(changes, ctx.node)
        made = allocate(vmid, changes, ctx.node, log)
        running = runtime.pid_of(vmid) is not None
        force = bool(params.get("force"))
        for key in deletes:
            if re.fullmatch(r"unused\d+", key) and key in conf.main.options:  # freed now, running or not
                if deallocate(conf, vmid, key, True, ctx.caller.name, log):
                    del conf.main.options[key]
            elif running and key not in FAST_PLUG:
                add_to_pending_delete(conf, key, force)  # `!key`: the volume is to be freed
            elif store.DRIVE_KEY.match(key) and key in conf.main.options:
                delete_or_detach_drive(conf, vmid, key, force, ctx.caller.name, log)
                conf.main.options.pop(key)
            else:
                conf.main.options.pop(key, None)
                if key == "description":
                    conf.main.description = None
        for key, value in made.items():
            if key == "description":
                conf.main.description = value
            elif running and key not in FAST_PLUG:
                conf.pending = conf.pending or Section()
                conf.pending.options[key] = value
                remove_from_pending_delete(conf, key)  # a new value overrides an earlier pending delete
            else:
                conf.main.options[key] = value
        revert_pending(conf, [k for k in re.split(r"[,;\s]+", str(params.get("revert") or "")) if k])
        store.save(ctx.node, vmid, conf)


def revert_pending(conf: VmConfig, keys: list[str]) -> None:
    """`--revert KEY`: drop a pending change (or pending delete) of KEY, as qemu-server does."""
    if conf.pending is None or not keys:
        return
    for key in keys:
        conf.pending.options.pop(key, None)
        remove_from_pending_delete(conf, key)
    if not conf.pending.options and conf.pending.description is None:
        conf.pending = None


@route("PUT /nodes/{node}/qemu/{vmid}/config")
def vm_config_set(ctx: Context, params: dict[str, Any]) -> Any:
    guest_call(lambda: update_config(ctx, params, lambda _line: None))


@route("POST /nodes/{node}/qemu/{vmid}/config")
def vm_config_set_async(ctx: Context, params: dict[str, Any]) -> Any:
    guest_call(lambda: store.load(ctx.node, int(params["vmid"])))
    return worker(ctx, "qmconfig", int(params["vmid"]), lambda log: update_config(ctx, params, log))


@route("PUT /nodes/{node}/qemu/{vmid}/unlink")
def vm_unlink(ctx: Context, params: dict[str, Any]) -> Any:
    """qm disk unlink: update_vm with `delete` (and `force`), as qemu-server's unlink."""
    unlink = {"vmid": params["vmid"], "delete": params["idlist"], "force": params.get("force")}
    guest_call(lambda: update_config(ctx, unlink, lambda _l: None))


# -- status ---------------------------------------------------------------------------------------
@route("GET /nodes/{node}/qemu/{vmid}/status")
def vm_status_dir(ctx: Context, params: dict[str, Any]) -> Any:
    guest_call(lambda: store.load(ctx.node, int(params["vmid"])))
    return [{"subdir": d} for d in ("current", "start", "stop", "reset", "shutdown", "suspend", "reboot", "resume")]


@route("GET /nodes/{node}/qemu/{vmid}/status/current")
def vm_status(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    conf = guest_call(lambda: store.load(ctx.node, vmid))
    return {**runtime.status(vmid, conf), "ha": ha_hooks.ha().guest_status(f"vm:{vmid}")}


def running_check(ctx: Context, vmid: int, skiplock: bool = False) -> VmConfig:
    conf = store.load(ctx.node, vmid)
    if not skiplock:
        store.check_lock(conf)
    if runtime.pid_of(vmid) is None:
        raise GuestError(f"VM {vmid} not running")
    return conf


@route("POST /nodes/{node}/qemu/{vmid}/status/start")
def vm_start(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    source = params.get("migratedfrom")
    guest_call(lambda: store.load(source or ctx.node, vmid))
    if not source and ha_hooks.ha().redirected(ctx, f"vm:{vmid}"):
        return ha_hooks.ha().start(ctx, f"vm:{vmid}", vmid, "VM")
    guest_call(runtime.check_quorum)
    incoming = guest_call(migrate.incoming_uri) if source else None
    receive_disks = bool(incoming and params.get("targetstorage"))

    def work(log: Callable[[str], None]) -> None:
        volumes = migrate.allocate_received_disks(vmid, source, log) if receive_disks and source else []
        start_vm(ctx.node, vmid, log, incoming, skiplock=bool(params.get("skiplock") or source), config_node=source,
                 paused=receive_disks)
        if receive_disks and incoming:
            migrate.export_disks(vmid, volumes, incoming, log)
        if incoming:
            log(f"migration listens on {incoming}")

    return worker(ctx, "qmstart", vmid, work)


@route("POST /nodes/{node}/qemu/{vmid}/status/stop")
def vm_stop(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])

    def check() -> None:
        conf = store.load(params.get("migratedfrom") or ctx.node, vmid)
        if not params.get("skiplock") and not params.get("migratedfrom"):
            store.check_lock(conf)

    guest_call(check)
    if not params.get("migratedfrom") and ha_hooks.ha().redirected(ctx, f"vm:{vmid}"):
        if params.get("overrule-shutdown"):
            raise ApiException(400, "Parameter verification failed.",
                               {"overrule-shutdown": "Not applicable for HA resources."})
        return ha_hooks.ha().stop(ctx, f"vm:{vmid}", vmid, "VM", 0)
    timeout = float(params.get("timeout") or 10)
    return worker(ctx, "qmstop", vmid, lambda log: runtime.stop(vmid, log, timeout=timeout))


@route("POST /nodes/{node}/qemu/{vmid}/status/shutdown")
def vm_shutdown(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: running_check(ctx, vmid, bool(params.get("skiplock"))))
    if ha_hooks.ha().redirected(ctx, f"vm:{vmid}"):
        return ha_hooks.ha().stop(ctx, f"vm:{vmid}", vmid, "VM", int(params.get("timeout") or 60))
    timeout = float(params.get("timeout") or 600)
    force = bool(params.get("forceStop"))
    return worker(ctx, "qmshutdown", vmid, lambda log: runtime.shutdown(vmid, log, timeout, force))


@route("POST /nodes/{node}/qemu/{vmid}/status/reboot")
def vm_reboot(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: running_check(ctx, vmid))
    timeout = float(params.get("timeout") or 600)

    def work(log: Callable[[str], None]) -> None:
        # PVE's vm_reboot: a shutdown that leaves a reboot request, under the config lock; qmeventd's
        # `qm cleanup` starts the VM again once its QEMU is gone (only a running VM: nothing else would)
        with store.locked(vmid):
            if runtime.pid_of(vmid) is None:
                return
            runtime.request_reboot(vmid)
            runtime.shutdown(vmid, log, timeout, False)

    return worker(ctx, "qmreboot", vmid, work)


@route("POST /nodes/{node}/qemu/{vmid}/status/reset")
def vm_reset(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: running_check(ctx, vmid, bool(params.get("skiplock"))))
    return worker(ctx, "qmreset", vmid, lambda log: runtime.qmp.command(vmid, "system_reset"))


@route("POST /nodes/{node}/qemu/{vmid}/status/suspend")
def vm_suspend(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: running_check(ctx, vmid, bool(params.get("skiplock"))))
    return worker(ctx, "qmsuspend", vmid, lambda log: runtime.qmp.command(vmid, "stop"))


@route("POST /nodes/{node}/qemu/{vmid}/status/resume")
def vm_resume(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: running_check(ctx, vmid, bool(params.get("skiplock") or params.get("nocheck"))))

    def work(log: Callable[[str], None]) -> None:
        if params.get("nocheck"):  # the end of a migration: the disks have arrived
            with contextlib.suppress(qmp.QmpError):
                qmp.command(vmid, "nbd-server-stop")
        qmp.command(vmid, "cont")

    return worker(ctx, "qmresume", vmid, work)


# -- migration ------------------------------------------------------------------------------------
@route("GET /nodes/{node}/qemu/{vmid}/migrate")
def vm_migrate_precondition(ctx: Context, params: dict[str, Any]) -> Any:
    return guest_call(lambda: migrate.precondition(ctx.node, int(params["vmid"]), params.get("target")))


@route("POST /nodes/{node}/qemu/{vmid}/migrate")
def vm_migrate(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    target = params["target"]
    if target == ctx.node:
        raise ApiException(400, "Parameter verification failed.", {"target": "target is local node."})
    if ha_hooks.ha().redirected(ctx, f"vm:{vmid}"):
        guest_call(lambda: migrate.node_ip(target))
        return ha_hooks.ha().migrate(ctx, f"vm:{vmid}", vmid, "VM", target)
    online = guest_call(lambda: migrate.check(ctx.node, vmid, target, params))
    return worker(ctx, "qmigrate", vmid, lambda log: migrate.migrate(ctx.node, vmid, target, online, params, log))


# -- backup and restore ---------------------------------------------------------------------------
@route("GET /nodes/{node}/vzdump/extractconfig")
def vzdump_extractconfig(ctx: Context, params: dict[str, Any]) -> Any:
    """The guest config a backup archive holds (PVE::Storage::extract_vzdump_config): a VMA's
    qemu-server.conf, a container archive's ./etc/vzdump/pct.conf."""
    volume = str(params["volume"])
    check_volume_access(ctx.caller.name, volume, wanted="backup")
    if ":" in volume:
        owner = volume_kind(guest_call(lambda: parse_volume_id(volume))[1])[0]
        if owner:  # extractconfig's own check beside the volume's: the guest's backups
            access.require_vm(ctx.caller.name, int(owner), ["VM.Backup"])
    return guest_call(lambda: archive_config(backup.archive_path(volume), volume))


def archive_config(path: Path, volume: str) -> str:
    if not path.is_file():
        raise GuestError(f"can't find file '{volume}'")
    if re.search(r"\.vma(\.\w+)?$", path.name):
        reader, stream = backup.open_archive(path)
        try:
            configs, _, _ = vma.read_header(stream)
        finally:
            stream.close()
            reader.wait()
        return configs["qemu-server.conf"].decode()
    try:
        return ct_backup.archived_config(path)
    except GuestError as exc:
        raise GuestError(f"unable to extract configuration for backup format 'tar': {exc}") from exc


@route("POST /nodes/{node}/vzdump")
def vzdump(ctx: Context, params: dict[str, Any]) -> Any:
    """Back up this node's VMs given by `vmid` (or all of them); one task for the job, as vzdump."""
    local = store.kinds_on(ctx.node)
    for option in ("all", "exclude", "pool"):  # VZDump's verify_vzdump_parameters
        if params.get(option) and params.get("vmid"):
            raise ApiException(400, "Parameter verification failed.", {option: "option conflicts with option 'vmid'"})
    params = backup.exclude_means_all(params)
    if not (params.get("all") or params.get("pool") or params.get("vmid")):
        raise ApiException(400, "Parameter verification failed.", {"vmid": "property is missing"})
    per_node = guest_call(lambda: backup.included_guests(params, store.vmlist(), backup.pool_members))
    wanted = per_node.pop(ctx.node, []) + per_node.pop("", [])  # a VMID no node holds fails visibly, later
    skipped = sorted(v for vmids in per_node.values() for v in vmids)
    if not wanted and not params.get("all"):
        return "OK"  # the guests named run on other nodes: PVE's silent exit
    for vmid in wanted:  # VM.Backup on every guest, and room on the backup storage
        access.require_vm(ctx.caller.name, vmid, ["VM.Backup"])
    access.require(ctx.caller.name, f"/storage/{params.get('storage', 'local')}", ["Datastore.AllocateSpace"])
    guest_call(lambda: backup.dump_dir(params.get("storage", "local"), ctx.node))
    guest_call(lambda: backup.retention(params))  # a bad policy or notes template is refused before any work
    if params.get("notes-template"):
        guest_call(lambda: backup.check_notes_template(str(params["notes-template"])))

    storage_id = params.get("storage", "local")
    run_params = params
    if backup.marks_protected(params):  # PVE's get_max_protected_backups, for the caller: only a protected backup asks
        max_protected = storage_config.get(storage_id).get("max-protected-backups")
        if max_protected is None:
            max_protected = -1 if access.allowed(ctx.caller.name, f"/storage/{storage_id}", ["Datastore.Allocate"]) \
                else 5
        run_params = {**params, "max-protected-backups": max_protected}

    def work(log: Callable[[str], None]) -> None:
        options = " ".join(f"--{k} {v}" for k, v in sorted(params.items()) if k not in ("vmid", "node"))
        log(f"INFO: starting new backup job: vzdump {' '.join(map(str, wanted))} {options} --node {ctx.node}".rstrip())
        if skipped:
            log(f"INFO: skip external VMs: {', '.join(map(str, skipped))}")
        failed = []
        for vmid in wanted:
            if vmid not in local:
                log(f"ERROR: Backup of VM {vmid} failed - unable to find VM '{vmid}'")
                failed.append(vmid)
                continue
            try:
                (backup.vzdump if local[vmid] == "qemu" else ct_backup.vzdump)(ctx.node, vmid, run_params, log)
            except (GuestError, qmp.QmpError, storage_config.StorageError, OSError) as exc:
                log(f"ERROR: Backup of VM {vmid} failed - {exc}")
                failed.append(vmid)
        if failed:
            raise GuestError("job errors")
        log("INFO: Backup job finished successfully")

    return tasks.start(ctx.node, "vzdump", ",".join(map(str, wanted)) if len(wanted) == 1 else "",
                       ctx.caller.name, work)


def restore_vm(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    exists = store.config_path(ctx.node, vmid).exists()  # over an existing VM, VM.Backup is enough
    access.require_guest_create(ctx.caller.name, vmid, params.get("pool"), ["VM.Backup"] if exists else None)

    replaced: list[VmConfig] = []

    def check() -> None:
        if not backup.archive_path(params["archive"]).exists():
            raise GuestError(f"unable to restore VM {vmid} - archive '{params['archive']}' does not exist")
        if exists and params.get("force"):  # qemu-server's checks before it overwrites a VM
            if runtime.pid_of(vmid) is not None:
                raise GuestError(f"unable to restore VM {vmid} - vm is running")
            old = store.load(ctx.node, vmid)
            if old.main.options.get("template") == "1":
                raise GuestError(f"unable to restore VM {vmid} - vm is a template")
            replaced.append(old)

    guest_call(runtime.check_quorum)
    guest_call(lambda: store.reserve(ctx.node, vmid, "qemu", f"unable to restore VM {vmid} - ", check,
                                     force=bool(params.get("force"))))

    def work(log: Callable[[str], None]) -> None:
        for volid in owned_volumes(replaced[0]) if replaced else []:  # the VM restored over loses its disks
            free_volume(volid, log)
        try:
            backup.restore(ctx.node, vmid, params["archive"], params, log)
        except Exception:
            store.config_path(ctx.node, vmid).unlink(missing_ok=True)
            raise

    return worker(ctx, "qmrestore", vmid, work)
