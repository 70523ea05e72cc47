"""Read-only cluster facts for pve_cluster_info: through the API, with
SSH for what only the node's shell shows (votequorum figures, link status) or when the API is
not reachable."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi, cluster_status, major_of
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SshRunner
from ansible_collections.pvelab.pve.plugins.module_utils.pvecm_output import parse_cfgtool_status, parse_status


def from_api(api: PveApi) -> dict[str, Any]:
    status = cluster_status(api.get("/cluster/status"))
    cluster = status["cluster"]
    version = api.get("/version")
    facts: dict[str, Any] = {"source": "api", "pve_version": version["version"], "pve_major": major_of(version),
                             "local_node": status["local_node"], "in_cluster": cluster is not None}
    if cluster is None:
        return {**facts, "cluster_name": None, "nodes": [], "quorate": None}
    config_nodes = {n["name"]: n for n in api.get("/cluster/config/nodes")}
    nodes = []
    for entry in sorted(status["nodes"], key=lambda e: e["name"]):
        conf = config_nodes.get(entry["name"], {})
        nodes.append({"name": entry["name"], "nodeid": int(entry["nodeid"]), "online": bool(entry["online"]),
                      "local": bool(entry["local"]), "ip": entry.get("ip"),
                      "votes": int(conf.get("quorum_votes", 1)),
                      "links": {int(k[4:-5]): v for k, v in conf.items()
                                if k.startswith("ring") and k.endswith("_addr")}})
    totem = api.get("/cluster/config/totem")
    return {**facts, "cluster_name": cluster["name"], "config_version": int(cluster["version"]),
            "quorate": bool(cluster["quorate"]), "nodes": nodes, "totem": totem}


def from_ssh(ssh: SshRunner) -> dict[str, Any]:
    rc, out, err = ssh.run("pvecm status")
    if rc != 0:
        if "does not exist - is this node part of a cluster?" in err:
            return {"in_cluster": False, "cluster_name": None, "nodes": [], "quorate": None}
        raise PveError(f"'pvecm status' failed on node '{ssh.host}': {err.strip() or out.strip()}")
    status = parse_status(out)
    links = parse_cfgtool_status(ssh.check("corosync-cfgtool -s"))
    return {"in_cluster": True, "cluster_name": status.get("name"), "config_version": status.get("config_version"),
            "quorate": status.get("quorate"), "expected_votes": status.get("expected_votes"),
            "total_votes": status.get("total_votes"), "quorum": status.get("quorum"), "flags": status["flags"],
            "members": status["members"],
            "link_status": {f"link{n}": {str(k): v for k, v in peers.items()} for n, peers in links.items()}}


def gather(p: dict[str, Any]) -> dict[str, Any]:
    """API first; SSH adds votequorum and link figures, or stands in when the API cannot be reached."""
    ssh = SshRunner.from_params(p, p["api_host"]) if (p.get("ssh_key_file") or p.get("ssh_password")) else None
    try:
        facts = from_api(PveApi.from_params(p))
    except PveError:
        if ssh is None:
            raise
        facts = {"source": "ssh"}
    if ssh is not None:
        try:
            facts.update({k: v for k, v in from_ssh(ssh).items() if k not in facts or facts["source"] == "ssh"})
        finally:
            ssh.close()
    return facts
