"""A VM's drives on the QEMU command line, as qemu-server writes them: from machine version 10.0 a
throttle group and a `-blockdev` JSON tree per drive (throttle, format and file nodes, PVE's hashed
node names, a qcow2 snapshot chain as backing nodes), before it the `-drive` form; and the guest
device each drive is attached to."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Protocol

from pvelab.pve.guests import qemu_version as versions
from pvelab.pve.guests.store import GuestError, is_cdrom, is_cloudinit, parse_drive

# the order qemu-server walks a config's drives in (Drive.pm's valid_drive_names)
DRIVE_ORDER = ([f"ide{i}" for i in range(4)] + [f"scsi{i}" for i in range(31)] + [f"virtio{i}" for i in range(16)]
               + [f"sata{i}" for i in range(6)] + ["efidisk0", "tpmstate0"])
MAX_SATA_DISKS = 6
NEW_DISK = re.compile(r"^(?:([^/:\s]+):)?(\d+(?:\.\d+)?)$")  # `local:4`: a disk still to allocate
THROTTLE_KINDS = (("", "-total"), ("_rd", "-read"), ("_wr", "-write"))


@dataclass
class Volume:
    """What the storage layer says of a volume ID."""
    storage: str
    options: dict[str, Any]  # the storage's storage.cfg section, `content` as a set
    vtype: str
    name: str  # the image's own name (parse_volname's second field)
    format: str
    path: str  # what `pvesm path` prints


class Storages(Protocol):
    def volume(self, volid: str) -> Volume: ...
    def is_device(self, path: str) -> bool: ...
    def snapshot_chain(self, volid: str) -> dict[str, dict[str, str]]: ...
    def cdrom_path(self) -> str: ...
    def has_ceph_keyring(self, storage: str) -> bool: ...


def is_device_file(path: str) -> bool:
    """A block or character device (what QEMU's host_device and host_cdrom drivers open)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISBLK(mode) or stat.S_ISCHR(mode)


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def drives_in_order(options: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    return [(key, parse_drive(options[key])) for key in DRIVE_ORDER if key in options]


def interface(key: str) -> tuple[str, int]:
    found = re.fullmatch(r"([a-z]+)(\d+)", key)
    assert found is not None
    return found.group(1), int(found.group(2))


def volume_id(file: str) -> str | None:
    """The volume ID a drive names, or None for a path, `cdrom` or `none`."""
    return file if re.match(r"^[a-zA-Z][\w\-.]*:", file) and not file.startswith("/") else None


def check_volume_storage_type(storages: Storages, options: dict[str, str]) -> None:
    """Every volume's storage must hold its content type (before anything else is done)."""
    for _key, drive in drives_in_order(options):
        volid = volume_id(drive.get("file", ""))
        if volid:
            volume = storages.volume(volid)
            if volume.vtype not in volume.options.get("content", set()):
                raise GuestError(f"storage '{volume.storage}' does not support content-type '{volume.vtype}'")


def cache_direct(drive: dict[str, str], storage: dict[str, Any] | None) -> bool:
    if drive.get("cache"):
        return drive["cache"] in ("off", "none", "directsync")
    return not is_cdrom(drive) and not (storage and storage.get("type") == "btrfs" and not storage.get("nocow"))


def aio(drive: dict[str, str], storage: dict[str, Any] | None, direct: bool) -> str:
    if drive.get("aio"):
        return drive["aio"]
    kind = storage.get("type") if storage else None
    uring = not (kind == "rbd" and storage and storage.get("krbd") in ("1", 1) and not direct) \
        and kind not in ("lvm", "cifs")
    return "io_uring" if uring else "native" if direct else "threads"


def detect_zeroes(drive: dict[str, str]) -> str:
    if drive.get("detect_zeroes") in ("0", "off"):
        return "off"
    if drive.get("discard"):
        return "unmap" if drive["discard"] == "on" else "on"
    return "on"


def node_name(kind: str, key: str, file: str, snapshot: str | None = None) -> str:
    info = f"drive={key}," + (f"snap={snapshot}," if snapshot is not None else "") + f"volid={file}"
    return {"file": "e", "fmt": "f", "zeroinit": "z", "alloc-track": "a"}[kind] + \
        hashlib.sha256(info.encode()).hexdigest()[:30]


def throttle_group(key: str, drive: dict[str, str]) -> dict[str, Any]:
    limits: dict[str, int] = {}
    for direction, name in THROTTLE_KINDS:
        for suffix, qmp in (("", ""), ("_max", "-max")):
            if drive.get(f"mbps{direction}{suffix}"):
                limits[f"bps{name}{qmp}"] = int(float(drive[f"mbps{direction}{suffix}"]) * 1024 * 1024)
        if drive.get(f"bps{direction}_max_length"):
            limits[f"bps{name}-max-length"] = int(drive[f"bps{direction}_max_length"])
        for suffix, qmp in (("", ""), ("_max", "-max"), ("_max_length", "-max-length")):
            if drive.get(f"iops{direction}{suffix}"):
                limits[f"iops{name}{qmp}"] = int(drive[f"iops{direction}{suffix}"])
    return {"id": f"throttle-drive-{key}", "limits": limits, "qom-type": "throttle-group"}


def common_options(node: dict[str, Any], drive: dict[str, str], read_only: bool) -> None:
    if not is_cdrom(drive):
        node["discard"] = "unmap" if drive.get("discard") == "on" else "ignore"
        node["detect-zeroes"] = detect_zeroes(drive)
    node["read-only"] = bool(drive.get("ro") in ("1", "on") or is_cdrom(drive) or read_only)


def storage_blockdev(volume: Volume, storages: Storages) -> dict[str, Any]:
    """pve-storage's qemu_blockdev_options for the storage types a VM's disk can be on."""
    kind, options = volume.options.get("type"), volume.options
    if kind == "rbd" and options.get("krbd") not in ("1", 1):
        node: dict[str, Any] = {"driver": "rbd", "pool": str(options.get("pool") or "rbd"), "image": volume.name}
        if options.get("namespace"):
            node["namespace"] = str(options["namespace"])
        keyring = storages.has_ceph_keyring(volume.storage)
        monhost = options.get("monhost")
        if monhost:  # an external cluster; without it, the hyperconverged one's config
            node["server"] = [{"host": host, "port": port or "3300"}
                              for host, port in (split_host_port(m) for m in re.split(r"[,; ]+", str(monhost)) if m)]
            node["auth-client-required"] = ["cephx" if keyring else "none"]
        else:
            node["conf"] = "/etc/pve/ceph.conf"
        if keyring:
            node["user"] = str(options.get("username") or "admin")
        return node
    if volume.path.startswith("iscsi://"):
        found = re.fullmatch(r"iscsi://(\S+)/(\S+)/(\d+)", volume.path)
        assert found is not None
        return {"driver": "iscsi", "portal": found.group(1), "target": found.group(2), "lun": int(found.group(3)),
                "transport": "tcp"}
    if kind == "nfs" and volume.path.startswith(str(options["path"]) + "/"):
        # not PVE's: QEMU opens a disk on NFS through its own libnfs driver where PVE's QEMU opens the file
        # on the kernel's mount (this kernel has none; the node's FUSE mount is too slow for a disk)
        return {"driver": "nfs", "server": {"type": "inet", "host": str(options["server"])},
                "path": str(options["export"]).rstrip("/") + volume.path[len(str(options["path"])):]}
    if kind in ("lvm", "lvmthin") or storages.is_device(volume.path):
        return {"driver": "host_device", "filename": volume.path}
    return {"driver": "file", "filename": volume.path}


def split_host_port(text: str) -> tuple[str, str | None]:
    found = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text) or re.fullmatch(r"([^:]+)(?::(\d+))?", text)
    return (found.group(1), found.group(2)) if found else (text, None)


def file_blockdev(storages: Storages, key: str, drive: dict[str, str], snapshot: str | None = None,
                  read_only: bool = False, filename: str | None = None) -> tuple[dict[str, Any], Volume | None]:
    file = drive["file"]
    volume = None
    storage = None
    if file == "cdrom":
        node: dict[str, Any] = {"driver": "host_cdrom", "filename": storages.cdrom_path()}
    elif file.startswith("/"):
        driver = ("host_cdrom" if is_cdrom(drive) else "host_device") if storages.is_device(file) else "file"
        node = {"driver": driver, "filename": file}
    else:
        volume = storages.volume(file)
        if drive.get("media") is None and volume.vtype == "iso":
            raise GuestError(f"{key}: explicit media parameter is required for iso images")
        node = storage_blockdev(volume, storages)
        storage = volume.options
    if filename is not None:
        node["filename"] = filename
    if node["driver"] == "rbd" and key.startswith("efidisk"):
        node["cache"] = {"direct": False, "no-flush": False}
    else:
        node["cache"] = {"direct": cache_direct(drive, storage), "no-flush": drive.get("cache") == "unsafe"}
    if node["driver"] in ("file", "host_cdrom", "host_device"):
        node["aio"] = aio(drive, storage, node["cache"]["direct"])
    node["node-name"] = node_name("file", key, file, snapshot)
    common_options(node, drive, read_only)
    return node, volume


def checked_format(key: str, drive: dict[str, str], volume: Volume | None) -> str:
    """A storage's volume has the storage's format (a drive's `format` may not differ); a path is
    raw unless the drive says otherwise."""
    if volume is None:
        return drive.get("format", "raw")
    if drive.get("format") and drive["format"] != volume.format:
        raise GuestError(f"drive '{key}' - volume '{drive['file']}' - 'format={drive['format']}' option different"
                         f" from storage format '{volume.format}'")
    return volume.format


def format_blockdev(key: str, drive: dict[str, str], child: dict[str, Any], volume: Volume | None,
                    snapshot: str | None = None, read_only: bool = False) -> dict[str, Any]:
    fmt = checked_format(key, drive, volume)
    node = {"node-name": node_name("fmt", key, drive["file"], snapshot), "driver": fmt, "file": child,
            "cache": child["cache"]}
    common_options(node, drive, read_only)
    if volume is not None and volume.options.get("snapshot-as-volume-chain") and fmt == "qcow2":
        node["discard-no-unref"] = True
    return node


def backing_chain(storages: Storages, key: str, drive: dict[str, str], volume: Volume,
                  read_only: bool) -> dict[str, Any] | None:
    """The qcow2 snapshots below the current image of a volume chain, each as a backing node."""
    chain = storages.snapshot_chain(drive["file"])

    def node(snap: str) -> dict[str, Any]:
        child, _ = file_blockdev(storages, key, drive, snap, read_only, filename=chain[snap]["file"])
        fmt = format_blockdev(key, drive, child, volume, snap, read_only)
        if chain[snap].get("parent"):
            fmt["backing"] = node(chain[snap]["parent"])
        return fmt

    parent = (chain.get("current") or {}).get("parent")
    return node(parent) if parent else None


def snapshot_method_is_mixed(volume: Volume) -> bool:
    if volume.format != "qcow2":
        return False
    return volume.options.get("type") == "lvm" or bool(volume.options.get("snapshot-as-volume-chain"))


def drive_blockdev(storages: Storages, key: str, drive: dict[str, str], read_only: bool = False) -> dict[str, Any]:
    """The whole -blockdev tree of a drive: throttle over format over file."""
    child, volume = file_blockdev(storages, key, drive, read_only=read_only)
    if not re.match(r"^nbd:", drive["file"]):
        child = format_blockdev(key, drive, child, volume, read_only=read_only)
        if volume is not None and snapshot_method_is_mixed(volume):
            backing = backing_chain(storages, key, drive, volume, read_only)
            if backing:
                child["backing"] = backing
    if drive.get("scsiblock") in ("1", "on"):
        child["node-name"] = f"drive-{key}"
        return child
    top = {"driver": "throttle", "node-name": f"drive-{key}", "throttle-group": f"throttle-drive-{key}", "file": child}
    common_options(top, drive, read_only)
    return top


def legacy_drive(storages: Storages, key: str, drive: dict[str, str]) -> str:
    """The `-drive` form machine versions before 10.0 get."""
    file = drive["file"]
    volid = volume_id(file)
    volume = storages.volume(volid) if volid else None
    storage = volume.options if volume else None
    if is_cdrom(drive):
        path = "" if file == "none" else storages.cdrom_path() if file == "cdrom" else \
            volume.path if volume else file
    else:
        path = volume.path if volume else file
    fmt = None if is_cdrom(drive) and not path else checked_format(key, drive, volume)  # an empty CD-ROM has none
    if storage and storage.get("snapshot-as-volume-chain") and fmt == "qcow2":
        raise GuestError(f"storage for '{file}' is configured for snapshots as a volume chain - this requires QEMU"
                         " machine version >= 10.0. See https://pve.proxmox.com/wiki/QEMU_Machine_Version_Upgrade")
    opts = "".join(f",{o}={drive[o]}" for o in ("media", "cache", "rerror", "werror", "discard") if o in drive)
    if "snapshot" in drive:
        opts += f",snapshot={'on' if drive['snapshot'] in ('1', 'on') else 'off'}"
    if "ro" in drive:
        opts += f",readonly={'on' if drive['ro'] in ('1', 'on') else 'off'}"
    for direction, name in THROTTLE_KINDS:
        for suffix, qmp in (("", ""), ("_max", "-max")):
            if drive.get(f"mbps{direction}{suffix}"):
                opts += f",throttling.bps{name}{qmp}={int(float(drive[f'mbps{direction}{suffix}']) * 1024 * 1024)}"
        if drive.get(f"bps{direction}_max_length"):
            opts += f",throttling.bps{name}-max-length={drive[f'bps{direction}_max_length']}"
        for suffix, qmp in (("", ""), ("_max", "-max"), ("_max_length", "-max-length")):
            if drive.get(f"iops{direction}{suffix}"):
                opts += f",throttling.iops{name}{qmp}={drive[f'iops{direction}{suffix}']}"
    if fmt:
        opts += f",format={fmt}"
    direct = cache_direct(drive, storage)
    if not drive.get("cache") and direct:
        opts += ",cache=none"
    opts += f",aio={aio(drive, storage, direct)}"
    if drive.get("media") is None and volume is not None and volume.vtype == "iso":
        raise GuestError(f"{key}: explicit media parameter is required for iso images")
    if not is_cdrom(drive):
        opts += f",detect-zeroes={detect_zeroes(drive)}"
    return (f"file={path}," if path else "") + f"if=none,id=drive-{key}{opts}"


def scsi_controller(scsihw: str | None, index: int) -> tuple[int, int, str]:
    """(devices per controller, controller number, controller id prefix) - qemu-server's scsihw_infos."""
    if not scsihw or scsihw.startswith("lsi"):
        per = 7
    elif scsihw == "virtio-scsi-single":
        per = 1
    else:
        per = 256
    return per, index // per, "virtioscsi" if scsihw == "virtio-scsi-single" else "scsihw"


def scsi_device_type(drive: dict[str, str], storages: Storages, machine_version: str) -> str:
    if is_cdrom(drive) or is_cloudinit(drive):
        return "cd"
    file = drive["file"]
    if file.startswith("/") or NEW_DISK.match(file):
        return "hd"
    volid = volume_id(file)
    path = storages.volume(volid).path if volid else file
    if path.startswith("iscsi://") and not versions.at_least(machine_version, 4, 1):
        return "generic"
    return "hd"


def device(options: dict[str, str], key: str, drive: dict[str, str], storages: Storages, machine_version: str,
           pci_addr: str, q35: bool, bootindex: int | None) -> str:
    """The guest device a drive is attached to (qemu-server's print_drivedevice_full)."""
    bus, index = interface(key)
    blockdev = versions.at_least(machine_version, 10, 0)
    attached = f",drive=drive-{key}" if not blockdev or drive.get("file") != "none" else ""
    write_cache = True
    if bus == "virtio":
        out = f"virtio-blk-pci{attached},id={key}{pci_addr}"
        if drive.get("iothread") in ("1", "on"):
            out += f",iothread=iothread-{key}"
    elif bus == "scsi":
        out, write_cache = scsi_device(options, key, index, drive, storages, machine_version, attached)
    else:
        out = ide_device(options, bus, key, index, drive, q35, attached)
    if bootindex:
        out += f",bootindex={bootindex}"
    if drive.get("serial"):
        out += f",serial={unquote(drive['serial'])}"
    if blockdev:
        if not is_cdrom(drive) and write_cache:
            out += f",write-cache={'off' if drive.get('cache') in ('writethrough', 'directsync') else 'on'}"
        out += "".join(f",{o}={drive[o]}" for o in ("rerror", "werror") if o in drive)
    return out


def scsi_device(options: dict[str, str], key: str, index: int, drive: dict[str, str], storages: Storages,
                machine_version: str, attached: str) -> tuple[str, bool]:
    """A SCSI disk or CD-ROM on its controller, and whether it has a write cache to set."""
    per, controller, prefix = scsi_controller(options.get("scsihw"), index)
    kind = scsi_device_type(drive, storages, machine_version)
    scsihw = options.get("scsihw")
    if not scsihw or scsihw.startswith("lsi") or scsihw == "pvscsi":
        out = f"scsi-{kind},bus={prefix}{controller}.0,scsi-id={index % per}"
    else:
        out = f"scsi-{kind},bus={prefix}{controller}.0,channel=0,scsi-id=0,lun={index}"
    out += f"{attached},id={key}"
    if versions.at_least(machine_version, 10, 0) and kind in ("cd", "hd"):
        out += f",device_id=drive-{key}"
    if drive.get("ssd") in ("1", "on") and kind in ("block", "hd"):
        out += ",rotation_rate=1"
    if drive.get("wwn"):
        out += f",wwn={drive['wwn']}"
    if kind not in ("hd", "cd"):
        return out, False
    return out + "".join(f",{p}={drive[p]}" for p in ("vendor", "product") if drive.get(p)), True


def ide_device(options: dict[str, str], bus: str, key: str, index: int, drive: dict[str, str], q35: bool,
               attached: str) -> str:
    per = MAX_SATA_DISKS if bus == "sata" else 2
    controller, unit = index // per, index % per
    if q35 and bus == "ide":  # q35's IDE controllers have one unit each
        controller += 2 * (unit % 2)
        unit = 0
    kind = "cd" if drive.get("media") == "cdrom" or options.get("template") == "1" else "hd"
    out = f"ide-{kind}," + (f"bus=ide.{controller},unit={unit}" if bus == "ide" else f"bus=ahci{controller}.{unit}")
    out += f"{attached},id={key}"
    if kind == "hd":
        if drive.get("model"):
            out += f",model={unquote(drive['model'])}"
        if drive.get("ssd") in ("1", "on"):
            out += ",rotation_rate=1"
    if drive.get("wwn"):
        out += f",wwn={drive['wwn']}"
    return out


def unquote(text: str) -> str:
    from urllib.parse import unquote as url_unquote

    return url_unquote(text)
