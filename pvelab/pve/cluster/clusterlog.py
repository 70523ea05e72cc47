"""The cluster log pmxcfs keeps (its logger.c): a bounded ring of entries (uid, time, priority, tag,
pid, node, user, message) in memory, every node's own entries multicast to the others and every log
merged in when members meet, so each node shows the whole cluster's log, newest first.

PVE's processes hand an entry to pmxcfs over its IPC socket (PVE::Cluster::log_msg); the twin's hand
it over /etc/pve/.clusterlog: a write of one JSON object {pri, tag, pid, user, msg} (`log_msg`)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_BYTES = 131072  # CLOG_DEFAULT_SIZE: pmxcfs's ring, about a thousand entries
ENTRY_OVERHEAD = 44  # the fixed part of a clog entry (uid, time, digests, pid, priority, lengths)
DEFAULT_MAX = 50  # entries answered when none is asked for (pmxcfs's server.c)
LOG_FILE = Path("/etc/pve/.clusterlog")
PRIORITIES = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}

Entry = dict[str, Any]


def ascii_only(text: str) -> str:
    """Non-ASCII characters as PVE's log_msg writes them: \\uXXXX."""
    return "".join(c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in text)


def entry_size(entry: Entry) -> int:
    return ENTRY_OVERHEAD + sum(len(str(entry[k])) + 1 for k in ("node", "user", "tag", "msg"))


class ClusterLog:
    """One node's copy of the cluster log; `send` multicasts to the other members (None outside a cluster)."""

    def __init__(self, node: str, send: Callable[[bytes], None] | None = None) -> None:
        self.node = node
        self.send = send
        self.entries: list[Entry] = []
        self.keys: set[tuple[str, int, int]] = set()  # (node, uid, time): a restarted node counts uids anew
        self.uid = 0
        self.lock = threading.Lock()

    def add(self, pri: int, tag: str, pid: int, user: str, msg: str, when: int | None = None) -> Entry:
        """An entry of this node's own: kept, and sent to the other members."""
        with self.lock:
            self.uid += 1
            entry = {"uid": self.uid, "time": int(time.time() if when is None else when), "pri": int(pri),
                     "tag": tag, "pid": int(pid), "node": self.node, "user": user or "",
                     "msg": ascii_only(msg or "empty message")}
            self._merge([entry])
        if self.send is not None:
            self.send(json.dumps({"t": "log", "entries": [entry]}).encode())
        return entry

    def merge(self, entries: list[Entry]) -> None:
        """Entries from other members (one, or a whole log when members meet)."""
        with self.lock:
            self._merge(entries)

    def _merge(self, entries: list[Entry]) -> None:
        for entry in entries:
            key = (entry["node"], int(entry["uid"]), int(entry["time"]))
            if key not in self.keys:
                self.keys.add(key)
                self.entries.append(entry)
        self.entries.sort(key=lambda e: (e["time"], e["node"], e["uid"]))
        size = sum(entry_size(e) for e in self.entries)
        while self.entries and size > MAX_BYTES:  # the ring's oldest entries go
            oldest = self.entries.pop(0)
            self.keys.discard((oldest["node"], int(oldest["uid"]), int(oldest["time"])))
            size -= entry_size(oldest)

    def snapshot(self) -> bytes:
        """The whole log, to multicast when members meet."""
        with self.lock:
            return json.dumps({"t": "logs", "entries": self.entries}).encode()

    def dump(self) -> list[Entry]:
        """Every entry, newest first."""
        with self.lock:
            return [dict(e) for e in reversed(self.entries)]

    def virtual_file(self) -> bytes:
        """/etc/pve/.clusterlog as pmxcfs shows it: {"data": [...]}, newest first."""
        return (json.dumps({"data": self.dump()}) + "\n").encode()

    def on_message(self, msg: dict[str, Any]) -> None:
        """A member's new entry, or its whole log when members meet (this node's own come back too)."""
        self.merge(list(msg.get("entries") or ()))

    def handle_write(self, data: bytes) -> None:
        """A process of this node logging through /etc/pve/.clusterlog (one JSON object per write)."""
        request = json.loads(data)
        self.add(int(request.get("pri", 6)), str(request.get("tag") or ""), int(request.get("pid") or 0),
                 str(request.get("user") or ""), str(request.get("msg") or ""))


def pick(entries: list[Entry], user: str = "", limit: int = 0) -> list[Entry]:
    """What pmxcfs answers a reader: the newest `limit` entries (50 if 0), only `user`'s when one is named."""
    return [e for e in entries if not user or e.get("user") == user][:limit or DEFAULT_MAX]


def read() -> list[Entry]:
    """This node's copy of the cluster log, newest first ([] while pmxcfs is not there)."""
    try:
        return list(json.loads(LOG_FILE.read_bytes())["data"])
    except (OSError, ValueError, KeyError):
        return []


def process_tag() -> str:
    """The syslog tag PVE's log entries carry: the command's name (qm, pct, pvesh, ...), `pvedaemon` for the
    API server (which does pvedaemon's work here)."""
    name = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "")
    return "pvedaemon" if not name or name.endswith(".py") or name == "-m" else name


def log_msg(priority: str | int, ident: str, msg: str) -> None:
    """PVE::Cluster::log_msg: an entry into the cluster log (and nothing if pmxcfs is not there)."""
    pri = PRIORITIES.get(str(priority), priority)
    request = {"pri": int(pri), "tag": process_tag(), "pid": os.getpid(), "user": ident or "", "msg": msg}
    try:
        # never O_CREAT: with pmxcfs down, /etc/pve is a plain directory, and a file left in it would
        # stand in the way of pmxcfs's mount
        fd = os.open(LOG_FILE, os.O_WRONLY)
    except OSError:
        return  # PVE warns "writing cluster log failed" to syslog and carries on
    try:
        os.write(fd, json.dumps(request).encode())
    except OSError:
        pass
    finally:
        os.close(fd)
