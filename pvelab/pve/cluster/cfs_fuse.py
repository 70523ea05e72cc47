"""The FUSE side of the cluster filesystem, and pmxcfs's entry point (pve-cluster.service runs
`python3 -m pvelab.pve.cluster.cfs_fuse`): python3-fuse is present only inside the nodes, so the
database and replication (cfs) know nothing of it."""

from __future__ import annotations

import base64
import errno
import os
import stat
import sys
import syslog
import time
from pathlib import Path
from typing import Any

import fuse

from pvelab.procfs import nodename
from pvelab.pve.cluster.cfs import LINKS, MOUNTPOINT, START, VIRTUAL_FILES, WWW_DATA_GID, ClusterFS, log
from pvelab.pve.cluster.configdb import OpError, is_lock

fuse.fuse_python_api = (0, 2)
CLUSTER_LOG = ".clusterlog"


class PveFS(fuse.Fuse):
    """The FUSE face of the cluster filesystem: reads from the local database, writes submitted to
    the replicator (refused without quorum), PVE's links and virtual files (.members, .version...)."""

    cfs: ClusterFS

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
            st.st_size = len(self.cfs.virtual(name))
            return st
        entry = self.cfs.db.get(name)
        if entry is None:
            return -errno.ENOENT
        st.st_mode = mode_for(name, entry.is_dir)
        st.st_nlink = 2 if entry.is_dir else 1
        st.st_size = len(entry.data)
        st.st_mtime = st.st_ctime = st.st_atime = int(entry.mtime or START)
        return st

    def readlink(self, path: str) -> str:
        name = key(path)
        return f"nodes/{self.cfs.nodename}" if name == "local" else f"nodes/{self.cfs.nodename}/{name}"

    def readdir(self, path: str, offset: int) -> Any:
        name = key(path)
        extra = ["local", *LINKS, *VIRTUAL_FILES] if name == "" else []
        for child in [".", "..", *self.cfs.db.children(name), *extra]:
            yield fuse.Direntry(child)

    def open(self, path: str, flags: int) -> int:
        name = key(path)
        if name in VIRTUAL_FILES:
            return 0
        entry = self.cfs.db.get(name)
        if entry is None:
            return -errno.ENOENT
        return 0

    def read(self, path: str, size: int, offset: int) -> Any:
        name = key(path)
        data = self.cfs.virtual(name) if name in VIRTUAL_FILES else self.cfs.db.read(name)
        if data is None:
            return -errno.ENOENT
        return data[offset:offset + size]

    def _put(self, name: str, data: bytes) -> int:
        return self.submit({"op": "write", "path": name, "data": base64.b64encode(data).decode()})

    def write(self, path: str, buf: bytes, offset: int) -> int:
        name = key(path)
        if name == CLUSTER_LOG:  # a process of this node logging (PVE's log_msg, over its IPC there)
            try:
                self.cfs.clusterlog.handle_write(bytes(buf))
            except (ValueError, TypeError):
                return -errno.EINVAL
            return len(buf)
        if name in VIRTUAL_FILES:
            return -errno.EACCES
        current = self.cfs.db.read(name) or b""
        data = current[:offset].ljust(offset, b"\0") + buf + current[offset + len(buf):]
        result = self._put(name, data)
        return result if result < 0 else len(buf)

    def truncate(self, path: str, size: int) -> int:
        name = key(path)
        if name == CLUSTER_LOG:
            return 0
        current = self.cfs.db.read(name)
        if current is None:
            return -errno.ENOENT
        return self._put(name, current[:size].ljust(size, b"\0"))

    def create(self, path: str, flags: int, mode: int) -> int:
        name = key(path)
        if self.cfs.db.get(name) is not None and not flags & os.O_TRUNC:
            return 0
        return self._put(name, b"")

    def mknod(self, path: str, mode: int, dev: int) -> int:
        return self._put(key(path), b"") if stat.S_ISREG(mode) else -errno.EPERM

    def mkdir(self, path: str, mode: int) -> int:
        return self.submit({"op": "mkdir", "path": key(path), "writer": self.cfs.nodename})

    def unlink(self, path: str) -> int:
        return self.submit({"op": "unlink", "path": key(path)})

    def rmdir(self, path: str) -> int:
        return self.submit({"op": "rmdir", "path": key(path)})

    def rename(self, old: str, new: str) -> int:
        return self.submit({"op": "rename", "path": key(old), "to": key(new)})

    def symlink(self, target: str, path: str) -> int:
        return -errno.EPERM

    def chmod(self, path: str, mode: int) -> int:
        return -errno.EPERM if self.cfs.db.get(key(path)) is None else 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0

    def utime(self, path: str, times: Any) -> int:
        return self._touch(path, int(times[1]) if times else int(time.time()))

    def utimens(self, path: str, ts_acc: Any, ts_mod: Any) -> int:
        return self._touch(path, int(ts_mod.tv_sec))

    def _touch(self, path: str, mtime: int) -> int:
        """Only lock directories replicate a time change: renewal by their writer, or (time 0) an
        unlock request that removes an expired lock, as pmxcfs does for the HA manager's locks."""
        name = key(path)
        if not is_lock(name):
            return 0 if self.cfs.db.get(name) is not None else -errno.ENOENT
        return self.submit({"op": "utime", "path": name, "time": mtime, "writer": self.cfs.nodename})

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
        st.f_bfree = st.f_bavail = st.f_blocks - sum(len(e.data) for e in self.cfs.db.entries.values()) // 4096
        st.f_files = st.f_ffree = 10000
        st.f_namemax = 255
        return st

    def submit(self, op: dict[str, Any]) -> int:
        try:
            self.cfs.writer.submit(op)
        except OpError as exc:
            return -exc.errno
        return 0


def key(path: str) -> str:
    return path.strip("/")


def mode_for(path: str, is_dir: bool) -> int:
    private = path == "priv" or path.startswith("priv/") or "/priv" in "/" + path
    if is_dir:
        return stat.S_IFDIR | (0o700 if private else 0o755)
    return stat.S_IFREG | (0o600 if private else 0o640)


def serve(cfs: ClusterFS, mountpoint: str) -> None:
    """Mount /etc/pve and serve it until unmounted (blocks)."""
    server = PveFS(version="pvelab-cfs", usage="pvelab cluster filesystem", dash_s_do="setsingle")
    server.cfs = cfs
    server.multithreaded = True
    server.parse(args=[mountpoint, "-f", "-o", "allow_other,default_permissions,direct_io"], errex=1)
    server.main()


def main() -> int:
    """pmxcfs (pve-cluster.service): the cluster filesystem, mounted at /etc/pve and served until unmounted."""
    syslog.openlog("pmxcfs", syslog.LOG_PID, syslog.LOG_DAEMON)
    Path(MOUNTPOINT).mkdir(exist_ok=True)
    cfs = ClusterFS(nodename())
    log(f"starting ({'cluster' if cfs.clustered else 'local'} mode), {len(cfs.db.entries)} entries, "
        f"version {cfs.db.version}")
    if cfs.clustered:
        cfs.changed({"corosync.conf"})
    serve(cfs, MOUNTPOINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
