"""The replication API: /cluster/replication (the jobs in replication.cfg) and
/nodes/{node}/replication (each job's state on the node that runs it), as pve-manager's
API2/ReplicationConfig.pm and API2/Replication.pm answer."""

from __future__ import annotations

import functools
import os
import re
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve import members
from pvelab.pve.access import guard as access
from pvelab.pve.api.routes import Context, WithAttributes, refusing, route
from pvelab.pve.cluster.locks import cfs_lock
from pvelab.pve.guests import store
from pvelab.pve.replication import config, run
from pvelab.pve.replication.config import ReplicationError


def refused(handler: Any) -> Any:
    """The handler's refusals (ReplicationError, StorageError) as PVE's API answers."""
    @functools.wraps(handler)
    def call(ctx: Context, params: dict[str, Any]) -> Any:
        return refusing(lambda: handler(ctx, params))
    return call


OPTIONS = ("target", "schedule", "rate", "comment", "disable", "remove_job", "source")


def shown(job_id: str, job: dict[str, Any]) -> dict[str, Any]:
    vmid, jobnum = config.parse_job_id(job_id)
    out: dict[str, Any] = {"id": job_id, "guest": vmid, "jobnum": jobnum, **job}
    if "disable" in out:
        out["disable"] = int(out["disable"])
    if "rate" in out:
        out["rate"] = float(out["rate"])
    return out


def locked_jobs(change: Any) -> Any:
    """A change of replication.cfg under the cluster's lock for it, as PVE's lock_config."""
    with cfs_lock("file-replication_cfg", error=ReplicationError):
        return change(config.read())


def stored(params: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key in OPTIONS:
        value = params.get(key)
        if value is None:
            continue
        out[key] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


@route("GET /cluster/replication")
@refused
def job_index(ctx: Context, params: dict[str, Any]) -> Any:
    may = access.checker_for(ctx.caller.name)
    return [shown(job_id, job) for job_id, job in config.read().items()
            if may(f"/vms/{config.parse_job_id(job_id)[0]}", ["VM.Audit"])]


@route("POST /cluster/replication")
@refused
def job_create(ctx: Context, params: dict[str, Any]) -> Any:
    job_id = params["id"]
    vmid, _ = config.parse_job_id(job_id)
    access.require(ctx.caller.name, f"/vms/{vmid}", ["VM.Replicate"])
    target = params["target"]

    def create(jobs: dict[str, dict[str, Any]]) -> None:
        if job_id in jobs:
            raise ReplicationError(f"replication job '{job_id}' already exists")
        owner = store.owner(vmid)
        if owner is None:
            raise ReplicationError(f"Guest '{vmid}' does not exist.")
        if target not in (members.read().get("nodelist") or {}):
            raise ReplicationError(f"Target '{target}' does not exist.")
        if target == owner.get("node"):
            raise ReplicationError("Source and target must not be identical")
        options = store.load(owner["node"], vmid).main.options if owner.get("type") != "lxc" else {}
        if not run.replicatable_volumes(options):
            raise ReplicationError("No replicatable volumes found")
        config.write({**jobs, job_id: {"type": "local", **stored(params)}})

    locked_jobs(create)


def existing(jobs: dict[str, dict[str, Any]], job_id: str) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None:
        raise ReplicationError(f"replication job '{job_id}' does not exist")
    return job


@route("GET /cluster/replication/{id}")
@refused
def job_read(ctx: Context, params: dict[str, Any]) -> Any:
    job_id = params["id"]
    access.require(ctx.caller.name, f"/vms/{config.parse_job_id(job_id)[0]}", ["VM.Audit"])
    text = config.REPLICATION_CFG.read_text() if config.REPLICATION_CFG.exists() else ""
    return {**shown(job_id, existing(config.parse(text), job_id)), "digest": digest(text)}


def digest(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()


@route("PUT /cluster/replication/{id}")
@refused
def job_update(ctx: Context, params: dict[str, Any]) -> Any:
    job_id = params["id"]
    access.require(ctx.caller.name, f"/vms/{config.parse_job_id(job_id)[0]}", ["VM.Replicate"])
    deletes = [k for k in re.split(r"[,;\s]+", str(params.get("delete") or "")) if k]

    def update(jobs: dict[str, dict[str, Any]]) -> None:
        job = existing(jobs, job_id)
        if params.get("digest") and params["digest"] != digest(config.dump(jobs)):
            raise ReplicationError("detected modified configuration - file changed by other user? Try again.")
        for key in deletes:
            job.pop(key, None)
        job.update({k: v for k, v in stored(params).items() if k != "target"})  # target is fixed
        config.write(jobs)

    locked_jobs(update)


@route("DELETE /cluster/replication/{id}")
@refused
def job_delete(ctx: Context, params: dict[str, Any]) -> Any:
    """A job is removed by its node's next run (`remove_job`: local keeps the target's copy, full
    removes it); with force, its entry goes at once."""
    job_id = params["id"]
    access.require(ctx.caller.name, f"/vms/{config.parse_job_id(job_id)[0]}", ["VM.Replicate"])

    def delete(jobs: dict[str, dict[str, Any]]) -> None:
        job = existing(jobs, job_id)
        if params.get("force"):
            del jobs[job_id]
        else:
            job["remove_job"] = "local" if params.get("keep") else "full"
        config.write(jobs)

    locked_jobs(delete)


# -- /nodes/{node}/replication ----------------------------------------------------------------------
def status_entry(job_id: str, job: dict[str, Any]) -> dict[str, Any]:
    state = job["state"]
    out = {**{k: v for k, v in shown(job_id, {k: v for k, v in job.items() if k not in ("state",)}).items()},
           "next_sync": job["next_sync"]}
    for key in ("last_sync", "last_try", "fail_count", "error", "duration", "pid"):
        if key in state and (state[key] or key in ("fail_count", "last_sync")):
            out[key] = state[key]
    if "pid" in out and not pid_alive(int(out["pid"])):
        out.pop("pid")
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@route("GET /nodes/{node}/replication")
@refused
def node_status(ctx: Context, params: dict[str, Any]) -> Any:
    may = access.checker_for(ctx.caller.name)
    out = []
    for job_id, job in run.local_jobs(nodename()).items():
        vmid = config.parse_job_id(job_id)[0]
        if params.get("guest") is not None and vmid != int(params["guest"]):
            continue
        if may(f"/vms/{vmid}", ["VM.Audit"]):
            out.append(status_entry(job_id, job))
    return out


def local_job(job_id: str) -> dict[str, Any]:
    job = run.local_jobs(nodename()).get(job_id)
    if job is None:
        raise ReplicationError(f"no such replication job '{job_id}'")
    return job


@route("GET /nodes/{node}/replication/{id}")
@refused
def node_job_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [{"name": "schedule_now"}, {"name": "log"}, {"name": "status"}]


@route("GET /nodes/{node}/replication/{id}/status")
@refused
def node_job_status(ctx: Context, params: dict[str, Any]) -> Any:
    job_id = params["id"]
    access.require(ctx.caller.name, f"/vms/{config.parse_job_id(job_id)[0]}", ["VM.Audit"])
    return status_entry(job_id, local_job(job_id))


@route("GET /nodes/{node}/replication/{id}/log")
@refused
def node_job_log(ctx: Context, params: dict[str, Any]) -> Any:
    job_id = params["id"]
    vmid = config.parse_job_id(job_id)[0]
    if not (access.allowed(ctx.caller.name, f"/vms/{vmid}", ["VM.Audit"])
            or access.allowed(ctx.caller.name, f"/nodes/{ctx.node}", ["Sys.Audit"])):
        access.require(ctx.caller.name, f"/vms/{vmid}", ["VM.Audit"])
    try:
        lines = config.log_path(job_id).read_text().splitlines()
    except FileNotFoundError:
        lines = []
    start, limit = int(params.get("start") or 0), int(params.get("limit") or 50)
    shown_lines = [{"n": n + 1, "t": text} for n, text in enumerate(lines)][start:start + limit]
    return WithAttributes(shown_lines or [{"n": 0, "t": "no content"}], {"total": len(lines)})


@route("POST /nodes/{node}/replication/{id}/schedule_now")
@refused
def node_job_schedule_now(ctx: Context, params: dict[str, Any]) -> Any:
    """The job runs at the scheduler's next minute: its last try is forgotten (when it has a state)."""
    job_id = params["id"]
    access.require(ctx.caller.name, f"/vms/{config.parse_job_id(job_id)[0]}", ["VM.Replicate"])
    job = local_job(job_id)
    vmid = str(config.parse_job_id(job_id)[0])
    with config.state_locked():
        states = config.read_state()
        entry = states.get(vmid, {}).get(f"local/{job['target']}")
        if entry is not None:
            entry["last_try"] = 0
            config.write_state(states)
    return job_id
