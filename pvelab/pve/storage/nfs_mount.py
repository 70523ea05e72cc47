"""A node's NFS mount without a kernel NFS client: `python3 -m pvelab.pve.storage.nfs_mount
SERVER:EXPORT MOUNTPOINT` mounts the export over NFS v3 (libnfs) as a FUSE filesystem and serves it
until unmounted. The NFS storage plugin starts it as a transient unit where PVE runs `mount -t nfs`.

/proc/mounts shows `SERVER:EXPORT MOUNTPOINT fuse.nfs ...` (fsname and subtype), which is what the
plugin's mount check looks for. Like PVE's default (hard) mount, a call waits while the server is
away and goes on when it is back (libnfs reconnects); there is no page cache shared with other nodes,
so what one node writes the next open on another reads. python3-fuse is present only in the nodes."""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

import fuse

from pvelab.pve.storage.libnfs import NfsClient, NfsError

fuse.fuse_python_api = (0, 2)
FUSE_OPTIONS = "allow_other,big_writes,max_write=131072,default_permissions"


class NfsFS(fuse.Fuse):
    """Each FUSE call is one NFS call on the mounted export (paths are the export's)."""

    client: NfsClient

    def getattr(self, path: str) -> Any:
        found = self.client.stat(path, follow=False)
        st = fuse.Stat()
        st.st_mode, st.st_nlink, st.st_uid, st.st_gid = found.mode, found.nlink, found.uid, found.gid
        st.st_size, st.st_atime, st.st_mtime, st.st_ctime = found.size, found.atime, found.mtime, found.ctime
        st.st_blocks = found.blocks
        return st

    def readdir(self, path: str, offset: int) -> Any:
        for name in [".", "..", *self.client.listdir(path)]:
            yield fuse.Direntry(name)

    def statfs(self) -> Any:
        found = self.client.statvfs("/")
        st = fuse.StatVfs()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail",
                     "f_namemax"):
            setattr(st, name, getattr(found, name))
        return st

    def mkdir(self, path: str, mode: int) -> None:
        self.client.mkdir(path, stat.S_IMODE(mode))

    def rmdir(self, path: str) -> None:
        self.client.rmdir(path)

    def unlink(self, path: str) -> None:
        self.client.unlink(path)

    def rename(self, old: str, new: str) -> None:
        self.client.rename(old, new)

    def truncate(self, path: str, size: int) -> None:
        self.client.truncate(path, size)

    def chmod(self, path: str, mode: int) -> None:
        self.client.chmod(path, stat.S_IMODE(mode))

    def chown(self, path: str, uid: int, gid: int) -> None:
        current = self.client.stat(path)
        self.client.chown(path, current.uid if uid == -1 else uid, current.gid if gid == -1 else gid)

    def utimens(self, path: str, ts_acc: Any, ts_mod: Any) -> None:
        self.client.utimes(path, ts_acc.tv_sec + ts_acc.tv_nsec / 1e9, ts_mod.tv_sec + ts_mod.tv_nsec / 1e9)

    def symlink(self, target: str, path: str) -> None:
        self.client.symlink(target, path)

    def readlink(self, path: str) -> str:
        return self.client.readlink(path)

    def link(self, target: str, path: str) -> int:
        return -errno.EPERM  # libnfs's sync API has no LINK

    def mknod(self, path: str, mode: int, dev: int) -> int:
        if not stat.S_ISREG(mode):
            return -errno.EPERM
        self.client.close_file(self.client.create(path, os.O_RDWR | os.O_CREAT, stat.S_IMODE(mode)))
        return 0


def file_class(client: NfsClient) -> type:
    """Open files: one NFS file handle each, held from open to release."""

    class NfsFile:
        def __init__(self, path: str, flags: int, *mode: int) -> None:
            if flags & os.O_CREAT:
                self.handle = client.create(path, flags & ~os.O_EXCL, mode[0] if mode else 0o644)
            else:
                self.handle = client.open(path, flags & (os.O_ACCMODE | os.O_TRUNC | os.O_APPEND))

        def read(self, size: int, offset: int) -> bytes:
            return client.pread(self.handle, size, offset)

        def write(self, buf: bytes, offset: int) -> int:
            return client.pwrite(self.handle, bytes(buf), offset)

        def ftruncate(self, size: int) -> None:
            client.ftruncate(self.handle, size)

        def fsync(self, isfsyncfile: int) -> None:
            client.fsync(self.handle)

        def flush(self) -> None:
            return None

        def release(self, flags: int) -> None:
            client.close_file(self.handle)

    return NfsFile


def main(argv: list[str]) -> int:
    if len(argv) != 2 or ":" not in argv[0]:
        print("usage: python3 -m pvelab.pve.storage.nfs_mount SERVER:EXPORT MOUNTPOINT", file=sys.stderr)
        return 2
    source, mountpoint = argv
    server, export = source.rsplit(":", 1) if source.startswith("[") else source.split(":", 1)
    try:
        client = NfsClient(server.strip("[]"), export)
    except NfsError as exc:
        print(f"mount.nfs: mounting {source} failed: {exc.strerror}", file=sys.stderr)
        return 32  # mount(8)'s "mount failure"
    server_fs = NfsFS(version="pvelab-nfs", usage="pvelab NFS mount", dash_s_do="setsingle")
    server_fs.client = client
    server_fs.file_class = file_class(client)
    server_fs.multithreaded = True
    server_fs.parse(args=[mountpoint, "-f", "-o", f"{FUSE_OPTIONS},fsname={source},subtype=nfs"], errex=1)
    server_fs.main()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
