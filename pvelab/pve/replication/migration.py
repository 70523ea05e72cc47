"""What a migration does with a replicated guest (qemu-server's QemuMigrate, PVE::Replication):
to the job's target, a replication run first sends only what changed since the last one, those
volumes are not copied again and stay on the old node as the replica; afterwards the guest's
replication state goes with it and the job turns round (source the new node, target the old)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pvelab.pve.remote import run_on
from pvelab.pve.replication import config, run
from pvelab.pve.replication.config import ReplicationError

Log = Callable[[str], None]


def jobs_of(vmid: int) -> dict[str, dict[str, Any]]:
    return {job_id: job for job_id, job in config.read().items() if config.parse_job_id(job_id)[0] == vmid}


def job_to(vmid: int, target: str) -> tuple[str, dict[str, Any]] | None:
    return next(((job_id, job) for job_id, job in jobs_of(vmid).items() if job["target"] == target), None)


def check(vmid: int, target: str, online: bool, force: bool) -> None:
    """QemuMigrate's refusals for a replicated VM, before anything moves."""
    found = job_to(vmid, target)
    if found and found[1].get("remove_job"):
        raise ReplicationError("refusing to migrate replicated VM whose replication job is marked for removal")
    if online and jobs_of(vmid) and not found and not force:
        raise ReplicationError(f"Cannot live-migrate replicated VM to node '{target}' - not a replication target. "
                               "Use 'force' to override.")


def replicate_first(vmid: int, target: str, log: Log) -> set[str]:
    """A replication run to the migration's target (when a job goes there): the volumes it sent."""
    found = job_to(vmid, target)
    if found is None:
        return set()
    job_id, job = found
    log("replicating disk images")
    done = run.run_job(job_id, job, int(time.time()), lambda line: log(line.partition(f"{job_id}: ")[2]))
    return set(done)


def hand_over(vmid: int, source: str, target: str) -> None:
    """After the config moved: the guest's replication state to the new node, and every job that
    targeted the new node now targets the old one, from the new one."""
    states = config.read_state().get(str(vmid))
    if states is not None:
        done = run_on(target, ["pvesr", "set-state", str(vmid), json.dumps(states)], timeout=60)
        if done.returncode == 0:
            with config.state_locked():
                all_states = config.read_state()
                all_states.pop(str(vmid), None)
                config.write_state(all_states)
    jobs = config.read()
    changed = False
    for job_id, job in jobs.items():
        if config.parse_job_id(job_id)[0] == vmid and job["target"] == target:
            jobs[job_id] = {**job, "target": source, "source": target}
            changed = True
    if changed:
        config.write(jobs)
