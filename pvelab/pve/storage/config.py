"""/etc/pve/storage.cfg in PVE's section-config format, read and written as PVE does.

A section is `TYPE: ID`, then one tab-indented `key value` line per option (a bare `disable` flag),
and a blank line. PVE writes the comment first, then `disable`, then the required options sorted,
then the optional ones sorted (pve-common SectionConfig::write_config)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvelab.pve.refusal import Refusal

STORAGE_CFG = Path("/etc/pve/storage.cfg")
STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
# What PVE's installer writes on an LVM-based install (pvesm.adoc, "Default storage configuration").
INSTALLER_DEFAULT = (
    "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"
    "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n"
)


class StorageError(Refusal):
    """A refusal with PVE's text; `param` names the parameter when PVE reports it as one."""


@dataclass(frozen=True)
class StorageType:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    content: frozenset[str]  # what it may hold
    default_content: tuple[str, ...]
    formats: tuple[str, ...]  # image formats, the default first
    shared_capable: bool


TYPES = {
    "dir": StorageType(("path",), ("content", "content-dirs", "create-base-path", "create-subdirs", "disable",
                                   "format", "is_mountpoint", "max-protected-backups", "mkdir", "nodes",
                                   "preallocation", "prune-backups", "shared", "bwlimit"),
                       frozenset({"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"}),
                       ("images", "rootdir"), ("raw", "qcow2", "vmdk", "subvol"), True),
    "lvmthin": StorageType(("thinpool", "vgname"), ("bwlimit", "content", "disable", "nodes"),
                           frozenset({"images", "rootdir"}), ("images", "rootdir"), ("raw",), False),
    # Ceph RBD; without monhost it is "pveceph managed": /etc/pve/ceph.conf, /etc/pve/priv/ceph/ID.keyring
    "rbd": StorageType((), ("bwlimit", "content", "data-pool", "disable", "keyring", "krbd", "monhost", "namespace",
                            "nodes", "pool", "username"),
                       frozenset({"images", "rootdir"}), ("images",), ("raw",), False),
    # LUNs of an iSCSI target used by QEMU directly through libiscsi (PVE's ISCSIDirectPlugin): no
    # kernel initiator; the LUNs are made on the target, PVE only lists and uses them
    "iscsidirect": StorageType(("portal", "target"), ("bwlimit", "content", "disable", "nodes"),
                               frozenset({"images", "none"}), ("images",), ("raw",), False),
    # an NFS export mounted at `path` (/mnt/pve/ID unless given), laid out as a directory storage
    "nfs": StorageType(("export", "path", "server"),
                       ("bwlimit", "content", "content-dirs", "create-base-path", "create-subdirs", "disable", "format",
                        "max-protected-backups", "mkdir", "nodes", "options", "preallocation", "prune-backups"),
                       frozenset({"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"}),
                       ("images",), ("raw", "qcow2", "vmdk"), True),
    # a ZFS dataset (pool/name): on btrfs here, see storage/zfspool.py; the one type pvesr replicates
    "zfspool": StorageType(("pool",), ("blocksize", "bwlimit", "content", "disable", "mountpoint", "nodes", "sparse"),
                           frozenset({"images", "rootdir"}), ("images", "rootdir"), ("raw", "subvol"), False),
}
# shared by nature: every node sees the same pool, the same target's LUNs, or the same export
ALWAYS_SHARED = ("rbd", "iscsidirect", "nfs")
MOUNT_BASE = "/mnt/pve"  # where PVE mounts network file systems: /mnt/pve/<storage id>


def parse(text: str) -> dict[str, dict[str, Any]]:
    """{storage id: {"type": ..., option: value}} in file order; `disable` is True when present."""
    sections: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            current = None if not line.strip() else current
            continue
        header = re.match(r"^(\S+):\s*(\S+)\s*$", line)
        if header and not line[0].isspace():
            current = sections.setdefault(header.group(2), {"type": header.group(1)})
            continue
        option = re.match(r"^\s+(\S+)(?:\s+(.*\S))?\s*$", line)
        if option and current is not None:
            key, value = option.group(1), option.group(2)
            current[key] = True if value is None else value
    return sections


def dump(sections: dict[str, dict[str, Any]]) -> str:
    out = []
    for storage_id, options in sections.items():
        kind = TYPES.get(options["type"])
        required = sorted(kind.required) if kind else []
        rest = sorted(k for k in options if k not in ("type", "comment", "disable", *required))
        lines = [f"{options['type']}: {storage_id}"]
        if "comment" in options:
            lines.append(f"\tcomment {options['comment']}")
        if options.get("disable") in (True, 1, "1"):
            lines.append("\tdisable")
        lines += [f"\t{key} {options[key]}" for key in [*required, *rest] if key in options]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out) + ("\n" if out else "")


def read(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The storages, with PVE's guarantee that a `local` dir storage on /var/lib/vz always exists."""
    try:
        sections = parse((path or STORAGE_CFG).read_text())
    except FileNotFoundError:
        sections = {}
    local = sections.get("local")
    if local is None or local.get("type") != "dir" or local.get("path", "/var/lib/vz") != "/var/lib/vz":
        sections = {"local": {"type": "dir", "path": "/var/lib/vz", "prune-backups": "keep-all=1",
                              "content": "backup,images,iso,rootdir,snippets,vztmpl"},
                    **{k: v for k, v in sections.items() if k != "local"}}
    return sections


def get(storage_id: str, sections: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    found = (sections if sections is not None else read()).get(storage_id)
    if found is None:
        raise StorageError(f"storage '{storage_id}' does not exist")
    return found


def content_of(options: dict[str, Any]) -> list[str]:
    kind = TYPES.get(options["type"])
    given = options.get("content")
    if given is None:
        return list(kind.default_content) if kind else []
    return [c for c in str(given).split(",") if c and c != "none"]


def check_content(kind_name: str, content: str) -> str:
    """PVE's decode of `content` for a storage type: a type it cannot hold is warned about (on stderr,
    as PVE's warn) and dropped; nothing left is an error unless the type can hold `none`."""
    kind = TYPES[kind_name]
    wanted = []
    for item in [c for c in re.split(r"[,;\s]+", content) if c]:
        if item in kind.content:
            wanted.append(item)
        else:
            print(f"storage does not support content type '{item}'", file=sys.stderr)
    if "none" in wanted and len(wanted) > 1:
        raise StorageError("unable to combine 'none' with other content types")
    if not wanted and "none" not in kind.content:
        raise StorageError("storage does not support content type 'none'")
    return ",".join(wanted) or "none"


def is_enabled(options: dict[str, Any]) -> bool:
    return options.get("disable") not in (True, 1, "1")


def is_shared(options: dict[str, Any]) -> bool:
    return options.get("type") in ALWAYS_SHARED or str(options.get("shared", "0")) == "1"


def available_on(options: dict[str, Any], node: str) -> bool:
    """A storage restricted with `nodes` exists only there."""
    nodes = options.get("nodes")
    return nodes is None or node in str(nodes).split(",")
