"""Cluster operations shared by `pvecm` and the REST API: create, join, addnode, delnode."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve import certs, version
from pvelab.pve.cluster import corosync_conf as cc
from pvelab.pve.cluster.pvecm_output import parse_status

PVE_COROSYNC = Path("/etc/pve/corosync.conf")
NOT_IN_A_CLUSTER = f"Error: Corosync config '{PVE_COROSYNC}' does not exist - is this node part of a cluster?"
COROSYNC_CONF = Path("/etc/corosync/corosync.conf")
AUTHKEY = Path("/etc/corosync/authkey")
DB_DIR = Path("/var/lib/pve-cluster")
JOIN_API_VERSION = 1
QUORUM_WAIT = 120.0

Log = Callable[[str], None]


class ClusterError(Exception):
    """An error with PVE's wording; `status` is the HTTP code the API answers with."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def local_ip() -> str:
    return socket.gethostbyname(nodename())


def read_conf() -> cc.Conf | None:
    try:
        return cc.parse(PVE_COROSYNC.read_text())
    except FileNotFoundError:
        return None


def write_conf(conf: cc.Conf) -> None:
    """PVE's atomic write: a .new file moved over corosync.conf (pmxcfs then distributes it)."""
    new = PVE_COROSYNC.with_name("corosync.conf.new")
    try:
        new.write_text(cc.dump(conf))
        new.replace(PVE_COROSYNC)
    except PermissionError as exc:
        raise ClusterError("cluster not ready - no quorum?") from exc


def quorate() -> bool:
    proc = subprocess.run(["corosync-quorumtool", "-s"], capture_output=True, text=True, check=False)
    return parse_status(proc.stdout).get("quorate") is True


def systemctl(*args: str) -> None:
    subprocess.run(["systemctl", *args], check=True, capture_output=True)


def links_from(params: dict[str, Any]) -> dict[int, tuple[str, int | None]]:
    links = {}
    for key, value in params.items():
        if key.startswith("link") and key[4:].isdigit() and value is not None:
            try:
                links[int(key[4:])] = cc.parse_link(str(value))
            except cc.ConfError as exc:
                raise ClusterError(f"{key}: {exc}", 400) from exc
    return links


def create(name: str, params: dict[str, Any], log: Log) -> None:
    if PVE_COROSYNC.exists():
        raise ClusterError(f"cluster config '{PVE_COROSYNC}' already exists")
    if AUTHKEY.exists():
        raise ClusterError(f"authentication key '{AUTHKEY}' already exists")
    links = links_from(params) or {0: (local_ip(), None)}
    token_coefficient = params.get("token-coefficient", 125) if version.major() == "9" else None
    conf = cc.create(name, nodename(), int(params.get("nodeid") or 1), int(params.get("votes") or 1), links,
                     None if token_coefficient is None else int(token_coefficient))
    log("Corosync Cluster Engine Authentication key generator.")
    log("Gathering 2048 bits for key from /dev/urandom.")
    log(f"Writing corosync key to {AUTHKEY}.")
    subprocess.run(["corosync-keygen", "-l", "-k", str(AUTHKEY)], check=True, capture_output=True)
    log(f"Writing corosync config to {PVE_COROSYNC}")
    text = cc.dump(conf)
    PVE_COROSYNC.write_text(text)
    COROSYNC_CONF.write_text(text)
    log("Restart corosync and cluster filesystem")
    systemctl("restart", "corosync")
    systemctl("restart", "pve-cluster")
    wait_for_quorum(log, quiet=True)
    certs.ensure_node_cert(nodename())
    merge_ssh_keys()


def wait_for_quorum(log: Log, quiet: bool = False, timeout: float = QUORUM_WAIT) -> None:
    if not quiet:
        log("waiting for quorum...")
    deadline = time.monotonic() + timeout
    while not (quorate() and pve_writable()):
        if time.monotonic() > deadline:
            raise ClusterError("waiting for quorum timed out")
        time.sleep(0.5)
    if not quiet:
        log("OK")


def pve_writable() -> bool:
    probe = Path("/etc/pve/.pvelab-writable")
    try:
        probe.write_text("1")
        probe.unlink()
    except OSError:
        return False
    return True


def assert_joinable(links: dict[int, tuple[str, int | None]], force: bool, log: Log) -> None:
    errors = []
    if AUTHKEY.exists():
        errors.append(f"authentication key '{AUTHKEY}' already exists")
    if PVE_COROSYNC.exists():
        errors.append(f"cluster config '{PVE_COROSYNC}' already exists")
    guests = [p for d in ("qemu-server", "lxc") for p in Path(f"/etc/pve/nodes/{nodename()}/{d}").glob("*.conf")]
    if guests:
        errors.append("this host already contains virtual guests")
    if subprocess.run(["systemctl", "is-active", "--quiet", "corosync"], check=False).returncode == 0:
        errors.append("corosync is already running, is this node already in a cluster?!")
    local = set(certs.local_addresses())
    for number, (addr, _prio) in sorted(links.items()):
        if addr not in local:
            errors.append(f"cannot use IP '{addr}' (link{number}), not configured on this node")
    if errors and not force:
        log("detected the following error(s):")
        for error in errors:
            log(f"* {error}")
        raise ClusterError("Check if node may join a cluster failed!")


def addnode(name: str, params: dict[str, Any], log: Log) -> dict[str, Any]:
    """The existing member's side of a join: add `name` to corosync.conf, hand out the key."""
    conf = read_conf()
    if conf is None:
        raise ClusterError("node is not in a cluster, no join info available!", 424)
    links = links_from(params)
    if not links and params.get("new_node_ip"):
        links = {0: (str(params["new_node_ip"]), None)}
    existing = {n["name"]: n for n in cc.nodes(conf)}
    if name in existing and not params.get("force"):
        raise ClusterError(f"can't add existing node '{name}'")
    for other, node in existing.items():
        for addr, _prio in links.values():
            for key in (k for k in node if k.startswith("ring") and k.endswith("_addr")):
                if node[key] == addr and other != name:
                    raise ClusterError(f"corosync: address '{addr}' already used on link {key} by node '{other}'")
    if set(links) != set(cc.link_numbers(conf)):
        wanted = ", ".join(f"link{n}" for n in cc.link_numbers(conf))
        raise ClusterError(f"cluster uses {wanted}; the joining node must give an address for each")
    if name in existing:
        conf = cc.without_node(conf, name)
    new_conf = cc.with_node(conf, name, params.get("nodeid"), int(params.get("votes") or 1),
                            {n: addr for n, (addr, _p) in links.items()})
    write_conf(new_conf)
    log(f"adding node {name} to cluster")
    return {"corosync_authkey": base64.b64encode(AUTHKEY.read_bytes()).decode(),
            "corosync_conf": cc.dump(new_conf), "warnings": []}


def joinable_links(params: dict[str, Any], log: Log) -> dict[int, tuple[str, int | None]]:
    """The links the joining node asks for (its own address when none are given), once it may join."""
    links = links_from(params)
    if not links:
        ip = local_ip()
        log(f"No cluster network links passed explicitly, fallback to local node IP '{ip}'")
        links = {0: (ip, None)}
    assert_joinable(links, bool(params.get("force")), log)
    return links


def link_strings(links: dict[int, tuple[str, int | None]]) -> dict[str, str]:
    return {f"link{n}": addr if prio is None else f"{addr},priority={prio}" for n, (addr, prio) in links.items()}


def join(host: str, password: str, fingerprint: str | None, params: dict[str, Any], log: Log) -> None:
    """The joining node's side, as `pvecm add` and POST /cluster/config/join do it."""
    from pvelab.pve.apiclient import ApiError, PinnedClient

    links = joinable_links(params, log)
    log(f"Establishing API connection with host '{host}'")
    client = PinnedClient(host, fingerprint)
    try:
        client.login("root@pam", password)
        log("Login succeeded.")
        log("check cluster join API version")
        apiversion = int(client.request("GET", "/cluster/config/apiversion"))
        if apiversion < JOIN_API_VERSION:
            raise ClusterError(f"error: incompatible join API version on cluster ({apiversion})")
        log("Request addition of this node")
        request: dict[str, Any] = dict(link_strings(links))
        request.update({k: params[k] for k in ("nodeid", "votes", "force") if params.get(k) is not None})
        request["apiversion"] = JOIN_API_VERSION
        answer = client.request("POST", f"/cluster/config/nodes/{nodename()}", request)
    except ApiError as exc:
        if exc.status == 401:
            raise ClusterError(f"{host}: authentication failure (wrong root password?)", 401) from exc
        raise ClusterError(str(exc)) from exc
    finish_join(answer, log)


def join_over_ssh(host: str, params: dict[str, Any], log: Log) -> None:
    """`pvecm add --use_ssh`: root SSH to the member instead of the API (ssh-copy-id asks for its
    password when the key is not trusted yet), `pvecm addnode` there, then fetch key and config."""
    links = joinable_links(params, log)
    key = ensure_root_ssh_key()
    run_or_fail(["ssh-copy-id", "-i", str(key), f"root@{host}"], "unable to copy ssh ID", quiet=True)
    command = ["ssh", host, "-o", "BatchMode=yes", "pvecm", "addnode", nodename(), "--force", "1"]
    for option in ("nodeid", "votes"):
        if params.get(option) is not None:
            command += [f"--{option}", str(params[option])]
    for option, value in link_strings(links).items():
        command += [f"--{option}", value]
    run_or_fail(command, f"unable to add node: command failed ({' '.join(command)})")
    log("copy corosync auth key")
    fetched = DB_DIR / f".pvecm_add.tmp.{os.getpid()}"
    fetched.mkdir(parents=True, exist_ok=True)
    try:
        remote = f"[{host}]" if ":" in host else host  # an IPv6 address needs brackets
        run_or_fail(["rsync", "--rsh=ssh -l root -o BatchMode=yes", "-lpgoq", f"{remote}:{AUTHKEY}",
                     f"{remote}:{PVE_COROSYNC}", str(fetched)], f"can't rsync data from host '{host}'")
        answer = {"corosync_authkey": base64.b64encode((fetched / "authkey").read_bytes()).decode(),
                  "corosync_conf": (fetched / "corosync.conf").read_text()}
    finally:
        shutil.rmtree(fetched, ignore_errors=True)
    finish_join(answer, log)


def run_or_fail(argv: list[str], error: str, quiet: bool = False) -> None:
    """Run a join step with the terminal attached (ssh may ask for a password); fail with PVE's words."""
    output = subprocess.DEVNULL if quiet else None
    if subprocess.run(argv, stdout=output, stderr=output, check=False).returncode != 0:
        raise ClusterError(error)


def finish_join(answer: dict[str, Any], log: Log) -> None:
    log("stopping pve-cluster service")
    systemctl("stop", "pve-cluster")
    backup = DB_DIR / "backup"
    backup.mkdir(parents=True, exist_ok=True)
    db = DB_DIR / "config.db"
    if db.exists():
        target = backup / f"config-{int(time.time())}.db"
        log(f"backup old database to '{target}'")
        shutil.move(str(db), target)  # the joining node takes the cluster's tree, not its own
    AUTHKEY.write_bytes(base64.b64decode(answer["corosync_authkey"]))
    AUTHKEY.chmod(0o400)
    COROSYNC_CONF.write_text(answer["corosync_conf"])
    log("starting pve-cluster service")
    systemctl("start", "corosync")
    systemctl("start", "pve-cluster")
    wait_for_quorum(log)
    log("(re)generate node files")
    log("generate new node certificate")
    certs.ensure_node_cert(nodename(), force=True)
    log("merge authorized SSH keys")
    merge_ssh_keys()
    log("generated new node certificate, restart pveproxy and pvedaemon services")  # it reloads the cert itself
    log(f"successfully added node '{nodename()}' to cluster.")


SSH_DIR = Path("/root/.ssh")
CLUSTER_AUTHORIZED_KEYS = Path("/etc/pve/priv/authorized_keys")


def merge_ssh_keys() -> None:
    """As PVE: every node's root key in /etc/pve/priv/authorized_keys, which root's
    authorized_keys points to, so nodes reach each other over SSH (qdevice setup needs it)."""
    mine = ensure_root_ssh_key().with_suffix(".pub").read_text().strip()
    local = SSH_DIR / "authorized_keys"
    lines = CLUSTER_AUTHORIZED_KEYS.read_text().splitlines() if CLUSTER_AUTHORIZED_KEYS.exists() else []
    if local.exists() and not local.is_symlink():
        lines += local.read_text().splitlines()
    merged = list(dict.fromkeys(line for line in [*lines, mine] if line.strip()))
    CLUSTER_AUTHORIZED_KEYS.write_text("\n".join(merged) + "\n")
    if not local.is_symlink():
        local.unlink(missing_ok=True)
        local.symlink_to(CLUSTER_AUTHORIZED_KEYS)


def ensure_root_ssh_key() -> Path:
    key = SSH_DIR / "id_rsa"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True)
    return key


def delnode(name: str, log: Log) -> None:
    conf = read_conf()
    if conf is None:
        raise ClusterError(NOT_IN_A_CLUSTER)
    node = next((n for n in cc.nodes(conf) if n["name"] == name), None)
    if node is None:
        raise ClusterError(f"Node/IP: {name} is not a known host of the cluster.")
    if name == nodename():
        raise ClusterError("Cannot delete myself from cluster!")
    write_conf(cc.without_node(conf, name))
    log(f"Killing node {node['nodeid']}")
    kill = subprocess.run(["corosync-cfgtool", "-k", str(node["nodeid"])], capture_output=True, text=True, check=False)
    if kill.returncode != 0:
        log("Could not kill node (error = CS_ERR_NOT_EXIST)")
