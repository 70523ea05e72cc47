"""The container API: /nodes/{node}/lxc[...] as pve-container serves it (create from a template,
config, status, start/stop/shutdown, destroy, migrate in restart mode). `pct` calls these handlers."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.access import store as access_store
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import containers, ct_backup, ha_hooks, migrate, store
from pvelab.pve.guests.api import config_options, guest_call, typed_options, worker
from pvelab.pve.guests.config import NOT_OPTIONS, Section, VmConfig
from pvelab.pve.guests.runtime import check_quorum
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.volumes import backend, volume_backend

KIND = "lxc"
NOT_CT_CONFIG = ("ostemplate", "password", "ssh-public-keys", "ignore-unpack-errors", "restore")
NEW_VOLUME = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)$", re.IGNORECASE)
CONFIG_TEMPLATE = "/nodes/{node}/lxc/{vmid}/config"


def prepare_options(params: dict[str, Any]) -> dict[str, str]:
    options = {k: v for k, v in config_options(params).items() if k not in NOT_CT_CONFIG}
    options.setdefault("arch", "amd64")
    options.setdefault("ostype", "unmanaged")  # what pve-container detects for a busybox rootfs
    options.setdefault("rootfs", f"{params.get('storage') or 'local'}:4")
    for key in [k for k in options if k.startswith("net") and k[3:].isdigit()]:
        net = store.parse_props(options[key])
        net.setdefault("hwaddr", store.random_mac())
        net.setdefault("type", "veth")
        options[key] = store.print_props(net)
    return options


def check_rootfs(options: dict[str, str], node: str) -> tuple[str, int]:
    rootfs = store.parse_drive(options["rootfs"])
    found = NEW_VOLUME.match(rootfs.get("file", ""))
    if not found:
        raise GuestError("rootfs: give a new volume as STORAGE:SIZE_IN_GiB", param="rootfs", status=400)
    sid, size = found.group(1), found.group(2)
    storage = storage_config.get(sid)
    if not storage_config.available_on(storage, node):
        raise GuestError(f"storage '{sid}' is not available on node '{node}'")
    if "rootdir" not in storage_config.content_of(storage):
        raise GuestError(f"storage '{sid}' does not support container directories")
    return sid, int(float(size) * 1024 * 1024)


@route("GET /nodes/{node}/lxc")
def ct_index(ctx: Context, params: dict[str, Any]) -> Any:
    out = []
    may = access.checker_for(ctx.caller.name)
    for vmid, conf in store.guests_on(ctx.node, KIND).items():
        if not may(f"/vms/{vmid}", ["VM.Audit"]):
            continue
        entry = containers.status(vmid, conf)
        entry.pop("ha", None)
        out.append(entry)
    return out


@route("POST /nodes/{node}/lxc")
def ct_create(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    if params.get("restore"):
        return restore_ct(ctx, params)
    access.require_guest_create(ctx.caller.name, vmid, params.get("pool"))
    options = prepare_options(params)
    template = params["ostemplate"]

    def check() -> tuple[str, int]:
        target = check_rootfs(options, ctx.node)
        if not containers.volume_path(template).is_file():
            raise GuestError(f"volume '{template}' does not exist")
        return target

    guest_call(check_quorum)
    sid, size_kib = guest_call(lambda: store.reserve(ctx.node, vmid, KIND, "", check))

    def work(log: Callable[[str], None]) -> None:
        try:
            volid = backend(sid, storage_config.get(sid)).alloc_rootdir(vmid, size_kib)
            root = containers.volume_path(volid)
            log(f"extracting archive '{containers.volume_path(template)}'")
            log(containers.unpack_template(template, root))
            rootfs = store.parse_drive(options["rootfs"])
            rootfs["file"] = volid
            rootfs["size"] = store.size_text(size_kib * 1024)
            made = {**options, "rootfs": store.print_drive(rootfs)}
            description = made.pop("description", None)
            with store.locked(vmid, KIND):
                store.save(ctx.node, vmid, VmConfig(main=Section(options=made, description=description)), KIND)
        except Exception:
            store.config_path(ctx.node, vmid, KIND).unlink(missing_ok=True)
            raise
        if params.get("pool"):
            access_store.add_vm_to_pool(vmid, params["pool"])
        if params.get("start"):
            start_ct(ctx.node, vmid, log)

    return worker(ctx, "vzcreate", vmid, work)


@route("GET /nodes/{node}/lxc/{vmid}")
def ct_dir(ctx: Context, params: dict[str, Any]) -> Any:
    guest_call(lambda: store.load(ctx.node, int(params["vmid"]), KIND))
    return [{"subdir": d} for d in ("config", "pending", "status", "vncproxy", "termproxy", "migrate", "resize",
                                    "rrd", "rrddata", "snapshot", "firewall")]


@route("GET /nodes/{node}/lxc/{vmid}/config")
def ct_config(ctx: Context, params: dict[str, Any]) -> Any:
    conf = guest_call(lambda: store.load(ctx.node, int(params["vmid"]), KIND))
    out = typed_options({k: v for k, v in conf.main.options.items() if k not in NOT_OPTIONS}, "GET", CONFIG_TEMPLATE)
    if conf.main.description:
        out["description"] = conf.main.description
    out["digest"] = conf.digest
    return out


@route("PUT /nodes/{node}/lxc/{vmid}/config")
def ct_config_set(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])

    def update() -> None:
        changes = {k: v for k, v in config_options(params).items() if k not in NOT_CT_CONFIG}
        deletes = [k for k in re.split(r"[,;\s]+", str(params.get("delete") or "")) if k]
        with store.locked(vmid, KIND):
            conf = store.load(ctx.node, vmid, KIND)
            store.check_digest(conf, params.get("digest"))
            store.check_lock(conf, KIND)
            if "rootfs" in changes:
                raise GuestError("unable to modify read-only option: 'rootfs'", param="rootfs", status=400)
            for key in deletes:
                conf.main.options.pop(key, None)
            for key in [k for k in changes if k.startswith("net") and k[3:].isdigit()]:
                net = store.parse_props(changes[key])
                net.setdefault("hwaddr", store.random_mac())
                changes[key] = store.print_props(net)
            conf.main.options.update(changes)
            store.save(ctx.node, vmid, conf, KIND)

    guest_call(update)


@route("DELETE /nodes/{node}/lxc/{vmid}")
def ct_destroy(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])

    def check() -> bool:
        conf = store.load(ctx.node, vmid, KIND)
        store.check_lock(conf, KIND)
        if containers.running(vmid):
            raise GuestError(f"CT {vmid} is running - destroy failed")
        return ha_hooks.ha().check_destroy(f"ct:{vmid}", "CT", vmid, bool(params.get("purge")))

    in_ha = guest_call(check)

    def work(log: Callable[[str], None]) -> None:
        if in_ha:
            ha_hooks.ha().remove_resource(f"ct:{vmid}", "CT", vmid, log)
        with store.locked(vmid, KIND):
            conf = store.load(ctx.node, vmid, KIND)
            for volid in containers.volumes_of(conf.main.options):
                storage, volname = volume_backend(volid)
                storage.free(volname)
                log(f"Removed volume '{volid}'")
            store.config_path(ctx.node, vmid, KIND).unlink()
            subprocess.run(["rm", "-rf", str(containers.LXC_DIR / str(vmid))], check=False)
        if params.get("purge"):
            access_store.remove_vm_access(vmid)

    return worker(ctx, "vzdestroy", vmid, work)


# -- status ---------------------------------------------------------------------------------------
@route("GET /nodes/{node}/lxc/{vmid}/status")
def ct_status_dir(ctx: Context, params: dict[str, Any]) -> Any:
    guest_call(lambda: store.load(ctx.node, int(params["vmid"]), KIND))
    return [{"subdir": d} for d in ("current", "start", "stop", "shutdown", "migrate", "reboot", "suspend", "resume")]


@route("GET /nodes/{node}/lxc/{vmid}/status/current")
def ct_status(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    conf = guest_call(lambda: store.load(ctx.node, vmid, KIND))
    current = containers.status(vmid, conf)
    current.pop("type", None)
    return {**current, "ha": ha_hooks.ha().guest_status(f"ct:{vmid}")}


def start_ct(node: str, vmid: int, log: Callable[[str], None]) -> None:
    check_quorum()
    with store.locked(vmid, KIND):
        conf = store.load(node, vmid, KIND)
        if conf.main.options.get("template") == "1":
            raise GuestError("you can't start a CT if it's a template")
        store.check_lock(conf, KIND)
        containers.start(vmid, node, conf, log)


@route("POST /nodes/{node}/lxc/{vmid}/status/start")
def ct_start(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: store.load(ctx.node, vmid, KIND))
    if ha_hooks.ha().redirected(ctx, f"ct:{vmid}"):
        return ha_hooks.ha().start(ctx, f"ct:{vmid}", vmid, "CT")
    guest_call(check_quorum)
    return worker(ctx, "vzstart", vmid, lambda log: start_ct(ctx.node, vmid, log))


@route("POST /nodes/{node}/lxc/{vmid}/status/stop")
def ct_stop(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: store.check_lock(store.load(ctx.node, vmid, KIND), KIND) if not params.get("skiplock")
               else None)
    if ha_hooks.ha().redirected(ctx, f"ct:{vmid}"):
        return ha_hooks.ha().stop(ctx, f"ct:{vmid}", vmid, "CT", 0)
    return worker(ctx, "vzstop", vmid, lambda log: containers.stop(vmid))


@route("POST /nodes/{node}/lxc/{vmid}/status/shutdown")
def ct_shutdown(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])

    def check() -> None:
        store.check_lock(store.load(ctx.node, vmid, KIND), KIND)
        if not containers.running(vmid):
            raise GuestError(f"CT {vmid} not running")

    guest_call(check)
    if ha_hooks.ha().redirected(ctx, f"ct:{vmid}"):
        return ha_hooks.ha().stop(ctx, f"ct:{vmid}", vmid, "CT", int(params.get("timeout") or 60))
    timeout, force = float(params.get("timeout") or 60), bool(params.get("forceStop"))
    return worker(ctx, "vzshutdown", vmid, lambda log: containers.shutdown(vmid, timeout, force))


@route("POST /nodes/{node}/lxc/{vmid}/status/reboot")
def ct_reboot(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    guest_call(lambda: store.load(ctx.node, vmid, KIND))

    def work(log: Callable[[str], None]) -> None:
        containers.shutdown(vmid, float(params.get("timeout") or 60), True)
        start_ct(ctx.node, vmid, log)

    return worker(ctx, "vzreboot", vmid, work)


# -- migration (restart mode) ---------------------------------------------------------------------
@route("POST /nodes/{node}/lxc/{vmid}/migrate")
def ct_migrate(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, target = int(params["vmid"]), params["target"]
    if target == ctx.node:
        raise ApiException(400, "Parameter verification failed.", {"target": "target is local node."})
    if ha_hooks.ha().redirected(ctx, f"ct:{vmid}"):
        guest_call(lambda: migrate.node_ip(target))
        return ha_hooks.ha().migrate(ctx, f"ct:{vmid}", vmid, "CT", target)

    def check() -> bool:
        check_quorum()
        migrate.node_ip(target)
        conf = store.load(ctx.node, vmid, KIND)
        store.check_lock(conf, KIND)
        running = containers.running(vmid)
        if running and params.get("online"):
            raise GuestError("lxc live migration is currently not implemented")
        if running and not params.get("restart"):
            raise GuestError("running container can only be migrated in restart mode")
        migrate.check_storage({"rootfs": conf.main.options["rootfs"]}, target)
        return running

    running = guest_call(check)

    def work(log: Callable[[str], None]) -> None:
        migrate.migrate_container(ctx.node, vmid, target, running, float(params.get("timeout") or 180), log)

    return worker(ctx, "vzmigrate", vmid, work)



def restore_ct(ctx: Context, params: dict[str, Any]) -> Any:
    """`pct restore`: create_vm with `restore` set and the backup archive as `ostemplate`."""
    vmid = int(params["vmid"])
    exists = store.config_path(ctx.node, vmid, KIND).exists()  # over an existing CT, VM.Backup is enough
    access.require_guest_create(ctx.caller.name, vmid, params.get("pool"), ["VM.Backup"] if exists else None)

    def check() -> None:
        if not ct_backup.archive_path(params["ostemplate"]).exists():
            raise GuestError(f"unable to restore CT {vmid} - archive '{params['ostemplate']}' does not exist")

    guest_call(check_quorum)
    guest_call(lambda: store.reserve(ctx.node, vmid, KIND, f"unable to restore CT {vmid} - ", check,
                                     force=bool(params.get("force"))))

    def work(log: Callable[[str], None]) -> None:
        try:
            ct_backup.restore(ctx.node, vmid, params["ostemplate"], params, log)
        except Exception:
            store.config_path(ctx.node, vmid, KIND).unlink(missing_ok=True)
            raise
        if params.get("pool"):
            access_store.add_vm_to_pool(vmid, params["pool"])
        if params.get("start"):
            start_ct(ctx.node, vmid, log)

    return worker(ctx, "vzrestore", vmid, work)
