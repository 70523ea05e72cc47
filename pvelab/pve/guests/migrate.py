"""Moving a VM to another node, as qemu-server's QemuMigrate does: checks first, the config locked
(`lock: migrate`) while it runs, local disks copied for an offline migration, and for an online one a
real QEMU live migration (the target's QEMU started with `-incoming` over SSH, the state sent by
QMP `migrate`), the config moved to the target node only when it has finished.

The twin sends the state over plain TCP on the cluster network (PVE's `migration_type: insecure`);
PVE's default tunnels it through SSH."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

from pvelab.poll import poll
from pvelab.procfs import nodename
from pvelab.pve import members
from pvelab.pve.guests import qmp, runtime, store
from pvelab.pve.guests.store import GuestError
from pvelab.pve.remote import ssh_command as ssh_to
from pvelab.pve.replication import migration as replication
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.volumes import backend, parse_volume_id, volume_backend, volume_path

Log = Callable[[str], None]
MIGRATION_PORTS = range(60000, 60051)  # PVE's migration port range
DOWNTIME_LIMIT_MS = 100  # PVE's default migrate_downtime (0.1 s)


def node_ip(node: str) -> str:
    info = (members.read().get("nodelist") or {}).get(node)
    if not info:
        raise GuestError(f"no such cluster node '{node}'")
    return str(info["ip"])


def ssh_command(node: str) -> list[str]:
    """PVE's SSH to a cluster node (BatchMode, the node's name as host key alias)."""
    return ssh_to(node, node_ip(node))


def remote(node: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ssh_command(node), command], capture_output=True, text=True, timeout=timeout,
                          check=False)


def incoming_uri() -> str:
    """Where the target's QEMU listens for the state: the node's cluster address, a free port."""
    address = node_ip(nodename())
    for port in MIGRATION_PORTS:
        if port_free(address, port):
            return f"tcp:{address}:{port}"
    raise GuestError("unable to find free migration port")


def local_volumes(conf_options: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The VM's volumes on storages that are not shared: {volid: {key, cdrom, cloudinit, size}}."""
    out: dict[str, dict[str, Any]] = {}
    for key, drive in store.drives(conf_options).items():
        file = drive.get("file", "none")
        if file in ("none", "cdrom"):
            continue
        if ":" not in file:
            out[file] = {"key": key, "cdrom": store.is_cdrom(drive), "cloudinit": False, "path": True}
            continue
        sid = parse_volume_id(file)[0]
        if storage_config.is_shared(storage_config.get(sid)):
            continue
        out[file] = {"key": key, "cdrom": store.is_cdrom(drive), "cloudinit": store.is_cloudinit(drive)}
    for key, value in conf_options.items():
        if key.startswith("unused") and not storage_config.is_shared(storage_config.get(parse_volume_id(value)[0])):
            out[value] = {"key": key, "cdrom": False, "cloudinit": False}
    return out


def check_storage(conf_options: dict[str, str], target: str) -> None:
    """PVE's check_storage_availability: each volume's storage must be enabled on the target."""
    for drive in store.drives(conf_options).values():
        file = drive.get("file", "")
        if ":" not in file:
            continue
        sid = parse_volume_id(file)[0]
        if not storage_config.available_on(storage_config.get(sid), target):
            raise GuestError(f"storage '{sid}' is not available on node '{target}'")


def check(node: str, vmid: int, target: str, params: dict[str, Any]) -> bool:
    """The API's checks before the task starts; whether the migration is online."""
    runtime.check_quorum()
    node_ip(target)  # "no such cluster node"
    conf = store.load(node, vmid)
    store.check_lock(conf)
    online = bool(params.get("online"))
    if runtime.pid_of(vmid) is not None:
        if not online:
            raise GuestError("can't migrate running VM without --online")
    else:
        online = False
    check_storage(conf.main.options, target)
    return online


def precondition(node: str, vmid: int, target: str | None) -> dict[str, Any]:
    conf = store.load(node, vmid)
    running = runtime.pid_of(vmid) is not None
    disks = []
    for volid, info in local_volumes(conf.main.options).items():
        if info.get("path"):
            continue
        path = volume_path(volid)
        disks.append({"volid": volid, "cdrom": int(info["cdrom"]), "is_unused": int(info["key"].startswith("unused")),
                      "size": path.stat().st_size if path.exists() else 0})
    nodes = [n for n in (members.read().get("nodelist") or {}) if n != node]
    allowed, unavailable = [], {}
    for name in nodes:
        try:
            check_storage(conf.main.options, name)
            allowed.append(name)
        except GuestError:
            unavailable[name] = {"unavailable_storages": sorted(
                {parse_volume_id(d["file"])[0] for d in store.drives(conf.main.options).values()
                 if ":" in d.get("file", "") and not storage_config.available_on(
                     storage_config.get(parse_volume_id(d["file"])[0]), name)})}
    out: dict[str, Any] = {"running": int(running), "local_disks": disks, "local_resources": [],
                           "mapped-resources": [], "mapped-resource-info": {}, "has-dbus-vmstate": 0}
    if not running:
        out["allowed_nodes"] = allowed
        out["not_allowed_nodes"] = unavailable
    if target is not None:
        out["allowed_nodes"] = [n for n in allowed if n == target]
    return out


def duration(since: float) -> str:
    seconds = int(time.monotonic() - since)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def stamped(log: Log) -> Log:
    """Migration logs carry a timestamp on each line, as QemuMigrate's do."""
    return lambda line: log(time.strftime("%Y-%m-%d %H:%M:%S ") + line)


def mib(value: float) -> str:
    return f"{value / 1024 / 1024:.1f} MiB"


def migrate(node: str, vmid: int, target: str, online: bool, params: dict[str, Any], task_log: Log) -> None:
    log = stamped(task_log)
    started = time.monotonic()
    target_ip = node_ip(target)
    try:
        with store.locked(vmid):
            conf = store.load(node, vmid)
            store.check_lock(conf)
            if remote(target, "/bin/true", timeout=30).returncode != 0:
                raise GuestError("Can't connect to destination address using public key")
            replication.check(vmid, target, online, bool(params.get("force")))
            if online and replication.job_to(vmid, target):
                raise GuestError("live migration of a VM with replicated disks is not built in the lab twin "
                                 "(PVE mirrors what changed since the replication): shut it down and migrate "
                                 "offline, which sends only that")
            volumes = scan(conf.main.options, online, params, log)
            log(f"starting migration of VM {vmid} to node '{target}' ({target_ip})")
            conf.main.options["lock"] = "migrate"
            store.save(node, vmid, conf)
    except Exception as exc:
        log(f"ERROR: migration aborted (duration {duration(started)}): {exc}")
        raise GuestError("migration aborted") from exc
    # Online, attached local disks go by NBD mirror while the VM runs; the rest is copied first.
    # Volumes a replication job keeps on the target get a replication run instead (what changed).
    mirrored = [v for v, i in volumes.items() if online and not i["cloudinit"]]
    copied: list[str] = []
    replicated: set[str] = set()
    try:
        replicated = replication.replicate_first(vmid, target, log)
        copied = copy_disks({v: i for v, i in volumes.items() if v not in mirrored and v not in replicated},
                            target, log)
        if online:
            live(node, vmid, target, log, mirrored)
    except Exception as exc:
        log(f"ERROR: online migrate failure - {exc}" if online else f"ERROR: {exc}")
        log("aborting phase 2 - cleanup resources" if online else "aborting phase 1 - cleanup resources")
        if online:
            remote(target, f"qm stop {vmid} --skiplock --migratedfrom {node}")
        for volid in [*copied, *mirrored]:
            remote(target, f"pvesm free {volid}")
        store.set_lock(node, vmid, None)
        log(f"ERROR: migration aborted (duration {duration(started)}): {exc}")
        raise GuestError("migration aborted") from exc
    store.set_lock(node, vmid, None, move_to=target)
    if replicated:  # the old node keeps them as the replica; the job now replicates back to it
        replication.hand_over(vmid, node, target)
    if mirrored:  # the target waited paused for its disks: they are complete, it runs now
        resumed = remote(target, f"qm resume {vmid} --nocheck")
        if resumed.returncode != 0:
            log(f"ERROR: unable to resume VM {vmid} on '{target}': {resumed.stderr.strip()}")
    if online:
        with contextlib.suppress(qmp.QmpError):
            qmp.command(vmid, "quit", timeout=2)
        poll(lambda: runtime.pid_of(vmid) is None or None, timeout=10, interval=0.05)
        runtime.cleanup(vmid)
    free_source_copies([*copied, *mirrored])
    log(f"migration finished successfully (duration {duration(started)})")


def free_source_copies(volids: list[str]) -> None:
    """The source's volumes, once the target has its own copies (one already gone is no error)."""
    for volid in volids:
        with contextlib.suppress(storage_config.StorageError, OSError):
            storage, volname = volume_backend(volid)
            storage.free(volname)


def scan(options: dict[str, str], online: bool, params: dict[str, Any], log: Log) -> dict[str, dict[str, Any]]:
    volumes = local_volumes(options)
    errors = []
    for volid, info in sorted(volumes.items()):
        if info.get("path"):
            errors.append((volid, "local file/device"))
        elif info["cloudinit"]:
            log(f"found generated disk '{volid}' (in current VM config)")
        elif info["cdrom"]:
            errors.append((volid, "local cdrom image"))
        elif online and not params.get("with-local-disks"):
            errors.append((volid, "can't live migrate attached local disks without with-local-disks option"))
        else:
            log(f"found local disk '{volid}' ({'unused' if info['key'].startswith('unused') else 'attached'})")
    for volid, message in errors:
        log(f"can't migrate local disk '{volid}': {message}")
    if errors:
        raise GuestError("can't migrate VM - check log")
    return volumes


def copy_disks(volumes: dict[str, dict[str, Any]], target: str, log: Log) -> list[str]:
    """Each local volume copied to the same storage on the target (sparse, as `pvesm export` sends
    it); cloud-init drives too, as PVE copies the generated ISO."""
    copied = []
    if volumes:
        log("copying local disk images")
    for volid in sorted(volumes):
        sid = parse_volume_id(volid)[0]
        source = volume_path(volid).resolve()
        receive = (f"mkdir -p {source.parent} && tar -C {source.parent} -xSf - && "
                   f"pvesm path {volid} >/dev/null")
        names = [source.name, *([f".{source.name}.size"] if (source.parent / f".{source.name}.size").exists()
                                else [])]  # an emulated thin volume's recorded size goes with it
        sender = subprocess.Popen(["tar", "-C", str(source.parent), "-cSf", "-", *names], stdout=subprocess.PIPE)
        received = subprocess.run([*ssh_command(target), receive], stdin=sender.stdout, capture_output=True,
                                  text=True, check=False)
        sender.wait()
        if sender.returncode != 0 or received.returncode != 0:
            raise GuestError(f"storage migration for '{volid}' to storage '{sid}' failed - "
                             f"{received.stderr.strip() or 'tar failed'}")
        log(f"volume '{volid}' is '{volid}' on the target")
        copied.append(volid)
    return copied


def live(node: str, vmid: int, target: str, log: Log, mirrored: list[str]) -> None:
    log(f"starting VM {vmid} on remote node '{target}'")
    storage = " --targetstorage 1" if mirrored else ""  # PVE's identity map: each disk on its own storage id
    started = remote(target, f"qm start {vmid} --skiplock --migratedfrom {node} --migration_type insecure "
                             f"--stateuri tcp{storage}")
    found = re.search(r"migration listens on (tcp:[\d.]+:\d+)", started.stdout)
    if started.returncode != 0 or not found:
        raise GuestError(f"remote command failed with exit code {started.returncode}: "
                         f"{(started.stderr or started.stdout).strip()}")
    uri = found.group(1)
    exports = dict(re.findall(r"storage migration listens on (nbd:\S+) volume:(\S+)", started.stdout))
    if mirrored:
        mirror_disks(vmid, {volid: uri for uri, volid in exports.items()}, mirrored, log)
    log(f"starting online/live migration on {uri}")
    log("set migration capabilities")
    qmp.command(vmid, "migrate-set-capabilities", capabilities=[
        {"capability": "xbzrle", "state": False}, {"capability": "auto-converge", "state": True}])
    log(f"migration downtime limit: {DOWNTIME_LIMIT_MS} ms")
    qmp.command(vmid, "migrate-set-parameters", **{"downtime-limit": DOWNTIME_LIMIT_MS})
    log(f"start migrate command to {uri}")
    qmp.command(vmid, "migrate", uri=uri)
    began, last_logged = time.monotonic(), 0.0
    while True:
        time.sleep(0.1)
        state = qmp.command(vmid, "query-migrate")
        status = state.get("status")
        ram = state.get("ram", {})
        if status == "completed":
            speed = ram.get("transferred", 0) / max(state.get("total-time", 1) / 1000, 0.001)
            log(f"average migration speed: {mib(speed)}/s - downtime {state.get('downtime', 0)} ms")
            log("migration status: completed")
            if mirrored:
                complete_mirrors(vmid, log)
            return
        if status in ("failed", "cancelled"):
            raise GuestError(f"aborting phase 2 - migration status: {status} {state.get('error-desc', '')}".strip())
        if time.monotonic() - last_logged >= 1 and status == "active":
            last_logged = time.monotonic()
            log(f"migration active, transferred {mib(ram.get('transferred', 0))} of {mib(ram.get('total', 0))} "
                f"VM-state, {mib(ram.get('mbps', 0) * 1024 * 1024 / 8)}/s")
        if time.monotonic() - began > 600:
            raise GuestError("migration timed out")


def migrate_container(node: str, vmid: int, target: str, running: bool, timeout: float, task_log: Log) -> None:
    """pve-container's migration in restart mode: shut the CT down, copy its local volumes, move
    the config, start it on the target."""
    from pvelab.pve.guests import containers

    log = stamped(task_log)
    started = time.monotonic()
    if remote(target, "/bin/true", timeout=30).returncode != 0:
        log(f"ERROR: migration aborted (duration {duration(started)}): Can't connect to destination address "
            "using public key")
        raise GuestError("migration aborted")
    log(f"starting migration of CT {vmid} to node '{target}' ({node_ip(target)})")
    conf = store.set_lock(node, vmid, "migrate", "lxc")
    local = [v for v in containers.volumes_of(conf.main.options)
             if not storage_config.is_shared(storage_config.get(parse_volume_id(v)[0]))]
    try:
        if running:
            log(f"shutdown CT {vmid}")
            containers.shutdown(vmid, timeout, force_stop=True)
        for volid in local:
            log(f"found local volume '{volid}' (in current VM config)")
        copied = copy_disks({v: {} for v in local}, target, log)
    except Exception as exc:
        store.set_lock(node, vmid, None, "lxc")
        log(f"ERROR: migration aborted (duration {duration(started)}): {exc}")
        raise GuestError("migration aborted") from exc
    store.set_lock(node, vmid, None, "lxc", move_to=target)
    free_source_copies(copied)
    if running:
        log("start container on target node")
        restarted = remote(target, f"pct start {vmid}")
        if restarted.returncode != 0:
            raise GuestError(f"CT {vmid} moved to '{target}' but did not start there: {restarted.stderr.strip()}")
    log(f"migration finished successfully (duration {duration(started)})")


def mirror_disks(vmid: int, exports: dict[str, str], mirrored: list[str], log: Log) -> None:
    """Each local disk mirrored into the target's NBD export until all jobs are ready (in sync)."""
    drives = {d["file"]: key for key, d in store.drives(store.load(nodename(), vmid).main.options).items()}
    log("starting storage migration")
    for volid in mirrored:
        if volid not in exports:
            raise GuestError(f"no NBD export on the target for '{volid}'")
        key = drives[volid]
        log(f"{key}: start migration to {exports[volid]}")
        mirror: dict[str, Any] = {"device": f"drive-{key}", "target": exports[volid], "sync": "full",
                                  "mode": "existing", "format": "raw", "job-id": f"drive-{key}"}
        qmp.command(vmid, "drive-mirror", **mirror)
    logged = 0.0
    while True:
        jobs = qmp.command(vmid, "query-block-jobs")
        if jobs and all(job.get("ready") for job in jobs):
            log("all 'mirror' jobs are ready")
            return
        if not jobs:
            raise GuestError("mirror job ended before it was ready")
        if time.monotonic() - logged >= 1:
            logged = time.monotonic()
            for job in jobs:
                done, total = job.get("offset", 0), max(job.get("len", 1), 1)
                log(f"{job['device']}: transferred {mib(done)} of {mib(total)} ({done * 100 / total:.2f}%)")
        time.sleep(0.2)


def complete_mirrors(vmid: int, log: Log) -> None:
    """With the source stopped, each ready mirror ends with its target in sync (block-job-cancel
    on a ready mirror completes it without switching the source over)."""
    for job in qmp.command(vmid, "query-block-jobs"):
        qmp.command(vmid, "block-job-cancel", device=job["device"])
    if poll(lambda: not qmp.command(vmid, "query-block-jobs") or None, timeout=60, interval=0.1) is None:
        raise GuestError("mirror jobs did not complete")
    log("mirror jobs completed")


def allocate_received_disks(vmid: int, source: str, log: Log) -> list[tuple[str, str]]:
    """On the target: a volume for each attached local disk of the VM, named as on the source
    (PVE's identity storage map); [(drive key, volid)]."""
    options = store.load(source, vmid).main.options
    made = []
    for volid, info in sorted(local_volumes(options).items()):
        if info["cdrom"] or info["cloudinit"] or info.get("path") or info["key"].startswith("unused"):
            continue
        sid, volname = parse_volume_id(volid)
        drive = store.drives(options)[info["key"]]
        size_kib = store.size_bytes(drive.get("size", "0")) // 1024
        name = volname.split("/")[-1]
        backend(sid, storage_config.get(sid)).alloc(vmid, name, size_kib, None)
        log(f"volume '{volid}' is '{volid}' on the target")
        made.append((info["key"], volid))
    return made


def export_disks(vmid: int, volumes: list[tuple[str, str]], incoming: str, log: Log) -> None:
    """The new disks as NBD exports the source mirrors into, next to the migration port."""
    address = incoming.split(":")[1]
    port = next(p for p in MIGRATION_PORTS if f":{p}" not in incoming and port_free(address, p))
    qmp.command(vmid, "nbd-server-start", addr={"type": "inet", "data": {"host": address, "port": str(port)}})
    # by device name (-drive), or by the top node's own name (-blockdev: the device has none)
    nodes = {b.get("device") or b.get("inserted", {}).get("node-name"): b.get("inserted", {}).get("node-name")
             for b in qmp.command(vmid, "query-block")}
    for key, volid in volumes:
        export: dict[str, Any] = {"type": "nbd", "id": f"drive-{key}", "name": f"drive-{key}", "writable": True,
                                  "node-name": nodes[f"drive-{key}"]}
        qmp.command(vmid, "block-export-add", **export)
        log(f"storage migration listens on nbd:{address}:{port}:exportname=drive-{key} volume:{volid}")


def port_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True
