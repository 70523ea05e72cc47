"""The storage subsystem's API: /storage (storage.cfg) and /nodes/{node}/storage (status, content).
pvesm and pvesh call these same handlers."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.pve import remote
from pvelab.pve.access import guard as access
from pvelab.pve.access.perms import ROOT, PermissionDenied, Permissions
from pvelab.pve.api import tasks
from pvelab.pve.api.routes import ApiException, Context, refusing, route
from pvelab.pve.storage import config, prune
from pvelab.pve.storage.config import TYPES, StorageError
from pvelab.pve.storage.volname import get_subdir, parse_volname
from pvelab.pve.storage.volumes import backend, parse_size, parse_volume_id, prune_backups

# Parameters of POST/PUT /storage that are not storage options.
NOT_OPTIONS = ("storage", "type", "digest", "delete")
MOUNTED_TYPES = ("nfs",)  # network file systems PVE mounts below /mnt/pve/<id> unless given a path


storage_call = refusing


def write(sections: dict[str, dict[str, Any]]) -> None:
    config.STORAGE_CFG.write_text(config.dump(sections))


def status_entry(storage_id: str, options: dict[str, Any]) -> dict[str, Any]:
    """One storage as GET /nodes/{node}/storage lists it (figures in bytes)."""
    entry: dict[str, Any] = {"storage": storage_id, "type": options["type"],
                             "content": ",".join(sorted(config.content_of(options))),
                             "shared": int(config.is_shared(options)), "enabled": int(config.is_enabled(options)),
                             "active": 0, "total": 0, "used": 0, "avail": 0}
    if config.is_enabled(options):
        try:
            entry.update(backend(storage_id, options).status(), active=1)
        except StorageError as exc:  # PVE's storage_info warns ("storage 'ID' is not online"), lists it inactive
            print(exc, file=sys.stderr)
        except OSError:  # an unreachable storage is listed inactive, as PVE does
            pass
    if entry["total"]:
        entry["used_fraction"] = entry["used"] / entry["total"]
    return entry


# -- /storage: the configuration ------------------------------------------------------------------
@route("GET /storage")
def storage_index(ctx: Context, params: dict[str, Any]) -> Any:
    sections, current = config.read(), digest()
    may = access.checker_for(ctx.caller.name)  # only storages the caller may see or use
    return [{"storage": sid, **{k: (1 if v is True else v) for k, v in opts.items()},
             "digest": current} for sid, opts in sections.items()
            if (not params.get("type") or opts["type"] == params["type"])
            and may(f"/storage/{sid}", ["Datastore.Audit", "Datastore.AllocateSpace"])]


@route("GET /storage/{storage}")
def storage_read(ctx: Context, params: dict[str, Any]) -> Any:
    options = storage_call(lambda: config.get(params["storage"]))
    return {"storage": params["storage"], **{k: (1 if v is True else v) for k, v in options.items()},
            "digest": digest()}


@route("POST /storage")
def storage_create(ctx: Context, params: dict[str, Any]) -> Any:
    def create() -> dict[str, Any]:
        sid, kind = params["storage"], params["type"]
        if kind not in TYPES:
            raise StorageError(f"storage type '{kind}' is not available in the lab twin (it has "
                               f"{', '.join(sorted(TYPES))})", param="type", status=400)
        sections = config.read()
        options = checked_options(kind, {k: v for k, v in params.items() if k not in NOT_OPTIONS})
        if kind in MOUNTED_TYPES:
            options.setdefault("path", f"{config.MOUNT_BASE}/{sid}")
        for name in TYPES[kind].required:
            if name not in options:
                raise StorageError(f"missing value for required option '{name}'")
        try:  # what PVE does under its storage.cfg lock, refusals prefixed as its lock reports them
            if sid in sections:
                raise StorageError(f"storage ID '{sid}' already defined")
            if config.is_enabled(options) and config.available_on(options, ctx.node):
                backend(sid, {"type": kind, **options}).activate()  # PVE: "to detect errors/problems sooner"
        except StorageError as exc:
            raise StorageError(f"create storage failed: {exc}") from exc
        write({**sections, sid: {"type": kind, **options}})
        return {"storage": sid, "type": kind}

    return storage_call(create)


@route("PUT /storage/{storage}")
def storage_update(ctx: Context, params: dict[str, Any]) -> Any:
    def update() -> dict[str, Any]:
        sid = params["storage"]
        sections = config.read()
        current = dict(config.get(sid, sections))
        check_digest(params.get("digest"))
        changes = checked_options(current["type"], {k: v for k, v in params.items() if k not in NOT_OPTIONS})
        for name in changes:
            if name in TYPES[current["type"]].required:
                raise StorageError(f"can't change value of fixed parameter '{name}'")
        for name in [n for n in str(params.get("delete") or "").split(",") if n]:
            if name in changes:
                raise StorageError(f"cannot set and delete property '{name}' at the same time!")
            if name in TYPES[current["type"]].required:
                raise StorageError(f"unable to delete required option '{name}'")
            current.pop(name, None)
        sections[sid] = {**current, **changes}
        write(sections)
        return {"storage": sid, "type": current["type"]}

    return storage_call(update)


@route("DELETE /storage/{storage}")
def storage_delete(ctx: Context, params: dict[str, Any]) -> Any:
    def delete() -> None:
        sections = config.read()
        config.get(params["storage"], sections)
        del sections[params["storage"]]
        write(sections)

    storage_call(delete)


def checked_options(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    allowed = {*TYPES[kind].required, *TYPES[kind].optional}
    options: dict[str, Any] = {}
    for name, value in given.items():
        if name not in allowed:
            raise StorageError(f"unexpected property '{name}'")  # PVE's check for options of another type
        if name == "prune-backups":
            prune.parse_options(str(value))  # PVE validates the format; the string is kept as given
        options[name] = (config.check_content(kind, str(value)) if name == "content" else
                         int(value) if isinstance(value, bool) else value)
    if options.get("disable") in (0, "0"):
        options.pop("disable")
    elif "disable" in options:
        options["disable"] = True
    return options


def digest() -> str:
    try:
        return hashlib.sha1(config.STORAGE_CFG.read_bytes()).hexdigest()
    except FileNotFoundError:
        return hashlib.sha1(b"").hexdigest()


def check_digest(given: str | None) -> None:
    if given and given != digest():
        raise StorageError("detected modified configuration - file changed by other user? Try again.")


# -- /nodes/{node}/storage: status and content ----------------------------------------------------
@route("GET /nodes/{node}/storage")
def node_storage_index(ctx: Context, params: dict[str, Any]) -> Any:
    out = []
    may = access.checker_for(ctx.caller.name)
    for sid, options in config.read().items():
        if not config.available_on(options, ctx.node) or (params.get("storage") and sid != params["storage"]):
            continue
        if not may(f"/storage/{sid}", ["Datastore.Audit", "Datastore.AllocateSpace"]):
            continue
        entry = status_entry(sid, options)
        wanted = [c for c in str(params.get("content") or "").split(",") if c]
        if wanted and not set(wanted) & set(entry["content"].split(",")):
            continue
        if params.get("enabled") and not entry["active"]:
            continue
        out.append(entry)
    return out


@route("GET /nodes/{node}/storage/{storage}")
def node_storage_dir(ctx: Context, params: dict[str, Any]) -> Any:
    storage_call(lambda: config.get(params["storage"]))
    return [{"subdir": d} for d in ("content", "download-url", "file-restore", "import-metadata",
                                    "prunebackups", "rrd", "rrddata", "status", "upload")]


@route("GET /nodes/{node}/storage/{storage}/status")
def node_storage_status(ctx: Context, params: dict[str, Any]) -> Any:
    options = storage_call(lambda: config.get(params["storage"]))
    if not config.available_on(options, ctx.node):
        raise ApiException(500, f"storage '{params['storage']}' is not available on node '{ctx.node}'")
    entry = status_entry(params["storage"], options)
    entry.pop("storage")
    entry.pop("used_fraction", None)
    return entry


@route("GET /nodes/{node}/storage/{storage}/content")
def node_storage_content(ctx: Context, params: dict[str, Any]) -> Any:
    def listing() -> list[dict[str, Any]]:
        options = config.get(params["storage"])
        items = backend(params["storage"], options).volumes()
        if params.get("content"):
            items = [i for i in items if i["content"] == params["content"]]
        if params.get("vmid"):
            items = [i for i in items if i.get("vmid") == params["vmid"]]
        return items

    return storage_call(listing)


@route("POST /nodes/{node}/storage/{storage}/content")
def node_storage_alloc(ctx: Context, params: dict[str, Any]) -> Any:
    def alloc() -> str:
        size = parse_size(str(params["size"]))
        name, fmt = params["filename"], params.get("format")
        if "." in name and name.rsplit(".", 1)[1] in ("raw", "qcow2", "vmdk"):
            if fmt and fmt != name.rsplit(".", 1)[1]:
                raise StorageError(f"different storage formats ({fmt} != {name.rsplit('.', 1)[1]})",
                                   param="format", status=400)
            fmt = name.rsplit(".", 1)[1]
        options = config.get(params["storage"])
        return backend(params["storage"], options).alloc(int(params["vmid"]), name or None, size, fmt)

    return storage_call(alloc)


def real_volume_id(storage: str | None, volume: str) -> tuple[str, str]:
    """PVE's rule: a volume may be named without its storage when the storage is given apart."""
    if ":" in volume:
        sid, volname = parse_volume_id(volume)
        if storage and sid != storage:
            raise StorageError(f"storage ID mismatch ({sid} != {storage})", param="volume", status=400)
        return sid, volname
    if not storage:
        raise StorageError("no storage specified - incomplete volume ID", param="volume", status=400)
    return storage, volume


@route("GET /nodes/{node}/storage/{storage}/content/{volume}")
def node_volume_info(ctx: Context, params: dict[str, Any]) -> Any:
    sid, volname = storage_call(lambda: real_volume_id(params.get("storage"), params["volume"]))
    check_volume_access(ctx.caller.name, f"{sid}:{volname}")  # before anything is read, as PVE

    def info() -> dict[str, Any]:
        store = backend(sid, config.get(sid))
        entry = next((v for v in store.volumes() if v["volid"] == f"{sid}:{volname}"), None)
        if entry is None:
            raise StorageError(f"volume '{sid}:{volname}' does not exist")
        return {"path": str(store.path(volname)), "size": entry["size"], "used": entry.get("used", entry["size"]),
                "format": entry["format"]}

    return storage_call(info)


def volume_kind(volname: str) -> tuple[int | None, str]:
    """(owning VMID, content type) as PVE's parse_volname reads them from a volume's name (a linked
    clone's owner is the last guest it names)."""
    backup = re.match(r"backup/vzdump-(?:qemu|lxc|openvz)-(\d+)-", volname)
    if backup:
        return int(backup.group(1)), "backup"
    guests = re.findall(r"(?:^|/)(?:vm|base|subvol)-(\d+)-", volname)
    if guests:
        return int(guests[-1]), "images"
    return None, volname.split("/", 1)[0]


def volume_type_and_owner(options: dict[str, Any], volname: str) -> tuple[str, int | None]:
    """(content type, owning VMID) as the storage's plugin parses the name: pve-storage's parse_volname
    for a storage with a path, the guest's name for the others (LVM, RBD)."""
    if options.get("path"):
        vtype, _name, owner_text, *_rest = parse_volname(volname)
        return vtype, int(owner_text) if owner_text else None
    owner, content = volume_kind(volname)
    return content, owner


def volume_access(perms: Permissions, who: str, volid: str, storages: dict[str, dict[str, Any]],
                  vmid: int | None = None, wanted: str | None = None) -> None:
    """PVE's check_volume_access: the content type asked for (root too), then Datastore.Allocate on
    the storage, or what each kind of volume needs - read access for ISOs, templates and imports, its
    own volumes for the guest named, VM.Backup for a guest's backup, VM.Config.Disk for its disks;
    a path only for root. Raises PermissionDenied (403) or StorageError."""
    volume = re.fullmatch(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", volid, re.IGNORECASE | re.DOTALL)
    if volume is None:
        if who != ROOT:
            raise StorageError("Only root can pass arbitrary filesystem paths.")
        return
    sid, volname = volume.groups()
    vtype, owner = volume_type_and_owner(config.get(sid, storages), volname)
    if wanted and vtype != wanted and (wanted != "rootdir" or vtype != "images"):
        raise StorageError(f"unable to use volume {volid} - content type needs to be '{wanted}'")
    if perms.check(who, f"/storage/{sid}", ["Datastore.Allocate"], noerr=True):
        return
    if vtype in ("iso", "vztmpl", "import"):  # templates and ISOs could be sensitive: read access at least
        perms.check(who, f"/storage/{sid}", ["Datastore.AllocateSpace", "Datastore.Audit"], any_of=True)
    elif owner is not None and vmid is not None and owner == int(vmid):
        return  # the guest's own volume
    elif vtype == "backup" and owner:
        perms.check(who, f"/storage/{sid}", ["Datastore.AllocateSpace"])
        perms.check(who, f"/vms/{owner}", ["VM.Backup"])
    elif vtype in ("images", "rootdir") and owner:
        perms.check(who, f"/storage/{sid}", ["Datastore.Audit"])
        perms.check(who, f"/vms/{owner}", ["VM.Config.Disk"])
    else:
        raise StorageError(f"missing privileges to access {volid}")


def check_volume_access(who: str, volid: str, vmid: int | None = None, wanted: str | None = None) -> None:
    """volume_access for an API caller: PVE's 403 when a privilege is missing, 500 with its text else."""
    try:
        volume_access(access.permissions(), who, volid, config.read(), vmid, wanted)
    except PermissionDenied as exc:
        raise ApiException(403, str(exc)) from exc
    except StorageError as exc:
        raise ApiException(exc.status, str(exc)) from exc


@route("DELETE /nodes/{node}/storage/{storage}/content/{volume}")
def node_volume_free(ctx: Context, params: dict[str, Any]) -> Any:
    sid, volname = storage_call(lambda: real_volume_id(params.get("storage"), params["volume"]))
    owner, content = volume_kind(volname)
    # Datastore.Allocate on the storage, or room on it for a backup of a VM the caller may back up
    if not access.allowed(ctx.caller.name, f"/storage/{sid}", ["Datastore.Allocate"]):
        if content == "backup" and owner:
            access.require(ctx.caller.name, f"/storage/{sid}", ["Datastore.AllocateSpace"])
            access.require_vm(ctx.caller.name, int(owner), ["VM.Backup"])
        else:
            access.require(ctx.caller.name, f"/storage/{sid}", ["Datastore.Allocate"])
    store = storage_call(lambda: backend(sid, config.get(sid)))

    def work(log: Callable[[str], None]) -> None:
        storage_call(lambda: store.free(volname))
        log(f"Removed volume '{sid}:{volname}'")

    return tasks.start(ctx.node, "imgdel", f"{owner}@{sid}" if owner else sid, ctx.caller.name, work)


@route("PUT /nodes/{node}/storage/{storage}/content/{volume}")
def node_volume_update(ctx: Context, params: dict[str, Any]) -> Any:
    """Notes and protection of a backup (PVE's updateattributes)."""
    sid, volname = storage_call(lambda: real_volume_id(params.get("storage"), params["volume"]))
    check_volume_access(ctx.caller.name, f"{sid}:{volname}")

    def update() -> None:
        store = backend(sid, config.get(sid))
        for attribute in ("notes", "protected"):
            if attribute in params:
                store.set_attribute(volname, attribute, params[attribute])

    storage_call(update)
    return None


def keep_options(params: dict[str, Any]) -> dict[str, int] | None:
    """The call's `prune-backups`, parsed; None: the storage's own."""
    given = params.get("prune-backups")
    return None if given is None else storage_call(lambda: prune.parse_options(str(given)))


@route("GET /nodes/{node}/storage/{storage}/prunebackups")
def node_prune_dry_run(ctx: Context, params: dict[str, Any]) -> Any:
    keep = keep_options(params)
    vmid = int(params["vmid"]) if params.get("vmid") else None
    return storage_call(lambda: prune_backups(params["storage"], keep, vmid, params.get("type"), dry_run=True))


@route("DELETE /nodes/{node}/storage/{storage}/prunebackups")
def node_prune(ctx: Context, params: dict[str, Any]) -> Any:
    sid, keep = params["storage"], keep_options(params)
    vmid = int(params["vmid"]) if params.get("vmid") else None
    if vmid is not None:  # room on the storage and backing up that guest; else allocating on the storage
        access.require(ctx.caller.name, f"/storage/{sid}", ["Datastore.AllocateSpace"])
        access.require_vm(ctx.caller.name, vmid, ["VM.Backup"])
    else:
        access.require(ctx.caller.name, f"/storage/{sid}", ["Datastore.Allocate"])

    def work(log: Callable[[str], None]) -> None:
        storage_call(lambda: prune_backups(sid, keep, vmid, params.get("type"), dry_run=False, log=log))

    return tasks.start(ctx.node, "prunebackups", f"{vmid}@{sid}" if vmid is not None else sid, ctx.caller.name, work)


def upload_copy(node: str, here: str, sid: str, source: Path, target: Path
                ) -> tuple[list[str], Callable[[], None]]:
    """How an upload reaches its storage: moved into place on this node; for another node's storage
    copied there with scp, as PVE does (the storage activated and the directory made there first)."""
    if node == here:
        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), target)
        return ["cp", "--", str(source), str(target)], move
    try:
        address = remote.remote_node_ip(node)
    except remote.LookupFailed as exc:
        raise ApiException(500, str(exc)) from exc
    activated = remote.run_on(node, ["/usr/sbin/pvesm", "status", "--storage", sid], timeout=60)
    if activated.returncode != 0:
        raise ApiException(500, f"can't activate storage '{sid}' on node '{node}': {activated.stderr.strip()}")
    if remote.run_on(node, ["/bin/mkdir", "-p", "--", str(target.parent)], timeout=60).returncode != 0:
        raise ApiException(500, "mkdir failed")
    command = remote.scp_command(node, address, str(source), str(target))

    def copy() -> None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
            if done.returncode != 0:
                remote.run_on(node, ["rm", "-f", "--", str(target)], timeout=60)
                raise StorageError(f"import failed: {done.stderr.strip() or done.returncode}")
        finally:
            source.unlink(missing_ok=True)  # uploaded here only: nothing to remove there
    return command, copy


@route("POST /nodes/{node}/storage/{storage}/upload")
def node_storage_upload(ctx: Context, params: dict[str, Any]) -> Any:
    """An uploaded ISO or template moved into the storage, as PVE's upload task does."""
    sid, content = params["storage"], params["content"]
    options = storage_call(lambda: config.get(sid))
    if content not in config.content_of(options):
        raise ApiException(500, f"storage '{sid}' does not support '{content}' content")
    if options["type"] != "dir":
        raise ApiException(500, f"storage '{sid}' (type {options['type']}) cannot hold uploads")
    name = Path(params["filename"]).name
    source = Path(params.get("tmpfilename") or "")
    if not source.is_file():
        raise ApiException(500, "missing temporary file")
    if content == "iso" and not name.lower().endswith((".iso", ".img")):
        raise ApiException(400, "Parameter verification failed.", {"filename": "wrong file extension"})
    target = Path(get_subdir(options, content)) / name
    node = params["node"]
    command, copy = upload_copy(ctx.node if node == "localhost" else node, ctx.node, sid, source, target)

    def work(log: Callable[[str], None]) -> None:
        log(f"starting file import from: {source}")
        if params.get("checksum"):
            algorithm = params.get("checksum-algorithm") or "sha256"
            got = hashlib.new(algorithm, source.read_bytes()).hexdigest()
            if got != params["checksum"].lower():
                source.unlink(missing_ok=True)
                raise StorageError(f"checksum mismatch: got '{got}' != expect '{params['checksum']}'")
            log("calculating checksum...OK, checksum verified")
        log(f"target node: {node}")
        log(f"target file: {target}")
        log(f"file size is: {source.stat().st_size}")
        log(f"command: {' '.join(command)}")
        copy()
        log("finished file import successfully")

    return tasks.start(ctx.node, "imgcopy", "", ctx.caller.name, work)
