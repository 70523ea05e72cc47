"""vzdump and `pct restore` for containers: a tar of the root filesystem with the CT's config at
./etc/vzdump/pct.conf, named `vzdump-lxc-VMID-YYYY_MM_DD-HH_MM_SS.tar[.zst|.gz|.lzo]`, as
pve-container writes it. Modes as PVE: `stop` shuts the CT down and starts it again; `suspend`
copies the root filesystem while the CT runs, then freezes it for a second pass; `snapshot` takes a
snapshot named `vzdump` (the CT frozen meanwhile) where the storage has snapshots (the emulated
lvmthin) and archives that, and falls back to `suspend` with PVE's message where it has none."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.pve.guests import containers, snapshot, store
from pvelab.pve.guests.backup import BackupRun, archive_path
from pvelab.pve.guests.config import Section, VmConfig, parse
from pvelab.pve.guests.store import GuestError
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.config import StorageError
from pvelab.pve.storage.volumes import backend, parse_volume_id, volume_backend

Log = Callable[[str], None]
KIND = "lxc"
CONF_IN_ARCHIVE = "etc/vzdump/pct.conf"
VZDUMP_SNAPSHOT = "vzdump"  # the snapshot snapshot mode takes and removes


def rsync(source: Path, target: Path) -> None:
    done = subprocess.run(["rsync", "--stats", "-h", "-X", "-A", "--numeric-ids", "-aH", "--delete",
                           "--inplace", "--one-file-system", "--relative", f"{source}/./", str(target)],
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 24):  # 24: files vanished meanwhile, as the CT runs
        raise GuestError(f"rsync failed: {done.stderr.strip()}")


def copy_while_running(vmid: int, rootfs: Path, staging: Path, info: Log) -> Path:
    """PVE's suspend mode for a CT: a first copy while it runs, a second one while it is frozen."""
    info(f"starting first sync / to {staging}")
    rsync(rootfs, staging)
    info("suspending guest")
    containers.freeze(vmid, True)
    try:
        info(f"starting final sync / to {staging}")
        rsync(rootfs, staging)
    finally:
        containers.freeze(vmid, False)
        info("resume vm")
    return staging


def without_backup_lock(node: str, vmid: int, step: Callable[[], None]) -> None:
    """A snapshot step while the backup runs: the CT's `backup` lock set aside for it, as vzdump does."""
    store.set_lock(node, vmid, None, KIND)
    try:
        step()
    finally:
        store.set_lock(node, vmid, "backup", KIND)


def take_vzdump_snapshot(node: str, vmid: int, conf: VmConfig, world: snapshot.ContainerNode, info: Log) -> None:
    """The `vzdump` snapshot snapshot mode archives (one a failed backup left is removed first)."""
    guest = snapshot.Guest(node, vmid, KIND)
    if VZDUMP_SNAPSHOT in conf.snapshots:
        info(f"found old {VZDUMP_SNAPSHOT} snapshot (force removal)")
        without_backup_lock(node, vmid, lambda: snapshot.delete(guest, VZDUMP_SNAPSHOT, True, world, info))
    info(f"create storage snapshot '{VZDUMP_SNAPSHOT}'")
    without_backup_lock(node, vmid, lambda: snapshot.create(guest, VZDUMP_SNAPSHOT, False, "vzdump backup snapshot",
                                                            world, info))


def write_tar(source: Path, archive: Path, compressor: list[str], info: Log) -> None:
    partial = archive.with_name(archive.name + ".dat")
    with open(partial, "wb") as out:
        tar = subprocess.Popen(["tar", "cpf", "-", "--totals", "--one-file-system", "-p", "--sparse",
                                "--numeric-owner", "--xattrs", "-C", str(source), "."],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        packer = subprocess.run(compressor, stdin=tar.stdout, stdout=out, check=False)
        _, errors = tar.communicate()
    if tar.returncode != 0 or packer.returncode != 0:
        partial.unlink(missing_ok=True)
        raise GuestError(f"command 'tar cpf - ...' failed: {errors.decode().strip()}")
    for line in errors.decode().splitlines():
        if line.startswith("Total bytes"):
            info(line)
    partial.replace(archive)


def vzdump(node: str, vmid: int, params: dict[str, Any], log: Log) -> Path:
    mode = params.get("mode", "snapshot")
    info = BackupRun(node, vmid, KIND, params, "tar", log)
    conf = store.set_lock(node, vmid, "backup", KIND)
    running = containers.running(vmid)
    options = conf.main.options
    root_volid = store.parse_drive(options["rootfs"])["file"]
    rootfs = containers.volume_path(root_volid)
    info(f"status = {'running' if running else 'stopped'}")
    if options.get("hostname"):
        info(f"CT Name: {options['hostname']}")
    info("including mount point rootfs ('/') in backup")
    world = snapshot.ContainerNode(node)
    if mode == "snapshot" and not world.can_snapshot(options):
        info("mode failure - some volumes do not support snapshots")
        info("trying 'suspend' mode instead")
        mode = "suspend"
    info(f"backup mode: {mode}")
    staging = Path(tempfile.mkdtemp(prefix=f"vzdumptmp-{vmid}-", dir="/var/tmp"))
    snapshotted = False
    try:
        if running and mode == "stop":
            info("stopping virtual guest")
            containers.shutdown(vmid, float(params.get("stopwait") or 10) * 60, force_stop=False)
        if mode == "snapshot":
            take_vzdump_snapshot(node, vmid, conf, world, info)
            snapshotted = True
            holder, volname = volume_backend(root_volid)
            source = Path(holder.snapshot_source(volname, VZDUMP_SNAPSHOT)[0])
        else:
            source = copy_while_running(vmid, rootfs, staging, info) if running and mode == "suspend" else rootfs
        (source / "etc" / "vzdump").mkdir(parents=True, exist_ok=True)
        (source / CONF_IN_ARCHIVE).write_text(info.config_text(conf))
        info(f"creating vzdump archive '{info.archive}'")
        info.dir.mkdir(parents=True, exist_ok=True)
        write_tar(source, info.archive, info.compressor, info)
    finally:
        (rootfs / CONF_IN_ARCHIVE).unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        if snapshotted:
            info(f"cleanup temporary '{VZDUMP_SNAPSHOT}' snapshot")
            try:
                without_backup_lock(node, vmid, lambda: snapshot.delete(
                    snapshot.Guest(node, vmid, KIND), VZDUMP_SNAPSHOT, False, world, info))
            except (GuestError, StorageError) as exc:  # the next backup removes it, as PVE says
                info(f"snapshot '{VZDUMP_SNAPSHOT}' was not (fully) removed - {exc}")
        store.set_lock(node, vmid, None, KIND)
        if running and mode == "stop":
            info("restarting vm")
            containers.start(vmid, node, store.load(node, vmid, KIND), info)
    return info.finish(options.get("hostname") or f"CT {vmid}")


def archived_config(path: Path) -> str:
    """The ./etc/vzdump/pct.conf a container archive holds; tar's complaint when it holds none."""
    found = subprocess.run(["tar", "xOf", str(path), f"./{CONF_IN_ARCHIVE}"], capture_output=True, text=True,
                           check=False)
    if found.returncode != 0:
        raise GuestError(found.stderr.strip())
    return found.stdout


def restore(node: str, vmid: int, archive: str, params: dict[str, Any], log: Log) -> None:
    """`pct restore VMID ARCHIVE --storage S`: the CT's config from the archive's
    ./etc/vzdump/pct.conf, a new root filesystem volume, the archive unpacked straight into it."""
    path = archive_path(archive)
    if not path.exists():
        raise GuestError(f"unable to restore CT {vmid} - archive '{archive}' does not exist")
    try:
        old = parse(archived_config(path))
    except GuestError as exc:
        raise GuestError(f"unable to restore CT {vmid} - {exc}") from exc
    options = dict(old.main.options)
    rootfs = store.parse_drive(options["rootfs"])
    sid = params.get("storage") or parse_volume_id(rootfs["file"])[0]
    storage = storage_config.get(sid)
    if "rootdir" not in storage_config.content_of(storage):
        raise GuestError(f"storage '{sid}' does not support container directories")
    size_kib = store.size_bytes(rootfs.get("size", "4G"), "G") // 1024
    volid = backend(sid, storage).alloc_rootdir(vmid, size_kib)
    log(f"restoring '{path}' now..")
    target = containers.volume_path(volid)
    got = subprocess.run(["tar", "xpf", str(path), "--totals", "--sparse", "--numeric-owner", "-C", str(target)],
                         capture_output=True, text=True, check=False)
    if got.returncode != 0:
        raise GuestError(f"unable to restore CT {vmid} - {got.stderr.strip()}")
    (target / CONF_IN_ARCHIVE).unlink(missing_ok=True)
    log(next((line for line in got.stderr.splitlines() if line.startswith("Total bytes")), "restored"))
    rootfs["file"] = volid
    options["rootfs"] = store.print_drive(rootfs)
    if params.get("unique"):
        for key in [k for k in options if k.startswith("net") and k[3:].isdigit()]:
            net = store.parse_props(options[key])
            net["hwaddr"] = store.random_mac()
            options[key] = store.print_props(net)
    options.pop("lock", None)
    store.save(node, vmid, VmConfig(main=Section(options=options, description=old.main.description)), KIND)
