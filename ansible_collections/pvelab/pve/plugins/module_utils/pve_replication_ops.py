"""Storage replication through the API: a guest's job to a target node (/cluster/replication,
pve_replication), optionally waiting for its first sync on the guest's node. Refusals come before
check mode."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_poll import poll

OPTIONS = ("schedule", "rate", "comment", "disable")


def wanted(p: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key in ("schedule", "comment"):
        if p.get(key) is not None:
            out[key] = str(p[key])
    if p.get("rate") is not None:
        out["rate"] = format_rate(p["rate"])
    if p.get("enabled") is not None:
        out["disable"] = "0" if p["enabled"] else "1"
    return out


def format_rate(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def current(job: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {k: str(job[k]) for k in ("schedule", "comment") if k in job}
    if "rate" in job:
        out["rate"] = format_rate(job["rate"])
    out["disable"] = "1" if str(job.get("disable", "0")) in ("1", "True", "true") else "0"
    return out


def guest_node(api: PveApi, vmid: int) -> str:
    found = next((g for g in api.get("/cluster/resources", type="vm") if int(g["vmid"]) == vmid), None)
    if found is None:
        raise PveError(f"replication of guest {vmid}: there is no guest {vmid} in the cluster - create it first "
                       "(pve_guest)")
    return str(found["node"])


def ensure_replication(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    vmid, target = p["vmid"], p["target"]
    jobs = [j for j in api.get("/cluster/replication") if int(j["guest"]) == vmid]
    job = next((j for j in jobs if j["target"] == target), None)
    what = f"replication of guest {vmid} to {target}"
    if p["state"] == "absent":
        if job is None:
            return {"changed": False, "id": None}
        result = {"changed": True, "id": job["id"], "diff": {"before": current(job), "after": {}}}
        if check_mode:
            return {**result, "msg": f"{what} would be removed ({'keeping' if p['keep_replica'] else 'with'} "
                                     f"the copy on {target})"}
        api.delete(f"/cluster/replication/{job['id']}", **({"keep": 1} if p["keep_replica"] else {}))
        return result
    node = guest_node(api, vmid)
    nodes = {n["node"] for n in api.get("/nodes")}
    if target not in nodes:
        raise PveError(f"{what}: there is no node '{target}' (nodes: {', '.join(sorted(nodes))})")
    want = wanted(p)
    if job is None:
        if node == target:
            back = next((j["target"] for j in jobs), None)
            raise PveError(f"{what}: the guest runs on {target} itself" + (
                f" - it moved there (HA recovery or a migration) and its job now replicates back to {back}: "
                f"give target {back}, or move the guest back first" if back else
                " - replicate it to another node"))
        used = {int(j["jobnum"]) for j in jobs}
        jobnum = p["jobnum"] if p.get("jobnum") is not None else next(n for n in range(len(used) + 1) if n not in used)
        job_id = f"{vmid}-{jobnum}"
        result = {"changed": True, "id": job_id, "config": want, "diff": {"before": {}, "after": want}}
        if check_mode:
            return {**result, "msg": f"{what} would be created as job {job_id}"}
        api.post("/cluster/replication", id=job_id, target=target, type="local", **want)
    else:
        job_id = job["id"]
        have = current(job)
        changes = {k: v for k, v in want.items() if have.get(k, "0" if k == "disable" else None) != v}
        result = {"changed": bool(changes), "id": job_id, "config": {**have, **changes}}
        if changes:
            result["diff"] = {"before": have, "after": {**have, **changes}}
            if check_mode:
                return {**result, "msg": f"{what} would be updated ({', '.join(sorted(changes))})"}
            api.put(f"/cluster/replication/{job_id}", **changes)
    if p["wait_for_sync"] and not check_mode:
        result["last_sync"] = wait_for_sync(api, node, job_id, p["sync_timeout"])
    return result


def wait_for_sync(api: PveApi, node: str, job_id: str, timeout: int) -> int:
    """The job's first successful sync (its node's pvescheduler runs it within a minute of being due)."""
    seen: dict[str, Any] = {}

    def synced() -> int | None:
        seen.update(api.get(f"/nodes/{node}/replication/{job_id}/status"))
        return int(seen["last_sync"]) if seen.get("last_sync") else None

    found = poll(synced, timeout, interval=2)
    if found is None:
        raise PveError(f"replication job {job_id} did not sync within {timeout} s (fail count "
                       f"{seen.get('fail_count', 0)}{', error: ' + str(seen['error']) if seen.get('error') else ''}) "
                       f"- see `pvesr status` and /var/log/pve/replicate/{job_id} on {node}")
    return found
