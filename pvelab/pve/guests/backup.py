"""vzdump and qmrestore for VMs: a VMA archive of the config and the disks, in PVE's file naming
(`vzdump-qemu-VMID-YYYY_MM_DD-HH_MM_SS.vma[.zst|.gz|.lzo]` and its `.log`) on a storage holding
backups, with PVE's mode semantics: `stop` shuts the guest down and starts it again, `suspend`
pauses its QEMU while the disks are read, `snapshot` leaves it running (QEMU's own backup job
copies the disks as they were when it began)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from pvelab.poll import poll
from pvelab.pve.access import store as access_store
from pvelab.pve.cluster import corosync_conf
from pvelab.pve.guests import qmeventd, qmp, runtime, store, vma
from pvelab.pve.guests.config import Section, VmConfig, dump, parse
from pvelab.pve.guests.migrate import duration
from pvelab.pve.guests.store import GuestError
from pvelab.pve.guests.vm_ops import start_vm  # the API's own: quorum, pending changes
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage import prune
from pvelab.pve.storage.config import StorageError
from pvelab.pve.storage.volname import get_subdir
from pvelab.pve.storage.volumes import backend, parse_volume_id, prune_backups, volume_path

Log = Callable[[str], None]
COMPRESSORS = {"zstd": (".zst", ["zstd", "-q", "-c"], ["zstd", "-q", "-d", "-c"]),
               "gzip": (".gz", ["gzip", "-c"], ["gzip", "-d", "-c"]),
               "lzo": (".lzo", ["lzop", "-c"], ["lzop", "-d", "-c"]),
               "0": ("", ["cat"], ["cat"])}


def dump_dir(storage_id: str, node: str) -> Path:
    options = storage_config.get(storage_id)
    if "backup" not in storage_config.content_of(options):
        raise GuestError(f"storage '{storage_id}' does not support backups", param="storage", status=400)
    if not storage_config.available_on(options, node):
        raise GuestError(f"storage '{storage_id}' is not available on node '{node}'")
    return Path(get_subdir(options, "backup"))


def disks_of(options: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    """(key, volid, drive) of each disk vzdump includes: not CD-ROMs, cloud-init or backup=0."""
    return [(key, d["file"], d) for key, d in sorted(store.drives(options).items())
            if not store.is_cdrom(d) and d.get("backup", "1") != "0" and ":" in d.get("file", "")]


def archive_config(raw: str, disks: list[tuple[str, str, dict[str, str]]], info: Log) -> str:
    """qemu-server.conf as vzdump's assemble writes it into the archive: the config's main section
    without its lock, parent and unusedN, then a `#qmdump#map` line per disk (the device, its storage
    and format, which the restore reads); what was left out is said."""
    out: list[str] = []
    found = {"snapshot": False, "pending": False, "special": False}
    for line in raw.splitlines(keepends=True):
        if line.startswith(("#vzdump#", "#qmdump#")):
            continue
        section = re.match(r"^\[(.*)\]\s*$", line)
        if section:
            kind = "pending" if section.group(1).upper() == "PENDING" else \
                "special" if section.group(1).startswith("special:") else "snapshot"
            found[kind] = True
        if any(found.values()):
            continue  # snapshots, pending changes and special sections stay out
        unused = re.match(r"^unused\d+:\s*(\S+)\s*", line)
        if unused:
            info(f"skip unused drive '{unused.group(1)}' (not included into backup)")
            continue
        if not line.startswith(("lock:", "parent:")):
            out.append(line)
    for key, volid, _drive in disks:
        sid, volname = parse_volume_id(volid)
        options = storage_config.get(sid)
        fmt = backend(sid, options).volume_format(volname) if options.get("path") else ""
        out.append(f"#qmdump#map:{key}:drive-{key}:{sid}:{fmt}:\n")
    for kind, text in (("special", "special config section"), ("snapshot", "snapshots"),
                       ("pending", "pending configuration changes")):
        if found[kind]:
            info(f"{text} found (not included into backup)")
    return "".join(out)


def restore_update_config_line(cookie: dict[str, int], disk_map: dict[str, str], line: str, unique: bool) -> str:
    """qemu-server's restore_update_config_line: what a line of the archived config becomes in the
    restored VM's - the map and dump lines, lock, unusedN and parent dropped; each disk pointed at its
    new volume (its format may change, so none is kept); a disk not backed up kept as a comment; a new
    vmgenid; with `unique`, new MAC addresses and a new SMBIOS UUID; 1.x `vlanN` lines as NICs."""
    if re.match(r"^#(qmdump|vzdump)#", line) or re.match(r"^(lock|parent|unused\d+):", line):
        return ""
    vlan = re.match(r"^(vlan(\d+)):\s*(\S+)\s*$", line)
    net = re.match(r"^(net\d+):\s*(\S+)\s*$", line)
    drive = re.match(r"^((ide|scsi|virtio|sata|efidisk|tpmstate)\d+):\s*(\S+)\s*$", line)
    if vlan:
        out = ""
        for devconfig in re.split(r"[,;\s]+", vlan.group(3)):
            model, _sep, mac = devconfig.partition("=")
            nic = {"model": model, "bridge": f"vmbr{vlan.group(2)}",
                   "macaddr": store.random_mac() if not mac or unique else mac}
            out += f"net{cookie['netcount']}: {store.print_net(nic)}\n"
            cookie["netcount"] += 1
        return out
    if net and unique:
        nic = store.parse_net(net.group(2))
        if nic.get("macaddr"):
            nic["macaddr"] = store.random_mac()
        return f"{net.group(1)}: {store.print_net(nic)}\n"
    if drive:
        disk = store.parse_drive(drive.group(3))
        if disk.get("backup") == "0":
            return f"#{line}"
        if drive.group(1) in disk_map:
            disk.pop("format", None)  # the format can change on restore
            disk["file"] = disk_map[drive.group(1)]
            return f"{drive.group(1)}: {store.print_drive(disk)}\n"
        return line
    vmgenid = re.match(r"^vmgenid: (.*)", line)
    if vmgenid:
        return f"vmgenid: {vmgenid.group(1) if vmgenid.group(1) == '0' else uuid.uuid4()}\n"
    smbios = re.match(r"^(smbios1: )(.*)", line)
    if smbios and unique:
        props = store.parse_props(smbios.group(2))
        props["uuid"] = str(uuid.uuid4())
        return f"{smbios.group(1)}{store.print_props(props)}\n"
    return line


def check_vmids(vmids: list[str]) -> list[int]:
    """VZDump's check_vmids: numbers, sorted, leading zeros and 0 dropped."""
    out = []
    for vmid in sorted(vmids, key=lambda v: int(v) if v.isdigit() else -1):
        if not re.fullmatch(r"\d+", vmid):
            raise GuestError(f"ERROR: strange VM ID '{vmid}'")
        if int(vmid):
            out.append(int(vmid))
    return out


def exclude_means_all(params: dict[str, Any]) -> dict[str, Any]:
    """verify_vzdump_parameters: an exclude list (without a pool) means every guest but those."""
    return {**params, "all": 1} if params.get("exclude") is not None and not params.get("pool") else params


def included_guests(job: dict[str, Any], vmlist: dict[int, dict[str, Any]], pool_members: Callable[[str], list[int]]
                    ) -> dict[str, list[int]]:
    """VZDump's get_included_guests: {node: VMIDs} a job (or a vzdump call) covers - a pool's members,
    the VMIDs named, or every guest but the excluded; held to `node` when it names one. A VMID no node
    holds is listed under '' (the backup then fails for it, visibly)."""
    def split(text: Any) -> list[str]:
        return [v for v in re.split(r"[,;\s]+", str(text or "")) if v]

    if job.get("pool"):
        vmids = [str(v) for v in pool_members(str(job["pool"]))]
    elif job.get("vmid"):
        vmids = split(job["vmid"])
    elif job.get("all") not in (None, 0, "0", False):
        excluded = set(check_vmids(split(job.get("exclude"))))
        vmids = [str(v) for v in vmlist if v not in excluded]
    else:
        return {}
    per_node: dict[str, list[int]] = {}
    for vmid in check_vmids(vmids):
        node = str(vmlist[vmid]["node"]) if vmid in vmlist else ""
        if node and job.get("node") and job["node"] != node:
            continue
        per_node.setdefault(node, []).append(vmid)
    return per_node


def pool_members(pool: str) -> list[int]:
    """get_resource_pool_guest_members: the pool's guests that exist."""
    vms = store.vmlist()
    return [vmid for vmid, member_of in access_store.read().vms.items() if member_of == pool and vmid in vms]


def human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


@contextlib.contextmanager
def held(node: str, vmid: int, mode: str, stopwait_minutes: float, info: Log) -> Iterator[bool]:
    """The guest as the mode wants it while its disks are read (stopped, paused or running), and
    back as it was afterwards; yields whether QEMU runs (snapshot mode reads through QEMU)."""
    running = runtime.pid_of(vmid) is not None
    if running and mode == "stop":
        info("stopping virtual guest")
        runtime.shutdown(vmid, info, timeout=stopwait_minutes * 60, force_stop=False)
    elif running and mode == "suspend":
        info("suspending guest")
        qmp.command(vmid, "stop")
    try:
        yield running and mode == "snapshot"
    finally:
        if running and mode == "suspend":
            info("resuming VM again")
            with contextlib.suppress(qmp.QmpError):
                qmp.command(vmid, "cont")
        if running and mode == "stop":
            # with the backup lock still held (the caller drops it), as vzdump does: the `qm cleanup`
            # qmeventd ran for the QEMU that stopped sees it, and leaves the one started here alone
            info("restarting vm")
            start_vm(node, vmid, lambda _line: None, skiplock=True)


PVE_COROSYNC = Path("/etc/pve/corosync.conf")


def retention(params: dict[str, Any]) -> dict[str, int]:
    """The job's `prune-backups`, else the storage's, else keep-all (vzdump's default)."""
    given = params.get("prune-backups") or storage_config.get(params.get("storage", "local")).get("prune-backups")
    try:
        return prune.parse_options(str(given)) if given else {"keep-all": 1}
    except StorageError as exc:
        raise GuestError(str(exc), param="prune-backups", status=400) from exc


def check_notes_template(template: str) -> None:
    """vzdump's rule: one line, escapes \\n and \\\\ only, variables cluster, guestname, node, vmid."""
    if "\n" in template:
        raise GuestError("contains a line feed", param="notes-template", status=400)
    problems = [f"escape sequence '\\{m.group(1)}' at char {m.start()}"
                for m in re.finditer(r"\\(.)", template) if m.group(1) not in ("n", "\\")]
    problems += [f"variable '{m.group(1)}' at char {m.end() - len(m.group(1))}"  # where vzdump says it is
                 for m in re.finditer(r"\{\{([^\s{}]+)\}\}", template)
                 if m.group(1) not in ("cluster", "guestname", "node", "vmid")]
    if problems:
        raise GuestError(f"found unknown: {', '.join(problems)}", param="notes-template", status=400)


def notes_from(template: str, node: str, vmid: int, guest_name: str) -> str:
    check_notes_template(template)
    try:
        cluster = corosync_conf.cluster_name(corosync_conf.parse(PVE_COROSYNC.read_text())) or "standalone node"
    except OSError:
        cluster = "standalone node"
    values = {"cluster": cluster, "guestname": guest_name, "node": node, "vmid": str(vmid)}
    text = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else "\\", template)
    return re.sub(r"\{\{(cluster|guestname|node|vmid)\}\}", lambda m: values[m.group(1)], text)


def marks_protected(params: dict[str, Any]) -> bool:
    """vzdump's `--protected 1`."""
    return str(params.get("protected", "0")) in ("1", "True", "true")


def keeps_old_backups(params: dict[str, Any]) -> bool:
    """vzdump's `--remove 0`: nothing is pruned after the backup."""
    return str(params.get("remove", "1")) in ("0", "False", "false")


def check_backup_limits(params: dict[str, Any], vmid: int, kind: str) -> None:
    """vzdump's refusals before a guest's backup: with `--remove 0`, no room under the policy's total
    for another backup; with `--protected 1`, the guest's protected backups at the storage's limit
    (`max-protected-backups`; unset: 5, or none for a caller with Datastore.Allocate - the API passes
    what applies as `max-protected-backups`)."""
    keep = retention(params)
    limit = 0 if keep.get("keep-all") else sum(keep.values())
    protect = marks_protected(params)
    if not protect and not (limit and keeps_old_backups(params)):
        return
    storage = params.get("storage", "local")
    backups = [v for v in backend(storage, storage_config.get(storage)).volumes() if v.get("content") == "backup"
               and v.get("vmid") == vmid and v.get("subtype", kind) in (kind, "unknown")]
    protected = sum(1 for v in backups if v.get("protected"))
    if protect:
        max_protected = int(params.get("max-protected-backups", 5))
        if -1 < max_protected <= protected:
            raise GuestError(f"The number of protected backups per guest is limited to {max_protected} on storage "
                             f"'{storage}'")
    elif len(backups) - protected >= limit:
        raise GuestError(f"There is a max backup limit of {limit} enforced by the target storage or the vzdump "
                         "parameters. Either increase the limit or delete old backups.")


class BackupRun:
    """One guest's backup as vzdump writes it down: the archive's name and compressor from the
    job's options, INFO lines into the task log and the archive's own `.log`, and the closing lines
    both kinds of guest end with."""

    def __init__(self, node: str, vmid: int, kind: str, params: dict[str, Any], extension: str, log: Log) -> None:
        check_backup_limits(params, vmid, kind)
        compress = {"1": "lzo"}.get(str(params.get("compress", "0")), str(params.get("compress", "0")))
        suffix, self.compressor, _ = COMPRESSORS[compress]
        self.dir = dump_dir(params.get("storage", "local"), node)
        stem = f"vzdump-{kind}-{vmid}-{time.strftime('%Y_%m_%d-%H_%M_%S')}"
        self.archive, self.log_file = self.dir / f"{stem}.{extension}{suffix}", self.dir / f"{stem}.log"
        self.vmid, self.began, self.log = vmid, time.monotonic(), log
        self.node, self.kind, self.params = node, kind, params
        self.lines: list[str] = []
        self(f"Starting Backup of VM {vmid} ({kind})")
        self(f"Backup started at {time.strftime('%Y-%m-%d %H:%M:%S')}")

    def __call__(self, line: str) -> None:
        self.lines.append(f"INFO: {line}")
        self.log(f"INFO: {line}")

    def warn(self, line: str) -> None:
        self.lines.append(f"WARN: {line}")
        self.log(f"WARN: {line}")

    def keep_policy(self, guest_name: str) -> None:
        """After the archive, as vzdump: its notes, its protection, then the guest's older backups pruned."""
        storage, volname = self.params.get("storage", "local"), f"backup/{self.archive.name}"
        store = backend(storage, storage_config.get(storage))
        if self.params.get("notes-template"):
            self("adding notes to backup")
            try:
                notes = notes_from(str(self.params["notes-template"]), self.node, self.vmid, guest_name)
                store.set_attribute(volname, "notes", notes)
            except (GuestError, StorageError, OSError) as exc:
                self.log(f"WARN: unable to add notes - {exc}")
        if marks_protected(self.params):
            self("marking backup as protected")
            store.set_attribute(volname, "protected", 1)
        keep = retention(self.params)
        if keep.get("keep-all") or keeps_old_backups(self.params):
            return
        self(f"prune older backups with retention: {', '.join(f'{k}={v}' for k, v in sorted(keep.items()))}")
        marked = prune_backups(storage, keep, self.vmid, self.kind, dry_run=False, log=self)
        pruned = sum(1 for entry in marked if entry["mark"] == "remove")
        self(f"pruned {pruned} backup(s)" + (" not covered by keep-retention policy" if pruned else ""))

    def config_text(self, conf: VmConfig) -> str:
        """The config as the archive keeps it: without the backup's own lock."""
        return dump(VmConfig(main=conf.main)).replace("lock: backup\n", "")

    def finish(self, guest_name: str) -> Path:
        self(f"archive file size: {human(self.archive.stat().st_size)}")
        self.keep_policy(guest_name)
        self(f"Finished Backup of VM {self.vmid} ({duration(self.began)})")
        self(f"Backup finished at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.log_file.write_text("\n".join(self.lines) + "\n")
        return self.archive


def vzdump(node: str, vmid: int, params: dict[str, Any], log: Log) -> Path:
    mode = params.get("mode", "snapshot")
    info = BackupRun(node, vmid, "qemu", params, "vma", log)
    store.set_lock(node, vmid, "backup")
    temporaries: list[Path] = []
    try:
        options = store.load(node, vmid).main.options
        info(f"status = {'running' if runtime.pid_of(vmid) is not None else 'stopped'}")
        info(f"VM Name: {options.get('name', '')}")
        for key, volid, drive in disks_of(options):
            info(f"include disk '{key}' '{volid}' {drive.get('size', '')}")
        info(f"backup mode: {mode}")
        with held(node, vmid, mode, float(params.get("stopwait") or 10), info) as live, \
                qmeventd.backup_running(vmid, info.warn) if live else contextlib.nullcontext():
            sources = disk_sources(vmid, options, live, temporaries)
            info.dir.mkdir(parents=True, exist_ok=True)
            info(f"creating vzdump archive '{info.archive}'")
            config = archive_config(store.config_path(node, vmid).read_text(), disks_of(options), info)
            figures = write_archive(info.archive, info.compressor, sources, config)
    finally:
        for path in temporaries:
            path.unlink(missing_ok=True)
        with contextlib.suppress(GuestError):
            store.set_lock(node, vmid, None)
    seconds = max(time.monotonic() - info.began, 0.001)
    info(f"transferred {human(figures['read'])} in {int(seconds)} seconds ({human(int(figures['read'] / seconds))}/s)")
    if figures["read"]:
        share = figures["zero"] * 100 // figures["read"]
        info(f"backup is sparse: {human(figures['zero'])} ({share}%) total zero data")
    return info.finish(options.get("name") or f"VM {vmid}")


def write_archive(archive: Path, compressor: list[str], sources: list[tuple[str, Path]], config_text: str
                  ) -> dict[str, int]:
    """The VMA stream through the compressor into ARCHIVE.tmp, renamed when complete."""
    partial = archive.with_suffix(archive.suffix + ".tmp")
    with open(partial, "wb") as raw, contextlib.ExitStack() as stack:
        packer = subprocess.Popen(compressor, stdin=subprocess.PIPE, stdout=raw)
        assert packer.stdin is not None
        disks: list[tuple[vma.Device, IO[bytes]]] = [
            (vma.Device(f"drive-{key}", path.stat().st_size), stack.enter_context(open(path, "rb")))
            for key, path in sources]
        try:
            figures = vma.write(packer.stdin, {"qemu-server.conf": config_text.encode()}, disks)
        finally:
            packer.stdin.close()
            packer.wait()
    if packer.returncode != 0:
        partial.unlink(missing_ok=True)
        raise GuestError(f"compressor '{compressor[0]}' failed with exit code {packer.returncode}")
    partial.replace(archive)
    return figures


def disk_sources(vmid: int, options: dict[str, str], live: bool, temporaries: list[Path]) -> list[tuple[str, Path]]:
    """Each disk's file to read. For a running guest in snapshot mode, QEMU's backup job copies the
    disk as it was when the job began into a scratch file, while the guest goes on writing."""
    out = []
    for key, volid, _drive in disks_of(options):
        source = runtime.volume_path(volid)
        network = is_network_volume(source)  # an RBD image: no file to read, QEMU's tools reach it
        path = Path(source) if network else Path(source).resolve()
        if live or network:
            scratch = Path(tempfile.mkstemp(prefix=f"vzdump-{vmid}-{key}-", dir="/var/tmp")[1])
            temporaries.append(scratch)
        if live:
            os.truncate(scratch, volume_size(source))  # the job writes into an image of the disk's size
            job: dict[str, Any] = {"job-id": f"drive-{key}"}  # named: with -blockdev QEMU cannot name it
            qmp.command(vmid, "drive-backup", device=f"drive-{key}", target=str(scratch), sync="full",
                        format="raw", mode="existing", **job)
            if poll(lambda: not qmp.command(vmid, "query-block-jobs") or None, timeout=600, interval=0.2) is None:
                raise GuestError(f"backup of drive-{key} did not finish")
            path = scratch
        elif network:
            copy_image(source, str(scratch))
            path = scratch
        out.append((key, path))
    return out


def is_network_volume(path: str) -> bool:
    return path.startswith("rbd:")


def volume_size(path: str) -> int:
    if not is_network_volume(path):
        return Path(path).resolve().stat().st_size
    info = subprocess.run(["qemu-img", "info", "--output=json", "-f", "raw", path], capture_output=True, text=True,
                          check=False)
    if info.returncode != 0:
        raise GuestError(f"unable to read the size of '{path}': {info.stderr.strip()}")
    return int(json.loads(info.stdout)["virtual-size"])


def copy_image(source: str, target: str, existing: bool = False) -> None:
    """A raw copy through qemu-img (it opens rbd: images through librbd); `existing`: into an allocated image."""
    done = subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", *(["-n"] if existing else []),
                           source, target], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise GuestError(f"copying '{source}' failed: {done.stderr.strip()}")


# -- restore --------------------------------------------------------------------------------------
def archive_path(archive: str) -> Path:
    if archive.startswith("/"):
        return Path(archive)
    return volume_path(archive)


def open_archive(path: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    unpack = next((unpack for name, (suffix, _, unpack) in COMPRESSORS.items()
                   if name != "0" and path.name.endswith(f".vma{suffix}")), ["cat"])
    reader = subprocess.Popen([*unpack, str(path)], stdout=subprocess.PIPE)
    assert reader.stdout is not None
    return reader, reader.stdout


def restore_target(target: str, name: str, size: int, network_targets: dict[Path, str]) -> Path:
    """The file a restored disk is written into: the volume's own, or for an RBD image a scratch file
    copied into it once complete (noted in `network_targets`)."""
    if not is_network_volume(target):
        return Path(target).resolve()
    scratch = Path(tempfile.mkstemp(prefix=f"qmrestore-{name}-", dir="/var/tmp")[1])
    os.truncate(scratch, size)
    network_targets[scratch] = target
    return scratch


def restore(node: str, vmid: int, archive: str, params: dict[str, Any], log: Log) -> None:
    """qmrestore: a new VM `vmid` from the archive, its disks on `storage` (or where they were)."""
    path = archive_path(archive)
    if not path.exists():
        raise GuestError(f"unable to restore VM {vmid} - archive '{archive}' does not exist")
    reader, stream = open_archive(path)
    network_targets: dict[Path, str] = {}  # scratch file -> the RBD image it is copied into at the end
    try:
        configs, devices, _ = vma.read_header(stream)
        archived = configs["qemu-server.conf"].decode()
        old_options = parse("".join(line for line in archived.splitlines(keepends=True)
                                    if not line.startswith("#qmdump#"))).main.options
        disk_map: dict[str, str] = {}
        targets: dict[int, Path] = {}
        for dev_id, device in enumerate(devices, start=1):
            key = device.name.removeprefix("drive-")
            sid = params.get("storage") or parse_volume_id(store.parse_drive(old_options[key])["file"])[0]
            store_options = storage_config.get(sid)
            volid = backend(sid, store_options).alloc(vmid, None, device.size // 1024, None)
            log(f"new volume ID is '{volid}'")
            disk_map[key] = volid
            targets[dev_id] = restore_target(runtime.volume_path(volid), f"{vmid}-{key}", device.size,
                                             network_targets)
        with contextlib.ExitStack() as stack:
            handles = {dev_id: stack.enter_context(open(target, "r+b")) for dev_id, target in targets.items()}
            for dev_id, offset, data in vma.extents(stream):
                handles[dev_id].seek(offset)
                handles[dev_id].write(data)
        for scratch, target in network_targets.items():
            copy_image(str(scratch), target, existing=True)
    finally:
        stream.close()
        reader.wait()
        for scratch in network_targets:
            scratch.unlink(missing_ok=True)
    cookie = {"netcount": 0}
    restored = parse("".join(restore_update_config_line(cookie, disk_map, line, bool(params.get("unique")))
                             for line in archived.splitlines(keepends=True)))
    options = restored.main.options
    for key, drive in store.drives(options).items():
        if store.is_cloudinit(drive):
            sid = parse_volume_id(drive["file"])[0]
            opts = storage_config.get(sid)
            name = f"vm-{vmid}-cloudinit" + (".qcow2" if opts["type"] == "dir" else "")
            drive["file"] = backend(sid, opts).alloc(vmid, name, 4096, None)
            options[key] = store.print_drive(drive)
    store.save(node, vmid, VmConfig(main=Section(options=options, description=restored.main.description)))
    log(f"restore vma archive: {path.name}")
