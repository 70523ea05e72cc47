"""`pvecm qdevice setup|remove`: a QDevice (corosync-qnetd on another host) as a tie-breaker vote.

The same steps PVE takes: initialise qnetd's CA over SSH, give every node the CA, have the
qnetd host sign this cluster's certificate, hand it to every node, add the device to
corosync.conf, start corosync-qdevice everywhere and reload corosync.
"""

from __future__ import annotations

import copy
import subprocess
import tempfile
from pathlib import Path

from pvelab.procfs import nodename
from pvelab.pve import members
from pvelab.pve.cluster import corosync_conf as cc
from pvelab.pve.cluster import ops as cluster
from pvelab.pve.cluster.ops import ClusterError, Log

SSH = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-l", "root"]
SCP = ["scp", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
QNETD_DB = "/etc/corosync/qnetd/nssdb"
QDEVICE_DB = "/etc/corosync/qdevice/net/nssdb"


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ClusterError(f"command '{' '.join(argv)}' failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout


def _on(host: str, command: str) -> str:
    return _run(command.split()) if host == nodename() else _run([*SSH, host, command])


def setup(address: str, force: bool, log: Log) -> None:
    conf = cluster.read_conf()
    if conf is None:
        raise ClusterError(cluster.NOT_IN_A_CLUSTER)
    if "device" in conf.get("quorum", {}):
        raise ClusterError("QDevice already configured!")
    nodes = [n["name"] for n in cc.nodes(conf)]
    online = set(cluster_members_online())
    for node in nodes:
        if node not in online:
            raise ClusterError(f"All nodes must be online! Node {node} is offline, aborting.")
    odd = len(nodes) % 2 == 1
    if odd and not force:
        raise ClusterError("Clusters with an odd node count are not officially supported!")
    name = cc.cluster_name(conf)
    me = nodename()
    log("INFO: initializing qnetd server")
    _run([*SSH, address, f"test -e {QNETD_DB}/cert8.db -o -e {QNETD_DB}/cert9.db || corosync-qnetd-certutil -i"])
    with tempfile.TemporaryDirectory() as tmp:
        cacert = f"{tmp}/qnetd-cacert.crt"
        _run([*SCP, f"root@{address}:{QNETD_DB}/qnetd-cacert.crt", cacert])
        log("INFO: copying CA cert and initializing on all nodes")
        for node in nodes:
            if node != me:
                _run([*SCP, cacert, f"root@{node}:/tmp/qnetd-cacert.crt"])
            target = cacert if node == me else "/tmp/qnetd-cacert.crt"
            _on(node, f"corosync-qdevice-net-certutil -i -c {target}")
        log("INFO: generating cert request")
        _run(["corosync-qdevice-net-certutil", "-r", "-n", name])
        log("INFO: copying exported cert request to qnetd server")
        _run([*SCP, f"{QDEVICE_DB}/qdevice-net-node.crq", f"root@{address}:/tmp/qdevice-net-node.crq"])
        log("INFO: sign and export cluster cert")
        _run([*SSH, address, f"corosync-qnetd-certutil -s -c /tmp/qdevice-net-node.crq -n {name}"])
        log("INFO: copy exported CRT")
        _run([*SCP, f"root@{address}:{QNETD_DB}/cluster-{name}.crt", f"{tmp}/cluster-{name}.crt"])
        log("INFO: generate client certificate")
        _run(["corosync-qdevice-net-certutil", "-M", "-c", f"{tmp}/cluster-{name}.crt"])
        log("INFO: copy and import pk12 cert to all nodes")
        for node in nodes:
            if node != me:
                _run([*SCP, f"{QDEVICE_DB}/qdevice-net-node.p12", f"root@{node}:/tmp/qdevice-net-node.p12"])
                _on(node, "corosync-qdevice-net-certutil -m -c /tmp/qdevice-net-node.p12")
    log("INFO: add QDevice to cluster configuration")
    new = cc.bump(conf)
    new["quorum"] = {**new.get("quorum", {}), "device": {
        "model": "net", "votes": "1",
        "net": {"algorithm": "lms" if odd else "ffsplit", "host": address, "tls": "on"}}}
    cluster.write_conf(new)
    for node in nodes:
        log(f"INFO: start and enable corosync qdevice daemon on node '{node}'...")
        _on(node, "systemctl enable --now corosync-qdevice")
    log("Reloading corosync config")
    _run(["corosync-cfgtool", "-R"])


def remove(log: Log) -> None:
    conf = cluster.read_conf()
    if conf is None or "device" not in conf.get("quorum", {}):
        raise ClusterError("no QDevice configured!")
    nodes = [n["name"] for n in cc.nodes(conf)]
    for node in nodes:
        _on(node, "systemctl disable --now corosync-qdevice")
    new = copy.deepcopy(cc.bump(conf))
    del new["quorum"]["device"]
    cluster.write_conf(new)
    for node in nodes:
        _on(node, f"rm -rf {Path(QDEVICE_DB).parent}")
    _run(["corosync-cfgtool", "-R"])
    log("Removed QDevice.")


def cluster_members_online() -> list[str]:
    return [name for name, info in (members.read().get("nodelist") or {}).items() if info.get("online")]
