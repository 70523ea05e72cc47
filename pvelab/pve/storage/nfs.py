"""What PVE's NFS plugin does around its mount: the connection check, the mount check, the mount, and
`pvesm scan nfs` (pve-storage's NFSPlugin and API2::Storage::Scan).

The checks are PVE's own commands (`showmount`, `rpcinfo` from nfs-common). The mount differs: this
kernel has no NFS client, so where PVE runs `mount -t nfs SERVER:EXPORT PATH` the node mounts the
export with pvelab's FUSE client over libnfs (nfs_mount), which speaks NFS v3 to the server; the
mount shows as `SERVER:EXPORT PATH fuse.nfs` and the mount check accepts that type too.
docs/pve/storage.md says what differs (mount options are not applied)."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pvelab.pve.storage.config import StorageError
from pvelab.pve.storage.netcheck import resolve, tcp_ping

SHOWMOUNT = "/sbin/showmount"
RPCINFO = "/usr/sbin/rpcinfo"
CHECK_TIMEOUT = 10  # seconds, PVE's run_command timeout for the connection check
MOUNT_WAIT = 10.0  # seconds for the FUSE client to show in /proc/mounts
PROC_MOUNTS = Path("/proc/mounts")
EXPORT_LINE = re.compile(r"^(/\S+)\s+(.+)$")


def source(server: str, export: str) -> str:
    """What mount gets and /proc/mounts shows: SERVER:EXPORT, an IPv6 server in brackets."""
    try:
        is_v6 = ipaddress.ip_address(server).version == 6
    except ValueError:
        is_v6 = False
    return f"[{server}]:{export}" if is_v6 else f"{server}:{export}"


def is_mounted(server: str, export: str, path: str, mounts: str | None = None) -> bool:
    """PVE's nfs_is_mounted: an nfs mount of SERVER:EXPORT on PATH (pvelab's FUSE client's too)."""
    text = PROC_MOUNTS.read_text() if mounts is None else mounts
    wanted = re.compile(r"^" + re.escape(source(server, export)) + r"/?$")
    for line in text.splitlines():
        fields = [unescape(f) for f in line.split()]
        if len(fields) >= 3 and re.match(r"^(nfs|fuse\.nfs$)", fields[2]) and wanted.match(fields[0]) \
                and fields[1] == path:
            return True
    return False


def unescape(field: str) -> str:
    """/proc/mounts writes a space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def check_connection(options: dict[str, Any]) -> bool:
    """PVE's check_connection: the server's MOUNT service lists its exports (v3), or its NFS v4
    service answers rpcinfo, falling back to a TCP connection to its NFS port."""
    server, opts = str(options["server"]), str(options.get("options") or "")
    is_v4 = re.search(r"vers=4", opts) is not None
    if is_v4:
        address = resolve(server) or server
        transport = "tcp" if ":" not in address else "tcp6"
        argv = [RPCINFO, "-T", transport, address, "nfs", "4"]
    else:
        argv = [SHOWMOUNT, "--no-headers", "--exports", server]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=CHECK_TIMEOUT, check=False)
        if done.returncode == 0:
            return True
    except subprocess.TimeoutExpired:
        pass
    if not is_v4:
        return False
    found = re.search(r"port=(\d+)", opts)
    port = int(found.group(1)) if found else 2049
    if port == 0:
        return False
    return tcp_ping(server, port)


def unit_name(storage_id: str) -> str:
    """The transient unit that holds a storage's mount (storage IDs are valid unit name characters)."""
    return f"pvelab-nfs-{storage_id}.service"


def mount(storage_id: str, server: str, export: str, path: str) -> None:
    """Mount the export at PATH, or fail with mount.nfs's reason as PVE reports it ("mount error: ...").
    The export is tried here first (the server's answer is the error); then the FUSE client runs as
    a unit of its own, so the mount outlives the command that made it, as a kernel mount does."""
    from pvelab.pve.storage.libnfs import NfsClient, NfsError  # ctypes: loaded where libnfs is

    what = source(server, export)
    try:
        NfsClient(server, export, timeout_ms=CHECK_TIMEOUT * 1000).close()
    except NfsError as exc:
        raise StorageError(f"mount error: {mount_failure(what, exc.errno or 0)}") from exc
    unit = unit_name(storage_id)
    subprocess.run(["systemctl", "reset-failed", unit], capture_output=True, check=False)
    started = subprocess.run(["systemd-run", "--quiet", f"--unit={unit}", f"--description=NFS mount {what} on {path}",
                              "/usr/bin/python3", "-m", "pvelab.pve.storage.nfs_mount", what, path],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise StorageError(f"mount error: {started.stderr.strip()}")
    deadline = time.monotonic() + MOUNT_WAIT
    while not is_mounted(server, export, path):
        if time.monotonic() > deadline:
            raise StorageError(f"mount error: mount.nfs: {what} not mounted on {path} within {MOUNT_WAIT:.0f} s "
                               f"(journalctl -u {unit})")
        time.sleep(0.1)


def mount_failure(what: str, code: int) -> str:
    """mount.nfs's words for why a mount failed (nfs-utils' mount_error)."""
    if code == 13:
        return f"mount.nfs: access denied by server while mounting {what}"
    if code == 2:
        return f"mount.nfs: mounting {what} failed, reason given by server: No such file or directory"
    if code == 110:
        return "mount.nfs: Connection timed out"
    if code == 111:
        return "mount.nfs: Connection refused"
    return f"mount.nfs: mounting {what} failed: {os.strerror(code)}"


def scan(server: str) -> list[dict[str, str]]:
    """PVE's scan_nfs: the server's exports and who may mount them (showmount), sorted by path."""
    address = resolve(server)
    if address is None:
        raise StorageError(f"unable to resolve address for server '{server}'")
    argv = [SHOWMOUNT, "--no-headers", "--exports", address]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr, end="", file=sys.stderr)
        raise StorageError(f"command '{' '.join(argv)}' failed: exit code {done.returncode}")
    found = [EXPORT_LINE.match(line.strip()) for line in done.stdout.splitlines()]
    return sorted(({"path": m.group(1), "options": m.group(2)} for m in found if m), key=lambda e: e["path"])
