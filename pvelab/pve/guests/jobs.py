"""Backup jobs: /etc/pve/jobs.cfg (PVE's section config, `vzdump: ID`), the /cluster/backup API
and `pvescheduler`, the daemon on every node that runs each due job for the node's own guests
once a minute, as PVE's pvescheduler does.

Schedules are PVE calendar events in the forms the GUI offers: `21:00`, `mon..fri 02:30`,
`sat,sun 0/6:00`, `*/15` (minutes), and `minutely`, `hourly`, `daily`, `weekly`."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve.api import direct
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import backup, store
from pvelab.pve.guests.calendar import CalendarError, next_event, parse_schedule
from pvelab.pve.storage import prune
from pvelab.pve.storage.config import StorageError

JOBS_CFG = Path("/etc/pve/jobs.cfg")
STATE_DIR = Path("/var/lib/pve-manager/jobs")
NOT_STORED = ("id", "delete", "digest")


# -- jobs.cfg -------------------------------------------------------------------------------------
def read() -> dict[str, dict[str, str]]:
    """{id: {type, option: value}} in the file's order."""
    try:
        text = JOBS_CFG.read_text()
    except FileNotFoundError:
        return {}
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        head = re.fullmatch(r"(\w+):\s*(\S+)\s*", line)
        if head:
            current = jobs[head.group(2)] = {"type": head.group(1)}
        elif line.strip() and current is not None:
            key, _, value = line.strip().partition(" ")
            current[key] = value.strip()
    return jobs


def dump(jobs: dict[str, dict[str, str]]) -> str:
    out = []
    for job_id, job in jobs.items():
        out.append(f"{job['type']}: {job_id}\n" + "".join(f"\t{k} {v}\n" for k, v in job.items() if k != "type"))
    return "\n".join(out)


def write(jobs: dict[str, dict[str, str]]) -> None:
    try:
        JOBS_CFG.write_text(dump(jobs))
    except PermissionError as exc:
        raise ApiException(500, "cluster not ready - no quorum?") from exc


# -- /cluster/backup ------------------------------------------------------------------------------
def shown(job_id: str, job: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": job_id, **{k: (int(v) if k in ("enabled", "all", "remove") else v)
                                             for k, v in job.items()}}
    if job.get("schedule"):
        out["next-run"] = next_event(job["schedule"], time.time())
    if job.get("prune-backups"):  # a property string in jobs.cfg, an object in the API's answer (as PVE's)
        with contextlib.suppress(StorageError):
            out["prune-backups"] = prune.parse_options(job["prune-backups"])
    return out


def checked(params: dict[str, Any]) -> dict[str, str]:
    if params.get("starttime") and params.get("schedule"):
        raise ApiException(400, "Parameter verification failed.",
                           {"starttime": "'starttime' and 'schedule' cannot both be set"})
    options = {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in params.items()
               if k not in NOT_STORED and v is not None}
    if "starttime" in options:
        options["schedule"] = f"{options.pop('dow')} {options.pop('starttime')}" if "dow" in options else \
            options.pop("starttime")
    if "prune-backups" in options:
        try:
            prune.parse_options(options["prune-backups"])
        except StorageError as exc:
            raise ApiException(400, "Parameter verification failed.", {"prune-backups": str(exc)}) from exc
    if "schedule" in options:
        try:
            parse_schedule(options["schedule"])
        except CalendarError as exc:
            raise ApiException(400, "Parameter verification failed.", {"schedule": str(exc)}) from exc
    return options


@route("GET /cluster/backup")
def job_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [shown(job_id, job) for job_id, job in read().items() if job["type"] == "vzdump"]


@route("POST /cluster/backup")
def job_create(ctx: Context, params: dict[str, Any]) -> Any:
    options = checked(params)
    if "schedule" not in options:
        raise ApiException(400, "Parameter verification failed.",
                           {"schedule": "neither 'starttime' nor 'schedule' were set"})
    options.setdefault("enabled", "1")
    job_id = str(params.get("id") or uuid.uuid4())
    jobs = read()
    if job_id in jobs:
        raise ApiException(500, f"Job '{job_id}' already exists")
    jobs[job_id] = {"type": "vzdump", **options}
    write(jobs)


@route("GET /cluster/backup/{id}")
def job_read(ctx: Context, params: dict[str, Any]) -> Any:
    job = read().get(params["id"])
    if job is None or job["type"] != "vzdump":
        raise ApiException(400, "Parameter verification failed.", {"id": f"No such job '{params['id']}'"})
    return shown(params["id"], job)


@route("PUT /cluster/backup/{id}")
def job_update(ctx: Context, params: dict[str, Any]) -> Any:
    jobs = read()
    job = jobs.get(params["id"])
    if job is None or job["type"] != "vzdump":
        raise ApiException(500, "no such vzdump job")
    deletes = [k for k in re.split(r"[,;\s]+", str(params.get("delete") or "")) if k]
    changes = checked(params)
    if not changes and not deletes:
        raise ApiException(500, "no options specified")
    for key in deletes:
        job.pop(key, None)
    job.update(changes)
    write(jobs)


@route("DELETE /cluster/backup/{id}")
def job_delete(ctx: Context, params: dict[str, Any]) -> Any:
    jobs = read()
    if params["id"] not in jobs:
        raise ApiException(400, "Parameter verification failed.", {"id": f"No such job '{params['id']}'"})
    del jobs[params["id"]]
    write(jobs)
    (STATE_DIR / f"vzdump-{params['id']}.json").unlink(missing_ok=True)


# -- pvescheduler ---------------------------------------------------------------------------------
def run_due(node: str, minute: int) -> list[str]:
    """Start each enabled vzdump job due at `minute` for this node's guests (VMs and CTs); their UPIDs."""
    started = []
    local = set(store.kinds_on(node))
    for job_id, job in read().items():
        if job["type"] != "vzdump" or job.get("enabled", "1") == "0" or not job.get("schedule"):
            continue
        if job.get("node") and job["node"] != node:
            continue
        try:
            if next_event(job["schedule"], minute - 60) != minute:
                continue
        except CalendarError:
            continue
        covered = backup.included_guests(backup.exclude_means_all(job), store.vmlist(), backup.pool_members)
        wanted = set(covered.get(node, [])) & local
        if not wanted:
            continue
        params = {k: v for k, v in job.items() if k in ("mode", "compress", "storage", "remove", "stopwait")}
        upid = direct.call("POST", f"/nodes/{node}/vzdump", {**params, "vmid": ",".join(map(str, sorted(wanted)))})
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / f"vzdump-{job_id}.json").write_text(json.dumps({"state": "started", "upid": upid,
                                                                      "time": minute}))
        started.append(upid)
    return started


def main() -> int:
    """Every minute, on the minute: storage replication (`pvesr run`, as pvescheduler forks it, unless
    the last one still runs), then the backup jobs due now."""
    node = nodename()
    replication: subprocess.Popen[bytes] | None = None
    while True:
        minute = (int(time.time()) // 60 + 1) * 60
        time.sleep(max(0.0, minute - time.time()))
        if replication is None or replication.poll() is not None:
            replication = subprocess.Popen(["/usr/bin/pvesr", "run", "--mail", "1"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
        try:
            run_due(node, minute)
        except (OSError, ApiException, ValueError) as exc:
            print(f"pvescheduler: {exc}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
