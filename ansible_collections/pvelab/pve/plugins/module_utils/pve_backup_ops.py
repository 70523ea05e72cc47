"""Backups through the API: a scheduled vzdump job in /etc/pve/jobs.cfg (/cluster/backup, pve_backup_job)
and a backup run now (POST /nodes/{node}/vzdump, pve_backup), waiting for its task. Refusals come before
check mode."""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

# pve_backup_job options, as jobs.cfg spells them.
JOB_OPTIONS = ("schedule", "storage", "mode", "compress", "node", "comment", "enabled", "mailto", "notes-template",
               "protected")
# What a backup keeps beside it (doc fragment pvelab.pve.backup_retention), in both modules' argument specs.
RETENTION_ARGUMENT_SPEC: dict[str, Any] = {
    "prune_backups": {"type": "dict", "options": {
        "keep_all": {"type": "bool"}, "keep_last": {"type": "int"}, "keep_hourly": {"type": "int"},
        "keep_daily": {"type": "int"}, "keep_weekly": {"type": "int"}, "keep_monthly": {"type": "int"},
        "keep_yearly": {"type": "int"}}},
    "protected": {"type": "bool"},
    "notes_template": {"type": "str"},
}
KEEP_OPTIONS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def retention(keep: dict[str, Any] | None, what: str) -> str | None:
    """A prune_backups dict as PVE's property string (sorted; none above zero is keep-all=1, as PVE
    stores it); None when not given. keep_all beside another option is refused, as PVE refuses it."""
    if keep is None:
        return None
    given = {k: v for k, v in keep.items() if v is not None}
    counts = {k: int(v) for k, v in given.items() if k in KEEP_OPTIONS}
    if given.get("keep_all") and any(counts.values()):
        raise PveError(f"{what}: prune_backups keep_all cannot be set together with other options - keep "
                       "everything (keep_all) or give counts, not both")
    if not any(counts.values()):
        return "keep-all=1"
    return ",".join(f"{k.replace('_', '-')}={v}" for k, v in sorted(counts.items()))


def print_retention(value: Any) -> str:
    """The API's prune-backups (an object on PVE's GET, a string on some) as retention() prints it."""
    if isinstance(value, dict):
        counts = {k: int(v) for k, v in value.items() if k != "keep-all" and int(v) > 0}
        return ",".join(f"{k}={v}" for k, v in sorted(counts.items())) or "keep-all=1"
    return str(value)


def wanted_job(p: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in JOB_OPTIONS:
        value = p.get(key.replace("-", "_"))
        if value is not None:
            out[key] = str(int(value)) if isinstance(value, bool) else str(value)
    if p.get("vmids"):
        out["vmid"] = ",".join(str(v) for v in sorted(p["vmids"]))
    if p.get("all_guests") is not None:
        out["all"] = str(int(p["all_guests"]))
    keep = retention(p.get("prune_backups"), f"backup job '{p['id']}'")
    if keep is not None:
        out["prune-backups"] = keep
    return out


def current_job(entry: dict[str, Any]) -> dict[str, str]:
    out = {k: str(v) for k, v in entry.items() if k in (*JOB_OPTIONS, "vmid", "all")}
    if "vmid" in out:
        out["vmid"] = ",".join(sorted(out["vmid"].split(","), key=int))
    if "prune-backups" in entry:
        out["prune-backups"] = print_retention(entry["prune-backups"])
    return out


def ensure_job(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    job_id = p["id"]
    entry = next((j for j in api.get("/cluster/backup") if j.get("id") == job_id), None)
    if p["state"] == "absent":
        if entry is None:
            return {"changed": False, "id": job_id}
        result = {"changed": True, "id": job_id, "diff": {"before": current_job(entry), "after": {}}}
        if check_mode:
            return {**result, "msg": f"backup job '{job_id}' would be removed (its backups stay)"}
        api.delete(f"/cluster/backup/{job_id}")
        return result
    want = wanted_job(p)
    if p.get("storage"):
        storages = {s["storage"]: s for s in api.get("/storage")}
        if p["storage"] not in storages:
            raise PveError(f"backup job '{job_id}': there is no storage '{p['storage']}' "
                           f"(storages: {', '.join(sorted(storages))})")
        if "backup" not in str(storages[p["storage"]].get("content", "")).split(","):
            raise PveError(f"backup job '{job_id}': storage '{p['storage']}' does not hold backups - add 'backup' "
                           "to its content (pve_storage content)")
    if entry is None:
        if not want.get("schedule"):
            raise PveError(f"backup job '{job_id}' does not exist yet: give its schedule (e.g. '21:00' or "
                           "'mon..fri 02:30')")
        if "vmid" not in want and want.get("all") != "1":
            raise PveError(f"backup job '{job_id}' needs vmids, or all_guests: true")
        result = {"changed": True, "id": job_id, "config": want, "diff": {"before": {}, "after": want}}
        if check_mode:
            return {**result, "msg": f"backup job '{job_id}' would be created"}
        api.post("/cluster/backup", id=job_id, **want)
        return result
    have = current_job(entry)
    changes = {k: v for k, v in want.items() if have.get(k, "1" if k == "enabled" else None) != v}
    if not changes:
        return {"changed": False, "id": job_id, "config": have}
    after = {**have, **changes}
    result = {"changed": True, "id": job_id, "config": after, "diff": {"before": have, "after": after}}
    if check_mode:
        return {**result, "msg": f"backup job '{job_id}' would be updated ({', '.join(sorted(changes))})"}
    api.put(f"/cluster/backup/{job_id}", **changes)
    return result


def run_backup(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """vzdump now, on the node holding the guest; always a change (a new archive)."""
    keep = retention(p.get("prune_backups"), f"backup of guest {p['vmid']}")
    api = PveApi.from_params(p)
    guest = next((g for g in api.get("/cluster/resources", type="vm") if int(g["vmid"]) == p["vmid"]), None)
    if guest is None:
        raise PveError(f"guest {p['vmid']} does not exist in the cluster: nothing to back up")
    node = str(guest["node"])
    if p.get("max_age") is not None:
        newest = newest_backup(api, node, p["storage"], p["vmid"])
        if newest is not None and time.time() - newest["ctime"] <= p["max_age"] * 3600:
            return {"changed": False, "vmid": p["vmid"], "node": node, "archive": newest["volid"],
                    "msg": f"guest {p['vmid']} has a backup on '{p['storage']}' younger than {p['max_age']} h"}
    result = {"changed": True, "vmid": p["vmid"], "node": node}
    if check_mode:
        return {**result, "msg": f"guest {p['vmid']} would be backed up on node '{node}' to '{p['storage']}' "
                                 f"({p['mode']} mode)"}
    params = {"vmid": p["vmid"], "storage": p["storage"], "mode": p["mode"], "compress": p["compress"]}
    for key in ("protected", "notes_template"):
        if p.get(key) is not None:
            params[key.replace("_", "-")] = int(p[key]) if isinstance(p[key], bool) else p[key]
    if keep is not None:
        params["prune-backups"] = keep
    upid = api.post(f"/nodes/{node}/vzdump", **params)
    try:
        log = api.wait_for_task(node, upid, p["task_timeout"])
    except PveError as exc:
        raise PveError(str(exc), {"changed": True}) from exc
    archive = next((line.split("'")[1] for line in log if "creating vzdump archive '" in line
                    or "creating archive '" in line), None)
    return {**result, "archive": archive, "task_log": log}


def newest_backup(api: PveApi, node: str, storage: str, vmid: int) -> dict[str, Any] | None:
    """The guest's newest archive on the storage ({volid, ctime, ...}), as the node holding it lists it."""
    try:
        archives = api.get(f"/nodes/{node}/storage/{storage}/content", content="backup", vmid=vmid)
    except PveError as exc:
        raise PveError(f"cannot list the backups on storage '{storage}' from node '{node}': {exc} - is the storage "
                       "defined, enabled on that node and holding content 'backup'?") from exc
    return max(archives, key=lambda a: a.get("ctime", 0), default=None)
