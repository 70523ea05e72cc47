"""pmxcfs for the twin: the cluster configuration filesystem mounted at /etc/pve.

Runs in each node as pve-cluster.service (Debian python3 + python3-fuse). Without
/etc/corosync/corosync.conf the node is standalone and /etc/pve is writable; with it, the tree
is replicated over corosync CPG and writable only while the node's partition is quorate.
When /etc/pve/corosync.conf changes, the newer one is copied to /etc/corosync/ and corosync
reloads it, as pmxcfs does.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import select
import subprocess
import syslog
import threading
import time
from pathlib import Path
from typing import Any

from pvelab.pve.cluster import corosync_conf
from pvelab.pve.cluster.clusterlog import ClusterLog
from pvelab.pve.cluster.configdb import ConfigDB, OpError
from pvelab.pve.cluster.dfsm import LocalWriter, Replicator

MOUNTPOINT = "/etc/pve"
# Files PVE's installer writes into /etc/pve of a new node (storage.cfg): the twin's installer
# (pvelab/twin/node_files.py) leaves them here, and a fresh standalone database takes them once.
INSTALLER_FILES = Path("/usr/share/pvelab/installer/etc-pve")
DB_FILE = Path("/var/lib/pve-cluster/config.db")
COROSYNC_CONF = Path("/etc/corosync/corosync.conf")
CPG_GROUP = "pvelab_dcdb_v1"
WWW_DATA_GID = 33
LINKS = ("qemu-server", "lxc", "openvz")
VIRTUAL_FILES = (".members", ".version", ".vmlist", ".clusterlog")
START = time.time()


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
        self.clusterlog = ClusterLog(nodename, self._send_quietly if self.clustered else None)
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

    def _send_quietly(self, payload: bytes) -> None:
        """The cluster log's multicasts: an entry logged without corosync stays in this node's log."""
        with contextlib.suppress(Exception):  # whatever corosync answers, logging must not fail the caller
            self._send(payload)

    def _on_members(self, members: list[Any], _left: list[Any], _joined: list[Any]) -> None:
        assert isinstance(self.writer, Replicator)
        self.online = {m.nodeid for m in members}
        self.writer.on_members((self.local_nodeid, os.getpid()), [(m.nodeid, m.pid) for m in members])
        self._send_quietly(self.clusterlog.snapshot())  # members meeting merge their logs, as pmxcfs does

    def _on_message(self, sender: tuple[int, int], payload: bytes) -> None:
        """CPG deliveries: cluster log entries to the log, everything else to the database's replicator."""
        assert isinstance(self.writer, Replicator)
        if payload.startswith((b'{"t": "log"', b'{"t": "logs"')):
            self.clusterlog.on_message(json.loads(payload))
        else:
            self.writer.on_message(sender, payload)

    def _cpg_loop(self) -> None:
        from pvelab.pve.cluster.corosync import CorosyncError, CpgGroup, Quorum

        assert isinstance(self.writer, Replicator)
        replicator = self.writer
        while True:
            quorum: Quorum | None = None
            group: CpgGroup | None = None
            try:
                quorum = self.quorum = Quorum()
                group = CpgGroup(CPG_GROUP, lambda n, p, m: self._on_message((n, p), m), self._on_members)
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
                self.quorum = None
                replicator.on_disconnect()
                for handle in (group, quorum):  # every retry opens new handles: let the old ones go
                    with contextlib.suppress(CorosyncError, OSError):
                        if handle is not None:
                            handle.close()
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
                  "priv", "priv/lock", "ha"]
        for path in wanted:
            if self.db.get(path) is None:
                try:
                    self.writer.submit({"op": "mkdir", "path": path})
                except OpError:
                    return
        if not self.clustered:
            self.seed_installer_files()

    def seed_installer_files(self) -> None:
        """What PVE's installer leaves in /etc/pve of a new node, written once (never over a user's file)."""
        seeds = sorted(INSTALLER_FILES.iterdir()) if INSTALLER_FILES.is_dir() else []
        for seed in seeds:
            if self.db.get(seed.name) is None:
                with contextlib.suppress(OpError, OSError):
                    self.writer.submit({"op": "write", "path": seed.name,
                                        "data": base64.b64encode(seed.read_bytes()).decode()})

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
            return (json.dumps({"version": self.db.version, "ids": vmlist(self.db)}) + "\n").encode()
        return self.clusterlog.virtual_file()

    def corosync(self) -> dict[str, Any] | None:
        data = self.db.read("corosync.conf")
        if data is None:
            return None
        try:
            return corosync_conf.parse(data.decode())
        except (corosync_conf.ConfError, UnicodeDecodeError):
            return None


def vmlist(db: ConfigDB) -> dict[str, dict[str, Any]]:
    """Every guest of the cluster, as pmxcfs's .vmlist lists them: {vmid: {node, type, version}}."""
    ids: dict[str, dict[str, Any]] = {}
    for node in db.children("nodes"):
        for subdir, kind in (("qemu-server", "qemu"), ("lxc", "lxc")):
            for name in db.children(f"nodes/{node}/{subdir}"):
                if name.endswith(".conf") and name[:-5].isdigit():
                    ids[name[:-5]] = {"node": node, "type": kind, "version": db.version}
    return ids
