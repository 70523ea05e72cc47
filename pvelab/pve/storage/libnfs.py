"""An NFS client in user space: libnfs's synchronous API through ctypes (Debian's libnfs13 on PVE 8's
bookworm, libnfs14 on PVE 9's trixie; the calls bound here have the same signatures in both).

This kernel has no NFS client, so a node's `nfs` storage speaks NFS to the server through this
library: the FUSE mount at /mnt/pve/<id> (nfs_mount) and the probe before it. One context is one
connection; it is not thread-safe, so NfsClient serialises every call on its lock."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from dataclasses import dataclass

LIBRARIES = ("libnfs.so.14", "libnfs.so.13")
NFS_V3 = 3


class NfsError(OSError):
    """A failed call: errno (libnfs returns -errno) and libnfs's own text."""


class _Stat64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks", "atime", "mtime", "ctime",
        "atime_nsec", "mtime_nsec", "ctime_nsec", "used")]


class _StatVfs64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail", "fsid", "flag", "namemax")]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Dirent(ctypes.Structure):
    pass


_Dirent._fields_ = [("next", ctypes.POINTER(_Dirent)), ("name", ctypes.c_char_p), ("inode", ctypes.c_uint64),
                    ("type", ctypes.c_uint32), ("mode", ctypes.c_uint32), ("size", ctypes.c_uint64)]


@dataclass(frozen=True)
class NfsStat:
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    blocks: int
    atime: int
    mtime: int
    ctime: int


def load() -> ctypes.CDLL:
    for name in LIBRARIES:
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        _declare(lib)
        return lib
    raise NfsError(errno.ENOSYS, f"no libnfs on this system (looked for {', '.join(LIBRARIES)})")


def _declare(lib: ctypes.CDLL) -> None:
    vp, cp, i, u64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint64
    signatures = {
        "nfs_init_context": (vp, []), "nfs_destroy_context": (None, [vp]), "nfs_get_error": (cp, [vp]),
        "nfs_set_version": (i, [vp, i]), "nfs_set_timeout": (None, [vp, i]),
        "nfs_mount": (i, [vp, cp, cp]), "nfs_umount": (i, [vp]),
        "nfs_stat64": (i, [vp, cp, ctypes.POINTER(_Stat64)]), "nfs_lstat64": (i, [vp, cp, ctypes.POINTER(_Stat64)]),
        "nfs_statvfs64": (i, [vp, cp, ctypes.POINTER(_StatVfs64)]),
        "nfs_opendir": (i, [vp, cp, ctypes.POINTER(vp)]), "nfs_readdir": (ctypes.POINTER(_Dirent), [vp, vp]),
        "nfs_closedir": (None, [vp, vp]),
        "nfs_open": (i, [vp, cp, i, ctypes.POINTER(vp)]), "nfs_create": (i, [vp, cp, i, i, ctypes.POINTER(vp)]),
        "nfs_pread": (i, [vp, vp, u64, u64, vp]), "nfs_pwrite": (i, [vp, vp, u64, u64, vp]),
        "nfs_fsync": (i, [vp, vp]), "nfs_ftruncate": (i, [vp, vp, u64]), "nfs_close": (i, [vp, vp]),
        "nfs_truncate": (i, [vp, cp, u64]), "nfs_mkdir2": (i, [vp, cp, i]), "nfs_rmdir": (i, [vp, cp]),
        "nfs_unlink": (i, [vp, cp]), "nfs_rename": (i, [vp, cp, cp]), "nfs_chmod": (i, [vp, cp, i]),
        "nfs_chown": (i, [vp, cp, i, i]), "nfs_utimes": (i, [vp, cp, ctypes.POINTER(_Timeval)]),
        "nfs_symlink": (i, [vp, cp, cp]), "nfs_readlink2": (i, [vp, cp, ctypes.POINTER(cp)]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes


class NfsClient:
    """One mounted export: paths are relative to it ("/" is the export's root)."""

    def __init__(self, server: str, export: str, timeout_ms: int | None = None) -> None:
        self.lib = load()
        self.lock = threading.Lock()
        self.server, self.export = server, export
        self.ctx = self.lib.nfs_init_context()
        if not self.ctx:
            raise NfsError(errno.ENOMEM, "failed to init libnfs context")
        self.lib.nfs_set_version(self.ctx, NFS_V3)
        if timeout_ms is not None:
            self.lib.nfs_set_timeout(self.ctx, timeout_ms)
        try:
            self._check(self.lib.nfs_mount(self.ctx, server.encode(), export.encode()))
        except NfsError:
            self.lib.nfs_destroy_context(self.ctx)
            self.ctx = None
            raise

    def close(self) -> None:
        if self.ctx:
            with self.lock:
                self.lib.nfs_destroy_context(self.ctx)
                self.ctx = None

    def error_text(self) -> str:
        text = self.lib.nfs_get_error(self.ctx) if self.ctx else None
        return text.decode(errors="replace") if text else ""

    def _check(self, result: int) -> int:
        if result < 0:
            raise NfsError(-result, self.error_text() or os.strerror(-result))
        return result

    def _call(self, name: str, *args: object) -> int:
        with self.lock:
            return self._check(getattr(self.lib, name)(self.ctx, *args))

    # -- names ---------------------------------------------------------------------------------------
    def stat(self, path: str, follow: bool = True) -> NfsStat:
        st = _Stat64()
        self._call("nfs_stat64" if follow else "nfs_lstat64", path.encode(), ctypes.byref(st))
        return NfsStat(st.mode, st.nlink, st.uid, st.gid, st.size, st.blocks, st.atime, st.mtime, st.ctime)

    def statvfs(self, path: str = "/") -> os.statvfs_result:
        st = _StatVfs64()
        self._call("nfs_statvfs64", path.encode(), ctypes.byref(st))
        return os.statvfs_result((st.bsize, st.frsize, st.blocks, st.bfree, st.bavail, st.files, st.ffree,
                                  st.favail, st.flag, st.namemax))

    def listdir(self, path: str) -> list[str]:
        handle = ctypes.c_void_p()
        with self.lock:
            self._check(self.lib.nfs_opendir(self.ctx, path.encode(), ctypes.byref(handle)))
            names = []
            while entry := self.lib.nfs_readdir(self.ctx, handle):
                names.append(entry.contents.name.decode(errors="surrogateescape"))
            self.lib.nfs_closedir(self.ctx, handle)
        return [name for name in names if name not in (".", "..")]

    def mkdir(self, path: str, mode: int) -> None:
        self._call("nfs_mkdir2", path.encode(), mode)

    def rmdir(self, path: str) -> None:
        self._call("nfs_rmdir", path.encode())

    def unlink(self, path: str) -> None:
        self._call("nfs_unlink", path.encode())

    def rename(self, old: str, new: str) -> None:
        self._call("nfs_rename", old.encode(), new.encode())

    def truncate(self, path: str, size: int) -> None:
        self._call("nfs_truncate", path.encode(), size)

    def chmod(self, path: str, mode: int) -> None:
        self._call("nfs_chmod", path.encode(), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._call("nfs_chown", path.encode(), uid, gid)

    def utimes(self, path: str, atime: float, mtime: float) -> None:
        times = (_Timeval * 2)(_Timeval(int(atime), int(atime % 1 * 1e6)), _Timeval(int(mtime), int(mtime % 1 * 1e6)))
        self._call("nfs_utimes", path.encode(), times)

    def symlink(self, target: str, path: str) -> None:
        self._call("nfs_symlink", target.encode(), path.encode())

    def readlink(self, path: str) -> str:
        buf = ctypes.c_char_p()
        self._call("nfs_readlink2", path.encode(), ctypes.byref(buf))
        return (buf.value or b"").decode(errors="surrogateescape")

    # -- open files ----------------------------------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        handle = ctypes.c_void_p()
        self._call("nfs_open", path.encode(), flags & ~os.O_CREAT, ctypes.byref(handle))
        return int(handle.value or 0)

    def create(self, path: str, flags: int, mode: int) -> int:
        handle = ctypes.c_void_p()
        self._call("nfs_create", path.encode(), flags, mode, ctypes.byref(handle))
        return int(handle.value or 0)

    def pread(self, handle: int, size: int, offset: int) -> bytes:
        buf = ctypes.create_string_buffer(size)
        count = self._call("nfs_pread", ctypes.c_void_p(handle), offset, size, buf)
        return buf.raw[:count]

    def pwrite(self, handle: int, data: bytes, offset: int) -> int:
        return self._call("nfs_pwrite", ctypes.c_void_p(handle), offset, len(data), data)

    def fsync(self, handle: int) -> None:
        self._call("nfs_fsync", ctypes.c_void_p(handle))

    def ftruncate(self, handle: int, size: int) -> None:
        self._call("nfs_ftruncate", ctypes.c_void_p(handle), size)

    def close_file(self, handle: int) -> None:
        self._call("nfs_close", ctypes.c_void_p(handle))
