"""The cluster configuration database: a tree of small files, persisted in SQLite like pmxcfs's
/var/lib/pve-cluster/config.db, changed only by applying operations in cluster-agreed order."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_FILE_SIZE = 1024 * 1024  # pmxcfs refuses bigger files too
LOCK_DIR = "priv/lock"  # cluster-wide locks are directories here (pmxcfs's memdb lock semantics)
LOCK_TIMEOUT = 120.0  # CFS_LOCK_TIMEOUT: an unlock request removes a lock only when it is this old


def is_lock(path: str) -> bool:
    return path.startswith(LOCK_DIR + "/") and "/" not in path[len(LOCK_DIR) + 1:]


class OpError(Exception):
    """An operation that cannot apply; errno is what the filesystem call returns."""

    def __init__(self, errno_value: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno_value


@dataclass
class Entry:
    is_dir: bool
    data: bytes = b""
    mtime: float = 0.0


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


class ConfigDB:
    def __init__(self, db_file: Path | None) -> None:
        self.db_file = db_file
        self.lock = threading.RLock()
        self.entries: dict[str, Entry] = {}
        self.version = 0
        if db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(db_file), check_same_thread=False)
            self.conn.execute("CREATE TABLE IF NOT EXISTS tree (path TEXT PRIMARY KEY, is_dir INTEGER, "
                              "data BLOB, mtime REAL)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            for path, is_dir, data, mtime in self.conn.execute("SELECT path, is_dir, data, mtime FROM tree"):
                self.entries[path] = Entry(bool(is_dir), bytes(data or b""), mtime)
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            self.version = int(row[0]) if row else 0

    # -- reading ---------------------------------------------------------------------------------
    def get(self, path: str) -> Entry | None:
        if path == "":
            return Entry(True)
        return self.entries.get(path)

    def children(self, path: str) -> list[str]:
        prefix = path + "/" if path else ""
        return sorted(p[len(prefix):] for p in self.entries if p.startswith(prefix) and "/" not in p[len(prefix):])

    def read(self, path: str) -> bytes | None:
        entry = self.entries.get(path)
        return entry.data if entry is not None and not entry.is_dir else None

    def digest(self) -> str:
        with self.lock:
            blob = json.dumps(self.snapshot()["entries"], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    # -- checking and applying operations ------------------------------------------------------
    def check(self, op: dict[str, Any]) -> None:
        """Raise OpError if `op` cannot apply to the current tree."""
        import errno

        kind, path = op["op"], op["path"]
        parent = self.get(parent_of(path))
        entry = self.get(path)
        if parent is None or not parent.is_dir:
            raise OpError(errno.ENOENT, f"no directory for '{path}'")
        if kind == "write":
            if entry is not None and entry.is_dir:
                raise OpError(errno.EISDIR, f"'{path}' is a directory")
            if len(base64.b64decode(op["data"])) > MAX_FILE_SIZE:
                raise OpError(errno.EFBIG, f"'{path}' is larger than {MAX_FILE_SIZE} bytes")
        elif kind == "mkdir":
            if entry is not None:
                raise OpError(errno.EEXIST, f"'{path}' exists")
        elif kind == "utime":
            if entry is None:
                raise OpError(errno.ENOENT, f"'{path}' does not exist")
            # Only the node that took a lock may renew it; a time of 0 is anyone's unlock request.
            if op["time"] and is_lock(path) and entry.data.decode() != op.get("writer"):
                raise OpError(errno.EACCES, f"lock '{path}' belongs to another node")
        elif kind in ("unlink", "rmdir"):
            if entry is None:
                raise OpError(errno.ENOENT, f"'{path}' does not exist")
            if kind == "unlink" and entry.is_dir:
                raise OpError(errno.EISDIR, f"'{path}' is a directory")
            if kind == "rmdir" and (not entry.is_dir or self.children(path)):
                raise OpError(errno.ENOTEMPTY if entry.is_dir else errno.ENOTDIR, f"cannot remove '{path}'")
        elif kind == "rename":
            target_parent = self.get(parent_of(op["to"]))
            if entry is None:
                raise OpError(errno.ENOENT, f"'{path}' does not exist")
            if target_parent is None or not target_parent.is_dir:
                raise OpError(errno.ENOENT, f"no directory for '{op['to']}'")
            target = self.get(op["to"])
            if target is not None and target.is_dir != entry.is_dir:
                raise OpError(errno.EISDIR, f"cannot rename '{path}' over '{op['to']}'")
        else:
            raise OpError(errno.EINVAL, f"unknown operation '{kind}'")

    def apply(self, op: dict[str, Any]) -> None:
        with self.lock:
            self.check(op)
            now = op.get("mtime", time.time())
            kind, path = op["op"], op["path"]
            changed: dict[str, Entry | None] = {}
            if kind == "write":
                changed[path] = Entry(False, base64.b64decode(op["data"]), now)
            elif kind == "mkdir":  # a lock directory remembers its writer in its (otherwise unused) data
                changed[path] = Entry(True, op.get("writer", "").encode() if is_lock(path) else b"", now)
            elif kind == "utime":
                entry = self.entries[path]
                if op["time"]:
                    changed[path] = Entry(entry.is_dir, entry.data, now)
                elif now - entry.mtime > LOCK_TIMEOUT:
                    changed[path] = None  # an expired lock, released on request
            elif kind in ("unlink", "rmdir"):
                changed[path] = None
            elif kind == "rename":
                moved = {p: e for p, e in self.entries.items() if p == path or p.startswith(path + "/")}
                for old in moved:
                    changed[old] = None
                for old, entry in moved.items():
                    changed[op["to"] + old[len(path):]] = entry
            for p, e in changed.items():
                if e is None:
                    self.entries.pop(p, None)
                else:
                    self.entries[p] = e
            self.version += 1
            self._persist(changed)

    def _persist(self, changed: dict[str, Entry | None]) -> None:
        if self.db_file is None:
            return
        with self.conn:
            for p, e in changed.items():
                if e is None:
                    self.conn.execute("DELETE FROM tree WHERE path = ?", (p,))
                else:
                    self.conn.execute("INSERT OR REPLACE INTO tree VALUES (?, ?, ?, ?)",
                                      (p, int(e.is_dir), e.data, e.mtime))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(self.version),))

    # -- whole-state transfer (cluster sync) ---------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"version": self.version, "entries": {
                p: [int(e.is_dir), base64.b64encode(e.data).decode(), e.mtime] for p, e in self.entries.items()}}

    def replace(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            old = set(self.entries)
            self.entries = {p: Entry(bool(d), base64.b64decode(b), m) for p, (d, b, m) in snapshot["entries"].items()}
            self.version = int(snapshot["version"])
            changed: dict[str, Entry | None] = dict.fromkeys(old - set(self.entries))
            changed.update(self.entries)
            self._persist(changed)
