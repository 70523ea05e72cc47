"""Cluster membership logic behind pve_cluster: what the node is part of, creating a cluster,
joining one (API or pvecm over SSH), removing a node. Every refusal is checked before check mode
returns, so `--check` says what a real run would do."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi, cluster_status
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SshRunner

CLUSTER_NAME = re.compile(r"[A-Za-z0-9-]{1,15}")


def membership(api: PveApi) -> dict[str, Any]:
    """{node, cluster (name or None), nodes: [names], online: [names], quorate, config_version}."""
    status = cluster_status(api.get("/cluster/status"))
    cluster, nodes = status["cluster"], status["nodes"]
    return {
        "node": status["local_node"],
        "cluster": cluster["name"] if cluster else None,
        "nodes": sorted(n["name"] for n in nodes) if cluster else [],
        "online": sorted(n["name"] for n in nodes if n.get("online")) if cluster else [],
        "quorate": bool(cluster["quorate"]) if cluster else True,
        "config_version": cluster.get("version") if cluster else None,
    }


def link_params(links: list[str] | None) -> dict[str, str]:
    return {f"link{number}": link for number, link in enumerate(links or []) if link}


def create(api: PveApi, node: str, name: str, links: list[str] | None, nodeid: int | None, votes: int | None,
           timeout: float) -> list[str]:
    upid = api.post("/cluster/config", clustername=name, nodeid=nodeid, votes=votes, **link_params(links))
    return api.wait_for_task(node, upid, timeout, reconnect=True)  # pve-cluster restarts under the API


def join_fingerprint(join_api: PveApi, join_host: str) -> str:
    info = join_api.get("/cluster/config/join")
    preferred = info.get("preferred_node")
    for entry in info["nodelist"]:
        if entry["name"] == preferred or entry.get("pve_addr") == join_host:
            return str(entry["pve_fp"])
    return str(info["nodelist"][0]["pve_fp"])


def join_via_api(api: PveApi, node: str, join_host: str, password: str, fingerprint: str,
                 links: list[str] | None, nodeid: int | None, votes: int | None, timeout: float) -> list[str]:
    upid = api.post("/cluster/config/join", hostname=join_host, password=password, fingerprint=fingerprint,
                    nodeid=nodeid, votes=votes, **link_params(links))
    return api.wait_for_task(node, upid, timeout, reconnect=True)  # the joining node drops API sessions


def join_via_ssh(ssh: SshRunner, join_host: str, password: str, fingerprint: str, links: list[str] | None,
                 nodeid: int | None, votes: int | None, timeout: float) -> list[str]:
    args = [f"pvecm add {join_host}", f"--fingerprint {fingerprint}"]
    args += [f"--{key} {value}" for key, value in link_params(links).items()]
    args += [f"--nodeid {nodeid}"] if nodeid else []
    args += [f"--votes {votes}"] if votes is not None else []
    rc, out, err = ssh.run(" ".join(args), stdin=password + "\n", timeout=timeout)
    if rc != 0:
        raise PveError(f"Failed to join node '{ssh.host}' to the cluster via 'pvecm add': {(err or out).strip()}")
    return out.splitlines()


def check_joinable(target: dict[str, Any], member: dict[str, Any], cluster_name: str, join_host: str) -> None:
    if target["cluster"] is not None and target["cluster"] != cluster_name:
        raise already_a_member(target)
    if member["cluster"] is None:
        raise PveError(f"join_host '{join_host}' is not in a cluster — create cluster '{cluster_name}' first "
                       "(run pve_cluster on the first node without join_host)")
    if member["cluster"] != cluster_name:
        raise PveError(f"join_host '{join_host}' is a member of cluster '{member['cluster']}', not "
                       f"'{cluster_name}' — check cluster_name or join_host")
    if not member["quorate"]:
        raise PveError(f"cluster '{cluster_name}' has no quorum (seen from '{join_host}'): a join would fail — "
                       "bring enough nodes back online first")


def already_a_member(state: dict[str, Any]) -> PveError:
    return PveError(f"{state['node']} is already a member of cluster '{state['cluster']}' — remove it with "
                    "pvecm delnode on that cluster, or choose another node")


def check_removable(state: dict[str, Any], node: str, force: bool) -> None:
    """The refusals of a removal, run before check mode returns (seen from the member at api_host)."""
    if node == state["node"]:
        raise PveError(f"cannot remove '{node}' through its own API — point api_host at another member")
    if node in state["online"] and not force:
        raise PveError(f"node '{node}' is still online: power it off first (removing a running node can "
                       "break the cluster), or set force: true if you know it will not come back as is")


def ensure_membership(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """pve_cluster's whole job: compare the node's membership with what is asked, change only the
    difference, and say what changed (with a before/after diff)."""
    validate_cluster_name(p["cluster_name"])
    api = PveApi.from_params(p)
    before = membership(api)
    if p["state"] == "absent":
        return ensure_absent(api, before, p, check_mode)
    name = p["cluster_name"]
    if before["cluster"] == name:
        return {"changed": False, "action": "none", "membership": before}
    if p["join_host"] is None:
        if before["cluster"] is not None:
            raise already_a_member(before)
        action = "created"
    else:
        action = "joined"
        join_api = PveApi.from_params(p, host=p["join_host"])
        join_api.password = p["join_password"] or join_api.password
        check_joinable(before, membership(join_api), name, p["join_host"])
        join_password(p)
    if check_mode:
        after = {**before, "cluster": name}
        return {"changed": True, "action": action, "membership": after, "task_log": [],
                "msg": f"{before['node']} would be {action} ({'cluster' if action == 'created' else 'into'} '{name}')",
                "diff": {"before": before, "after": after}}
    if action == "created":
        log = create(api, before["node"], name, p["links"], p["nodeid"], p["votes"], p["timeout"])
    else:
        log = join(api, before["node"], join_api, p)
    after = membership(PveApi.from_params(p))
    return {"changed": True, "action": action, "membership": after, "task_log": log,
            "diff": {"before": before, "after": after}}


def ensure_absent(api: PveApi, before: dict[str, Any], p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    node = p["node"]
    if node not in before["nodes"]:
        return {"changed": False, "action": "none", "membership": before}
    check_removable(before, node, p["force"])
    after = {**before, "nodes": [n for n in before["nodes"] if n != node],
             "online": [n for n in before["online"] if n != node]}
    result = {"changed": True, "action": "removed", "membership": after, "diff": {"before": before, "after": after}}
    if check_mode:
        return {**result, "msg": f"'{node}' would be removed from cluster '{before['cluster']}'"}
    api.delete(f"/cluster/config/nodes/{node}")
    return result


def validate_cluster_name(name: str) -> None:
    """PVE's rule (1-15 letters, digits, dashes), checked here so the error comes before any change."""
    if not CLUSTER_NAME.fullmatch(name):
        raise PveError(f"cluster_name '{name}' is not valid: PVE allows 1-15 characters of letters, digits "
                       "and '-' (corosync's cluster_name) — choose a shorter or simpler name")


def join_password(p: dict[str, Any]) -> str:
    password = p["join_password"] or p["api_password"]
    if password is None:
        raise PveError("join_password is required when authenticating with an API token (joining logs in to "
                       "join_host as root@pam)")
    return str(password)


def join(api: PveApi, node: str, join_api: PveApi, p: dict[str, Any]) -> list[str]:
    fingerprint = p["join_fingerprint"] or join_fingerprint(join_api, p["join_host"])
    password = join_password(p)
    if p["join_method"] == "ssh":
        ssh = SshRunner.from_params(p, p["api_host"])
        try:
            return join_via_ssh(ssh, p["join_host"], password, fingerprint, p["links"], p["nodeid"], p["votes"],
                                p["timeout"])
        finally:
            ssh.close()
    return join_via_api(api, node, p["join_host"], password, fingerprint, p["links"], p["nodeid"], p["votes"],
                        p["timeout"])
