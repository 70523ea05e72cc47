"""Keeping the configuration database identical on every member of a CPG group.

Every change is an operation multicast in agreed order and applied by every member on
delivery, the writer included (its call returns once its own operation is applied). After a
membership change, members exchange (version, digest); if they differ, the member with the
newest tree (highest version, then lowest node id) sends it whole and the others take it.
Only a quorate partition accepts writes, so after a partition heals the majority's tree wins.
"""

from __future__ import annotations

import errno
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pvelab.pve.cluster.configdb import ConfigDB, OpError

Member = tuple[int, int]  # (nodeid, pid)
SYNC_WAIT = 10.0


class NotReady(OpError):
    pass


class Replicator:
    def __init__(self, db: ConfigDB, send: Callable[[bytes], None], quorate: Callable[[], bool],
                 on_change: Callable[[set[str]], None] = lambda _paths: None) -> None:
        self.db = db
        self.send = send
        self.quorate = quorate
        self.on_change = on_change
        self.local: Member | None = None
        self.members: list[Member] = []
        self.states: dict[Member, tuple[int, str]] = {}
        self.synced = threading.Event()
        self.pending: dict[str, tuple[threading.Event, list[OpError]]] = {}

    # -- called from the CPG thread ---------------------------------------------------------------
    def on_members(self, local: Member, members: list[Member]) -> None:
        self.local = local
        self.members = sorted(members)
        self.states = {}
        self.synced.clear()
        self._multicast({"t": "state", "members": self.members, "version": self.db.version,
                         "digest": self.db.digest()})

    def on_disconnect(self) -> None:
        self.synced.clear()
        self.members = []
        for event, errors in self.pending.values():
            errors.append(NotReady(errno.EACCES, "lost the cluster connection"))
            event.set()

    def on_message(self, sender: Member, payload: bytes) -> None:
        msg = json.loads(payload)
        kind = msg["t"]
        if kind == "state":
            if [tuple(m) for m in msg["members"]] == self.members:
                self.states[sender] = (int(msg["version"]), msg["digest"])
                if set(self.states) == set(self.members):
                    self._decide()
        elif kind == "full":
            if msg["digest"] != self.db.digest():
                self.db.replace(msg["snapshot"])
                self.on_change({"*"})
            self.synced.set()
        elif kind == "op":
            self._apply(sender, msg["op"], msg["req"])

    def _decide(self) -> None:
        digests = {digest for _, digest in self.states.values()}
        if len(digests) == 1:
            self.synced.set()
            return
        leader = min(self.states, key=lambda m: (-self.states[m][0], m[0], m[1]))
        if leader == self.local:
            self._multicast({"t": "full", "digest": self.db.digest(), "snapshot": self.db.snapshot()})

    def _apply(self, sender: Member, op: dict[str, Any], req: str) -> None:
        error: OpError | None = None
        try:
            self.db.apply(op)
        except OpError as exc:
            error = exc
        else:
            self.on_change({op["path"], op.get("to", op["path"])})
        if sender == self.local and req in self.pending:
            event, errors = self.pending[req]
            if error is not None:
                errors.append(error)
            event.set()

    def _multicast(self, msg: dict[str, Any]) -> None:
        self.send(json.dumps(msg).encode())

    # -- called by filesystem threads ------------------------------------------------------------
    def submit(self, op: dict[str, Any], timeout: float = SYNC_WAIT) -> None:
        if not self.synced.wait(timeout):
            raise NotReady(errno.EACCES, "cluster not ready - not synchronized")
        if not self.quorate():
            raise NotReady(errno.EACCES, "cluster not ready - no quorum?")
        with self.db.lock:
            self.db.check(op)
        op = {**op, "mtime": time.time()}  # stamped once, so every member stores the same entry
        req = uuid.uuid4().hex
        event: threading.Event = threading.Event()
        errors: list[OpError] = []
        self.pending[req] = (event, errors)
        try:
            self._multicast({"t": "op", "op": op, "req": req})
            event.wait()  # as pmxcfs: until our own message comes back; a lost connection releases it
        finally:
            self.pending.pop(req, None)
        if errors:
            raise errors[0]


class LocalWriter:
    """A node outside any cluster: changes apply at once (pmxcfs's local mode)."""

    def __init__(self, db: ConfigDB, on_change: Callable[[set[str]], None] = lambda _paths: None) -> None:
        self.db = db
        self.on_change = on_change

    def submit(self, op: dict[str, Any], timeout: float = SYNC_WAIT) -> None:
        self.db.apply(op)
        self.on_change({op["path"], op.get("to", op["path"])})
