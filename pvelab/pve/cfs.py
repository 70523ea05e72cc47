"""pmxcfs for the twin: the cluster configuration filesystem mounted at /etc/pve.

Runs in each node as pve-cluster.service (Debian python3 + python3-fuse). Without
/etc/corosync/corosync.conf the node is standalone and /etc/pve is writable; with it, the tree
is replicated over corosync CPG and writable only while the node's partition is quorate.
When /etc/pve/corosync.conf changes, the newer one is copied to /etc/corosync/ and corosync
reloads it, as pmxcfs does.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import select
import socket
import stat
import subprocess
import sys
import syslog
import threading
import time
from pathlib import Path
from typing import Any

from pvelab.pve import corosync_conf
from pvelab.pve.configdb import ConfigDB, OpError
from pvelab.pve.dfsm import LocalWriter, Replicator

MOUNTPOINT = "/etc/pve"
DB_FILE = Path("/var/lib/pve-cluster/config.db")
COROSYNC_CONF = Path("/etc/corosync/corosync.conf")
CPG_GROUP = "pvelab_dcdb_v1"
WWW_DATA_GID = 33
LINKS = ("qemu-server", "lxc", "openvz")
VIRTUAL_FILES = (".members", ".version", ".vmlist", ".clusterlog")


def log(message: str) -> None:
    syslog.syslog(syslog.LOG_NOTICE, message)


class ClusterFS:
    """The tree plus its replication; the FUSE class below only translates calls."""

    def __init__(self, nodename: str) -> None:
        self.nodename = nodename
        self._send_fn: Any = None
        self.local_nodeid = 0
        self.db = ConfigDB(DB_FILE)
        self.clustered = COROSYNC_CONF.exists()
        self.online: set[int] = set()
        self.quorum: Any = None
        self.writer: Replicator | LocalWriter
        if self.clustered:
            self.writer = Replicator(self.db, self._send, self.quorate, self.changed)
            threading.Thread(target=self._cpg_loop, daemon=True).start()
            threading.Thread(target=self._housekeeping, daemon=True).start()
        else:
            self.writer = LocalWriter(self.db, self.changed)
            self.ensure_layout()

    # -- quorum and membership ---------------------------------------------------------------------
    def quorate(self) -> bool:
        if not self.clustered:
            return True
        try:
            return bool(self.quorum is not None and self.quorum.quorate())
        except Exception:  # noqa: BLE001 - corosync gone means no quorum
            return False

    def _send(self, payload: bytes) -> None:
        if self._send_fn is None:
            raise OpError(errno.EACCES, "not connected to corosync")
        self._send_fn(payload)

    def _on_members(self, members: list[Any], _left: list[Any], _joined: list[Any]) -> None:
        assert isinstance(self.writer, Replicator)
        self.online = {m.nodeid for m in members}
        self.writer.on_members((self.local_nodeid, os.getpid()), [(m.nodeid, m.pid) for m in members])

    def _cpg_loop(self) -> None:
        from pvelab.pve.corosync import CorosyncError, CpgGroup, Quorum

        assert isinstance(self.writer, Replicator)
        replicator = self.writer
        while True:
            try:
                self.quorum = Quorum()
                group = CpgGroup(CPG_GROUP, lambda n, p, m: replicator.on_message((n, p), m), self._on_members)
                self.local_nodeid = group.local_nodeid()
                self._send_fn = group.send
                log(f"joined CPG group {CPG_GROUP} as node {self.local_nodeid}")
                fd = group.fileno()
                while True:
                    readable, _, _ = select.select([fd], [], [], 1.0)
                    if readable:
                        group.dispatch()
            except (CorosyncError, OSError) as exc:
                self._send_fn = None
                self.online = set()
                replicator.on_disconnect()
                log(f"corosync not available ({exc}); retrying")
                time.sleep(1)

    def _housekeeping(self) -> None:
        """Writes the daemon makes itself; never from the CPG thread, which must keep delivering."""
        assert isinstance(self.writer, Replicator)
        while True:
            if self.writer.synced.wait(1.0) and self.quorate():
                self.ensure_layout()
            time.sleep(2)

    # -- content ---------------------------------------------------------------------------------
    def ensure_layout(self) -> None:
        """The directories PVE keeps for every node and for the cluster."""
        wanted = ["nodes", f"nodes/{self.nodename}", *(f"nodes/{self.nodename}/{d}" for d in (*LINKS, "priv")),
                  "priv", "ha"]
        for path in wanted:
            if self.db.get(path) is None:
                try:
                    self.writer.submit({"op": "mkdir", "path": path})
                except OpError:
                    return

    def changed(self, paths: set[str]) -> None:
        if "*" in paths or "corosync.conf" in paths:
            threading.Thread(target=self.sync_corosync_conf, daemon=True).start()

    def sync_corosync_conf(self) -> None:
        data = self.db.read("corosync.conf")
        if data is None:
            return
        try:
            new_version = corosync_conf.config_version(corosync_conf.parse(data.decode()))
            old_version = (corosync_conf.config_version(corosync_conf.parse(COROSYNC_CONF.read_text()))
                           if COROSYNC_CONF.exists() else -1)
        except (corosync_conf.ConfError, UnicodeDecodeError) as exc:
            log(f"not using /etc/pve/corosync.conf: {exc}")
            return
        if not self.clustered or new_version <= old_version:
            return
        tmp = COROSYNC_CONF.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(COROSYNC_CONF)
        log(f"wrote new corosync config '{COROSYNC_CONF}' (version = {new_version})")
        subprocess.run(["corosync-cfgtool", "-R"], capture_output=True, check=False)

    def virtual(self, name: str) -> bytes:
        conf = self.corosync()
        if name == ".members":
            members: dict[str, Any] = {"nodename": self.nodename, "version": self.db.version}
            if conf is not None:
                members["cluster"] = {"name": corosync_conf.cluster_name(conf),
                                      "version": corosync_conf.config_version(conf),
                                      "nodes": len(corosync_conf.nodes(conf)), "quorate": int(self.quorate())}
                members["nodelist"] = {n["name"]: {"id": int(n["nodeid"]), "online": int(
                    int(n["nodeid"]) in self.online), "ip": n.get("ring0_addr", "")} for n in corosync_conf.nodes(conf)}
            return (json.dumps(members, indent=1) + "\n").encode()
        if name == ".version":
            return (json.dumps({"version": self.db.version, "starttime": int(START)}) + "\n").encode()
        if name == ".vmlist":
            return (json.dumps({"version": self.db.version, "ids": {}}) + "\n").encode()
        return b'{"data": []}\n'

    def corosync(self) -> dict[str, Any] | None:
        data = self.db.read("corosync.conf")
        if data is None:
            return None
        try:
            return corosync_conf.parse(data.decode())
        except (corosync_conf.ConfError, UnicodeDecodeError):
            return None


START = time.time()


def _fuse_main(cfs: ClusterFS, mountpoint: str) -> None:
    import fuse

    fuse.fuse_python_api = (0, 2)

    def key(path: str) -> str:
        return path.strip("/")

    def mode_for(path: str, is_dir: bool) -> int:
        private = path == "priv" or path.startswith("priv/") or "/priv" in "/" + path
        if is_dir:
            return stat.S_IFDIR | (0o700 if private else 0o755)
        return stat.S_IFREG | (0o600 if private else 0o640)

    def submit(op: dict[str, Any]) -> int:
        try:
            cfs.writer.submit(op)
        except OpError as exc:
            return -exc.errno
        return 0

    class PveFS(fuse.Fuse):
        def getattr(self, path: str) -> Any:
            st = fuse.Stat()
            st.st_uid, st.st_gid = 0, WWW_DATA_GID
            st.st_nlink = 1
            name = key(path)
            if name in LINKS or name == "local":
                st.st_mode = stat.S_IFLNK | 0o777
                st.st_size = len(self.readlink(path))
                return st
            if name in VIRTUAL_FILES:
                st.st_mode = stat.S_IFREG | 0o440
                st.st_size = len(cfs.virtual(name))
                return st
            entry = cfs.db.get(name)
            if entry is None:
                return -errno.ENOENT
            st.st_mode = mode_for(name, entry.is_dir)
            st.st_nlink = 2 if entry.is_dir else 1
            st.st_size = len(entry.data)
            st.st_mtime = st.st_ctime = st.st_atime = int(entry.mtime or START)
            return st

        def readlink(self, path: str) -> str:
            name = key(path)
            return f"nodes/{cfs.nodename}" if name == "local" else f"nodes/{cfs.nodename}/{name}"

        def readdir(self, path: str, offset: int) -> Any:
            name = key(path)
            extra = ["local", *LINKS, *VIRTUAL_FILES] if name == "" else []
            for child in [".", "..", *cfs.db.children(name), *extra]:
                yield fuse.Direntry(child)

        def open(self, path: str, flags: int) -> int:
            name = key(path)
            if name in VIRTUAL_FILES:
                return 0
            entry = cfs.db.get(name)
            if entry is None:
                return -errno.ENOENT
            return 0

        def read(self, path: str, size: int, offset: int) -> Any:
            name = key(path)
            data = cfs.virtual(name) if name in VIRTUAL_FILES else cfs.db.read(name)
            if data is None:
                return -errno.ENOENT
            return data[offset:offset + size]

        def _put(self, name: str, data: bytes) -> int:
            return submit({"op": "write", "path": name, "data": base64.b64encode(data).decode()})

        def write(self, path: str, buf: bytes, offset: int) -> int:
            name = key(path)
            current = cfs.db.read(name) or b""
            data = current[:offset].ljust(offset, b"\0") + buf + current[offset + len(buf):]
            result = self._put(name, data)
            return result if result < 0 else len(buf)

        def truncate(self, path: str, size: int) -> int:
            name = key(path)
            current = cfs.db.read(name)
            if current is None:
                return -errno.ENOENT
            return self._put(name, current[:size].ljust(size, b"\0"))

        def create(self, path: str, flags: int, mode: int) -> int:
            name = key(path)
            if cfs.db.get(name) is not None and not flags & os.O_TRUNC:
                return 0
            return self._put(name, b"")

        def mknod(self, path: str, mode: int, dev: int) -> int:
            return self._put(key(path), b"") if stat.S_ISREG(mode) else -errno.EPERM

        def mkdir(self, path: str, mode: int) -> int:
            return submit({"op": "mkdir", "path": key(path)})

        def unlink(self, path: str) -> int:
            return submit({"op": "unlink", "path": key(path)})

        def rmdir(self, path: str) -> int:
            return submit({"op": "rmdir", "path": key(path)})

        def rename(self, old: str, new: str) -> int:
            return submit({"op": "rename", "path": key(old), "to": key(new)})

        def symlink(self, target: str, path: str) -> int:
            return -errno.EPERM

        def chmod(self, path: str, mode: int) -> int:
            return -errno.EPERM if cfs.db.get(key(path)) is None else 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            return 0

        def utime(self, path: str, times: Any) -> int:
            return 0

        def utimens(self, path: str, ts_acc: Any, ts_mod: Any) -> int:
            return 0

        def fsync(self, path: str, isfsyncfile: int) -> int:
            return 0

        def flush(self, path: str) -> int:
            return 0

        def release(self, path: str, flags: int) -> int:
            return 0

        def statfs(self) -> Any:
            st = fuse.StatVfs()
            st.f_bsize = st.f_frsize = 4096
            st.f_blocks = 30 * 256  # 30 MiB, pmxcfs's limit
            st.f_bfree = st.f_bavail = st.f_blocks - sum(len(e.data) for e in cfs.db.entries.values()) // 4096
            st.f_files = st.f_ffree = 10000
            st.f_namemax = 255
            return st

    server = PveFS(version="pvelab-cfs", usage="pvelab cluster filesystem", dash_s_do="setsingle")
    server.multithreaded = True
    server.parse(args=[mountpoint, "-f", "-o", "allow_other,default_permissions,direct_io"], errex=1)
    server.main()


def main() -> int:
    syslog.openlog("pmxcfs", syslog.LOG_PID, syslog.LOG_DAEMON)
    nodename = socket.gethostname().split(".")[0]
    Path(MOUNTPOINT).mkdir(exist_ok=True)
    cfs = ClusterFS(nodename)
    log(f"starting ({'cluster' if cfs.clustered else 'local'} mode), {len(cfs.db.entries)} entries, "
        f"version {cfs.db.version}")
    if cfs.clustered:
        cfs.changed({"corosync.conf"})
    _fuse_main(cfs, MOUNTPOINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
