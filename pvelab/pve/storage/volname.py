"""What a volume's name says, as pve-storage reads it for storages with a path (Plugin.pm's
parse_volname, parse_name_dir, get_subdir, filesystem_path; Storage.pm's archive_info and
path_to_volume_id): its content type, its own name, its owner, the base image a linked clone
names, whether it is a base, its format - and the file that holds it. Every error is PVE's text.

pve-storage's own test files for these run unchanged against this module (tests/unit/test_storage_upstream.py)."""

from __future__ import annotations

import calendar
import os
import re
import time
from pathlib import Path
from typing import Any

from pvelab.pve.storage.config import StorageError

# Where each content type lives below the storage's path (Plugin.pm's $vtype_subdirs)
VTYPE_SUBDIRS = {"images": "images", "rootdir": "private", "iso": "template/iso", "vztmpl": "template/cache",
                 "backup": "dump", "snippets": "snippets", "import": "import"}
LOG_EXT, NOTES_EXT = ".log", ".notes"
COMPRESSOR = "gz|lzo|zst|bz2"  # KNOWN_COMPRESSION_FORMATS
ISO_EXT = r"\.(?:iso|img)"  # matched without regard to case, as PVE's /i
VZTMPL_EXT = r"\.(?:(tar)(?!\.)|tar\.(gz|xz|zst|bz2))"  # case-blind too; one group of the two is set
BACKUP_EXT = rf"\.(tgz|(?:tar|vma)(?:\.({COMPRESSOR}))?)"
IMPORT_EXT = r"\.(ova|ovf|qcow2|raw|vmdk)"
SAFE_CHAR = r"[a-zA-Z0-9\-\.\+\=\_]"
SAFE_CHAR_WITH_SPACE = r"[ a-zA-Z0-9\-\.\+\=\_]"
OVA_CONTENT = rf"{SAFE_CHAR_WITH_SPACE}+\.(qcow2|raw|vmdk)"
# the decompressor of each archive format and compression (Storage.pm's decompressor_info)
UNPACK_STREAM = {"gz": ["zcat"], "lzo": ["lzop", "-d", "-c"], "zst": ["zstd", "-q", "-d", "-c"], "bz2": ["bzcat", "-q"]}
DECOMPRESSORS: dict[str, dict[str, list[str]]] = {
    "tar": {"gz": ["tar", "-z"], "lzo": ["tar", "--lzop"], "zst": ["tar", "--zstd"], "bz2": ["tar", "--bzip2"]},
    "vma": UNPACK_STREAM, "iso": UNPACK_STREAM,
}

Parsed = tuple[str, str, str | None, str | None, str | None, str | None, str]


def parse_name_dir(name: str) -> tuple[str, str, str | None]:
    """(name, format, 'base-' or None) of an image's file name."""
    found = re.fullmatch(r"((vm-|base-|subvol-)(\d+)-[^/\s]+\.(raw|qcow2|vmdk|subvol))", name)
    if found:
        return found.group(1), found.group(4), "base-" if found.group(2) == "base-" else None
    if re.fullmatch(r"snap-.*\.qcow2", name, re.DOTALL):
        raise StorageError(f"'{name}' is a snapshot filename, not a volume!")
    found = re.fullmatch(r"((base-)?[^/\s]+\.(raw|qcow2|vmdk|subvol))", name)
    if found:
        return found.group(1), found.group(3), found.group(2)
    raise StorageError(f"unable to parse volume filename '{name}'")


def parse_volname(volname: str) -> Parsed:
    """(vtype, name, vmid, basename, basevmid, isBase, format), as Plugin.pm's parse_volname."""
    found = re.fullmatch(r"(\d+)/(\S+)/(\d+)/(\S+)", volname)
    if found:
        parse_name_dir(found.group(2))
        _name, fmt, is_base = parse_name_dir(found.group(4))
        return "images", found.group(4), found.group(3), found.group(2), found.group(1), is_base, fmt
    found = re.fullmatch(r"(\d+)/(\S+)", volname)
    if found:
        _name, fmt, is_base = parse_name_dir(found.group(2))
        return "images", found.group(2), found.group(1), None, None, is_base, fmt
    found = re.fullmatch(rf"iso/([^/]+{ISO_EXT})", volname, re.IGNORECASE)
    if found:
        return "iso", found.group(1), None, None, None, None, "raw"
    found = re.fullmatch(rf"vztmpl/([^/]+{VZTMPL_EXT})", volname, re.IGNORECASE)
    if found:
        return "vztmpl", found.group(1), None, None, None, None, "raw"
    found = re.fullmatch(rf"backup/([^/]+{BACKUP_EXT})", volname)
    if found:
        owner = re.match(r"vzdump-(openvz|lxc|qemu)-(\d+)-.+", found.group(1))
        return "backup", found.group(1), owner.group(2) if owner else None, None, None, None, "raw"
    found = re.fullmatch(r"snippets/([^/]+)", volname)
    if found:
        return "snippets", found.group(1), None, None, None, None, "raw"
    found = re.fullmatch(rf"import/({SAFE_CHAR_WITH_SPACE}+\.ova/{OVA_CONTENT})", volname)
    if found:
        return "import", found.group(1), None, None, None, None, f"ova+{found.group(2)}"
    found = re.fullmatch(rf"import/({SAFE_CHAR_WITH_SPACE}+{IMPORT_EXT})", volname)
    if found:
        return "import", found.group(1), None, None, None, None, found.group(2)
    raise StorageError(f"unable to parse directory volume name '{volname}'")


def get_subdir(options: dict[str, Any], vtype: str) -> str:
    """The directory a content type lives in below the storage's path (`content-dirs` may move it)."""
    path = options.get("path")
    if not path:
        raise StorageError("storage definition has no path")
    if vtype not in VTYPE_SUBDIRS:
        raise StorageError(f"unknown vtype '{vtype}'")
    overrides = options.get("content-dirs") or {}
    if isinstance(overrides, str):  # as storage.cfg writes it: `iso=isos,backup=dumps`
        overrides = dict(part.split("=", 1) for part in overrides.split(",") if "=" in part)
    return f"{path}/{overrides.get(vtype, VTYPE_SUBDIRS[vtype])}"


def filesystem_path(options: dict[str, Any], volname: str, snapname: str | None = None) -> tuple[str, str | None, str]:
    """(path, vmid, vtype) of a volume; a snapshot only of qcow2 (it lives inside the same file)."""
    vtype, name, vmid, _base, _base_vmid, _is_base, fmt = parse_volname(volname)
    if snapname is not None and fmt not in ("qcow2", "qed"):
        raise StorageError("can't snapshot this image format")
    directory = get_subdir(options, vtype)
    if vtype == "images":
        directory += f"/{vmid}"
    return f"{directory}/{name}", vmid, vtype


def archive_info(archive: str) -> dict[str, Any]:
    """What a backup archive's file name says (Storage.pm's archive_info): its type, format,
    compression and decompressor; for a standard name its VMID, time and log and notes files."""
    volid = os.path.basename(archive)
    found = re.fullmatch(rf"(vzdump-(lxc|openvz|qemu)-.+{BACKUP_EXT})", volid)
    if not found:
        raise StorageError(f"ERROR: couldn't determine archive info from '{archive}'")
    filename, kind, extension, compression = found.groups()
    fmt = extension.split(".", 1)[0]
    info: dict[str, Any] = decompressor_info(fmt, compression)
    info.update(filename=filename, type=kind)
    standard = re.fullmatch(rf"(vzdump-{kind}-([1-9][0-9]{{2,8}})-(\d{{4}})_(\d{{2}})_(\d{{2}})-(\d{{2}})_(\d{{2}})_"
                            rf"(\d{{2}}))\.{re.escape(extension)}", volid)
    if standard:
        year, month, day, hour, minute, second = (int(g) for g in standard.groups()[2:])
        info.update(logfilename=standard.group(1) + LOG_EXT, notesfilename=filename + NOTES_EXT,
                    vmid=int(standard.group(2)), is_std_name=1,
                    ctime=local_time(year, month, day, hour, minute, second))
    else:
        info["is_std_name"] = 0
    return info


def local_time(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Perl's timelocal: the epoch second of a wall-clock time in the local time zone."""
    if time.localtime().tm_gmtoff == 0 and not time.daylight:
        return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return int(time.mktime((year, month, day, hour, minute, second, 0, 0, -1)))


def decompressor_info(fmt: str, compression: str | None) -> dict[str, Any]:
    """Storage.pm's decompressor_info: `tgz` is a gzip'd tar; the command that unpacks the pair."""
    if fmt == "tgz" and compression is None:
        fmt, compression = "tar", "gz"
    if fmt not in DECOMPRESSORS:
        raise StorageError("ERROR: archive format not defined")
    decompressor = DECOMPRESSORS[fmt].get(compression) if compression else None
    return {"format": fmt, "compression": compression, "decompressor": decompressor}


def path_to_volume_id(storages: dict[str, dict[str, Any]], path: str) -> tuple[str, ...]:
    """(vtype, volume ID) of a file below a storage with a path, or ('',) when none holds it
    (Storage.pm's path_to_volume_id; an image only when the storage lists it as its own)."""
    if ":" in path and not path.startswith("/"):
        sid, volname = path.split(":", 1)
        options = storages.get(sid)
        if options and options.get("path"):
            return parse_volname(volname)[0], path
        return ("",)
    resolved = os.path.realpath(path) if os.path.exists(path) else path
    for sid, options in storages.items():
        if not options.get("path"):
            continue
        subdirs = {vtype: re.escape(get_subdir(options, vtype))
                   for vtype in ("images", "iso", "vztmpl", "backup", "snippets", "import")}
        image = re.fullmatch(rf"{subdirs['images']}/(\d+)/([^/\s]+)", resolved)
        if image:
            for volid in list_images(sid, options, image.group(1)):
                if filesystem_path(options, volid.split(":", 1)[1])[0] == resolved:
                    return "images", volid
            continue
        patterns = {"iso": (rf"{subdirs['iso']}/([^/]+{ISO_EXT})", re.IGNORECASE),
                    "vztmpl": (rf"{subdirs['vztmpl']}/([^/]+{VZTMPL_EXT})", re.IGNORECASE),
                    "backup": (rf"{subdirs['backup']}/([^/]+{BACKUP_EXT})", 0),
                    "snippets": (rf"{subdirs['snippets']}/([^/]+)", 0),
                    "import": (rf"{subdirs['import']}/({SAFE_CHAR}+{IMPORT_EXT})", 0)}
        for vtype, (pattern, flags) in patterns.items():
            found = re.fullmatch(pattern, resolved, flags)
            if found:
                return vtype, f"{sid}:{vtype}/{found.group(1)}"
    return ("",)


def list_images(sid: str, options: dict[str, Any], vmid: str) -> list[str]:
    """The volume IDs of a VM's images in a storage with a path (Plugin.pm's list_images, for one VM):
    its files that name it as owner. A linked clone is listed by its own name, without the base
    PVE reads from its qcow2 backing file (path_to_volume_id's cases need no more)."""
    directory = Path(get_subdir(options, "images")) / vmid
    found = []
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        match = re.fullmatch(r"((?:base|vm|subvol)-(\d+)-\S+)\.(raw|qcow2|vmdk|subvol)", path.name)
        if match is None or match.group(2) != vmid:
            continue
        found.append(f"{sid}:{vmid}/{path.name}")
    return found
