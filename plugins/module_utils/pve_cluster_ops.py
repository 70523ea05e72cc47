"""Cluster membership logic behind pve_cluster (and read by pve_cluster_info): what the node is
part of, creating a cluster, joining one (API or pvecm over SSH), removing a node."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.pve_api import PveApi
from ansible.module_utils.pve_errors import PveError
from ansible.module_utils.pve_ssh import SshRunner

JOIN_TIMEOUT = 600


def membership(api: PveApi) -> dict[str, Any]:
    """{node, cluster (name or None), nodes: [names], online: [names], quorate, config_version}."""
    entries = api.get("/cluster/status")
    local = next((e for e in entries if e.get("type") == "node" and e.get("local")), None)
    cluster = next((e for e in entries if e.get("type") == "cluster"), None)
    nodes = sorted(e["name"] for e in entries if e.get("type") == "node")
    return {
        "node": local["name"] if local else None,
        "cluster": cluster["name"] if cluster else None,
        "nodes": nodes if cluster else [],
        "online": sorted(e["name"] for e in entries if e.get("type") == "node" and e.get("online")) if cluster else [],
        "quorate": bool(cluster["quorate"]) if cluster else True,
        "config_version": cluster.get("version") if cluster else None,
    }


def link_params(links: list[str] | None) -> dict[str, str]:
    return {f"link{number}": link for number, link in enumerate(links or []) if link}


def create(api: PveApi, name: str, links: list[str] | None, nodeid: int | None, votes: int | None,
           timeout: float) -> list[str]:
    node = membership(api)["node"]
    upid = api.post("/cluster/config", clustername=name, nodeid=nodeid, votes=votes, **link_params(links))
    return api.wait_for_task(node, upid, timeout, reconnect=True)  # pve-cluster restarts under the API


def join_fingerprint(join_api: PveApi, join_host: str) -> str:
    info = join_api.get("/cluster/config/join")
    preferred = info.get("preferred_node")
    for entry in info["nodelist"]:
        if entry["name"] == preferred or entry.get("pve_addr") == join_host:
            return str(entry["pve_fp"])
    return str(info["nodelist"][0]["pve_fp"])


def join_via_api(api: PveApi, join_host: str, password: str, fingerprint: str, links: list[str] | None,
                 nodeid: int | None, votes: int | None, timeout: float) -> list[str]:
    node = membership(api)["node"]
    upid = api.post("/cluster/config/join", hostname=join_host, password=password, fingerprint=fingerprint,
                    nodeid=nodeid, votes=votes, **link_params(links))
    return api.wait_for_task(node, upid, timeout, reconnect=True)  # the joining node drops API sessions


def join_via_ssh(ssh: SshRunner, join_host: str, password: str, fingerprint: str, links: list[str] | None,
                 nodeid: int | None, votes: int | None) -> list[str]:
    args = [f"pvecm add {join_host}", f"--fingerprint {fingerprint}"]
    args += [f"--{key} {value}" for key, value in link_params(links).items()]
    args += [f"--nodeid {nodeid}"] if nodeid else []
    args += [f"--votes {votes}"] if votes is not None else []
    rc, out, err = ssh.run(" ".join(args), stdin=password + "\n", timeout=JOIN_TIMEOUT)
    if rc != 0:
        raise PveError(f"Failed to join node '{ssh.host}' to the cluster via 'pvecm add': {(err or out).strip()}")
    return out.splitlines()


def check_joinable(target: dict[str, Any], member: dict[str, Any], cluster_name: str, join_host: str) -> None:
    if target["cluster"] is not None and target["cluster"] != cluster_name:
        raise PveError(f"{target['node']} is already a member of cluster '{target['cluster']}' — remove it with "
                       "pvecm delnode on that cluster, or choose another node")
    if member["cluster"] is None:
        raise PveError(f"join_host '{join_host}' is not in a cluster — create cluster '{cluster_name}' first "
                       "(run pve_cluster on the first node without join_host)")
    if member["cluster"] != cluster_name:
        raise PveError(f"join_host '{join_host}' is a member of cluster '{member['cluster']}', not "
                       f"'{cluster_name}' — check cluster_name or join_host")
    if not member["quorate"]:
        raise PveError(f"cluster '{cluster_name}' has no quorum (seen from '{join_host}'): a join would fail — "
                       "bring enough nodes back online first")


def remove_node(member_api: PveApi, node: str, force: bool) -> None:
    state = membership(member_api)
    if node == state["node"]:
        raise PveError(f"cannot remove '{node}' through its own API — point api_host at another member")
    if node in state["online"] and not force:
        raise PveError(f"node '{node}' is still online: power it off first (removing a running node can "
                       "break the cluster), or set force: true if you know it will not come back as is")
    member_api.delete(f"/cluster/config/nodes/{node}")


def ensure_membership(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """pve_cluster's whole job: compare the node's membership with what is asked, change only the
    difference, and say what changed (with a before/after diff)."""
    api = PveApi.from_params(p)
    before = membership(api)
    name = p["cluster_name"]
    if p["state"] == "absent":
        if p["node"] not in before["nodes"]:
            return {"changed": False, "action": "none", "membership": before}
        if not check_mode:
            remove_node(api, p["node"], p["force"])
        after = {**before, "nodes": [n for n in before["nodes"] if n != p["node"]]}
        return {"changed": True, "action": "removed", "membership": after, "diff": {"before": before, "after": after}}
    if before["cluster"] == name:
        return {"changed": False, "action": "none", "membership": before}
    log: list[str] = []
    if p["join_host"] is None:
        if before["cluster"] is not None:
            raise PveError(f"{before['node']} is already a member of cluster '{before['cluster']}' — remove it with "
                           "pvecm delnode on that cluster, or choose another node")
        action = "created"
        if not check_mode:
            log = create(api, name, p["links"], p["nodeid"], p["votes"], p["timeout"])
    else:
        action = "joined"
        join_api = PveApi.from_params(p, host=p["join_host"])
        join_api.password = p["join_password"] or join_api.password
        check_joinable(before, membership(join_api), name, p["join_host"])
        if not check_mode:
            log = join(api, join_api, p)
    after = {**before, "cluster": name} if check_mode else membership(PveApi.from_params(p))
    return {"changed": True, "action": action, "membership": after, "task_log": log,
            "diff": {"before": before, "after": after}}


def join(api: PveApi, join_api: PveApi, p: dict[str, Any]) -> list[str]:
    fingerprint = p["join_fingerprint"] or join_fingerprint(join_api, p["join_host"])
    password = p["join_password"] or p["api_password"]
    if password is None:
        raise PveError("join_password is required when authenticating with an API token (joining logs in to "
                       "join_host as root@pam)")
    if p["join_method"] == "ssh":
        return join_via_ssh(SshRunner.from_params(p, p["api_host"]), p["join_host"], password, fingerprint,
                            p["links"], p["nodeid"], p["votes"])
    return join_via_api(api, p["join_host"], password, fingerprint, p["links"], p["nodeid"], p["votes"],
                        p["timeout"])
