"""What a node finds on the storage network before a storage is added: `pvesm scan` and
/nodes/{node}/scan (pve-storage's API2::Storage::Scan). NFS exports are listed by `showmount` as on
PVE (nfs.scan). iSCSI discovery goes through libiscsi's
`iscsi-ls`, where PVE runs open-iscsi's `iscsiadm --mode discovery --type sendtargets`: this kernel has
no iSCSI initiator, and the same SendTargets answer is behind both (docs/pve/storage.md)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from pvelab.pve.api.routes import Context, route
from pvelab.pve.storage import nfs, volumes
from pvelab.pve.storage.config import StorageError
from pvelab.pve.storage.netcheck import resolve, tcp_ping

# pve-storage's scan index: every method it lists (the twin serves iscsi and nfs; the others answer 501)
METHODS = ("cifs", "glusterfs", "iscsi", "lvm", "nfs", "pbs", "zfs")
ISCSI_PORT = 3260
PORTAL = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[A-Za-z0-9.\-]+)(?::(\d+))?$")
ISCSI_LS_TARGET = re.compile(r"^Target:(\S+)\s+Portal:(\S+?)(?:,\d+)?$")


def resolve_portal(portal: str) -> tuple[str, int]:
    """PVE's scan_iscsi: the portal's address (a name resolved) and port, or its parse error."""
    found = PORTAL.match(portal.strip())
    address = resolve(found.group(1).strip("[]")) if found else None
    if not found or not address:
        raise StorageError(f"unable to parse/resolve portal address '{portal}'")
    return address, int(found.group(2) or ISCSI_PORT)


def iscsi_discovery(portal: str) -> dict[str, list[str]]:
    """{target: [portal, ...]} as a SendTargets discovery answers; an unreachable portal is skipped,
    as PVE's discovery skips one its tcp_ping does not reach."""
    address, port = resolve_portal(portal)
    host = f"[{address}]" if ":" in address else address
    if not tcp_ping(address, port):
        return {}
    argv = [volumes.ISCSI_LS, f"iscsi://{host}:{port}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StorageError(f"command '{' '.join(argv)}' failed: got timeout") from exc
    if done.returncode != 0:
        raise StorageError(f"command '{' '.join(argv)}' failed: exit code {done.returncode}")
    targets: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        found = ISCSI_LS_TARGET.match(line.strip())
        if found and found.group(2) not in targets.setdefault(found.group(1), []):
            targets[found.group(1)].append(found.group(2))
    return targets


@route("GET /nodes/{node}/scan")
def scan_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [{"method": m} for m in METHODS]


@route("GET /nodes/{node}/scan/iscsi")
def scan_iscsi(ctx: Context, params: dict[str, Any]) -> Any:
    return [{"target": target, "portal": ",".join(portals)}
            for target, portals in sorted(iscsi_discovery(params["portal"]).items())]


@route("GET /nodes/{node}/scan/nfs")
def scan_nfs(ctx: Context, params: dict[str, Any]) -> Any:
    return nfs.scan(params["server"])
