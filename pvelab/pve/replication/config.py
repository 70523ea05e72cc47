"""/etc/pve/replication.cfg (pve-guest-common's ReplicationConfig) and each node's replication state
(/var/lib/pve-manager/pve-replication-state.json, ReplicationState): their formats and PVE's rules.

A job is `local: VMID-N` with `target` (required), then `schedule` (a calendar event, `*/15` when
unset), `rate` (MB/s), `comment`, `disable`, `remove_job` (local|full) and `source` (the node the
guest was on at the last run: a guest found elsewhere was stolen, or recovered by HA)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pvelab.pve.refusal import Refusal

REPLICATION_CFG = Path("/etc/pve/replication.cfg")
STATE_FILE = Path("/var/lib/pve-manager/pve-replication-state.json")
STATE_LOCK = Path("/var/lib/pve-manager/pve-replication-state.lck")
LOG_DIR = Path("/var/log/pve/replicate")
JOB_ID = re.compile(r"^([1-9][0-9]{2,8})-(\d{1,9})$")
DEFAULT_SCHEDULE = "*/15"
OPTIONAL_ORDER = ("rate", "remove_job", "schedule", "source")  # SectionConfig: required first, the rest sorted


class ReplicationError(Refusal):
    """A refused replication request or a failed run; the text is PVE's."""


def parse_job_id(job_id: str) -> tuple[int, int]:
    found = JOB_ID.match(job_id)
    if not found:
        raise ReplicationError(f"invalid replication job id '{job_id}'")
    return int(found.group(1)), int(found.group(2))


def parse(text: str) -> dict[str, dict[str, Any]]:
    """{job id: {type, target, ...}} in file order; a second job of a guest to the same target is
    dropped, as ReplicationConfig's parse_config does."""
    jobs: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    seen: set[tuple[int, str]] = set()
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        head = re.match(r"^(\S+):\s*(\d+)-(\d+)\s*$", line)
        if head and not line[0].isspace():
            current = {"type": head.group(1)}
            jobs[f"{head.group(2)}-{head.group(3)}"] = current
            continue
        option = re.match(r"^\s+(\S+)(?:\s+(.*\S))?\s*$", line)
        if option and current is not None:
            current[option.group(1)] = "1" if option.group(2) is None else option.group(2)
    for job_id in list(jobs):
        key = (parse_job_id(job_id)[0], str(jobs[job_id].get("target")))
        if key in seen:
            del jobs[job_id]
        seen.add(key)
    return jobs


def dump(jobs: dict[str, dict[str, Any]]) -> str:
    out = []
    for job_id, job in jobs.items():
        lines = [f"{job.get('type', 'local')}: {job_id}"]
        if "comment" in job:
            lines.append(f"\tcomment {job['comment']}")
        if str(job.get("disable", "0")) == "1":
            lines.append("\tdisable")
        lines.append(f"\ttarget {job['target']}")
        lines += [f"\t{key} {job[key]}" for key in OPTIONAL_ORDER if key in job]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def read() -> dict[str, dict[str, Any]]:
    try:
        return parse(REPLICATION_CFG.read_text())
    except FileNotFoundError:
        return {}


def write(jobs: dict[str, dict[str, Any]]) -> None:
    targets: dict[tuple[int, str], str] = {}
    for job_id, job in jobs.items():
        key = (parse_job_id(job_id)[0], str(job["target"]))
        if key in targets:
            raise ReplicationError(f"replication job for guest '{key[0]}' to target 'local/{key[1]}' already exists")
        targets[key] = job_id
    try:
        REPLICATION_CFG.write_text(dump(jobs))
    except PermissionError as exc:
        raise ReplicationError("cluster not ready - no quorum?") from exc


def is_enabled(job: dict[str, Any]) -> bool:
    return str(job.get("disable", "0")) != "1"


# -- the node's state file ---------------------------------------------------------------------------
@contextlib.contextmanager
def state_locked() -> Iterator[None]:
    STATE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(STATE_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def read_state() -> dict[str, dict[str, dict[str, Any]]]:
    """{vmid: {"local/TARGET": state}}, as ReplicationState keeps it."""
    try:
        return dict(json.loads(STATE_FILE.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def write_state(states: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Atomically, as PVE's file_set_contents."""
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    partial = STATE_FILE.with_name(STATE_FILE.name + ".tmp")
    partial.write_text(json.dumps(states, sort_keys=True))
    os.replace(partial, STATE_FILE)


def job_state(job_id: str, job: dict[str, Any]) -> dict[str, Any]:
    """One job's state with PVE's defaults (0 for the times and the failure count)."""
    vmid = str(parse_job_id(job_id)[0])
    found = read_state().get(vmid, {}).get(f"local/{job['target']}", {})
    return {"last_iteration": 0, "last_try": 0, "last_sync": 0, "fail_count": 0, **found}


def update_state(job_id: str, target: str, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
    vmid = str(parse_job_id(job_id)[0])
    with state_locked():
        states = read_state()
        entry = states.setdefault(vmid, {}).setdefault(f"local/{target}", {})
        entry.update(changes)
        for key in drop:
            entry.pop(key, None)
        write_state(states)


def remove_state(job_id: str, target: str) -> None:
    vmid = str(parse_job_id(job_id)[0])
    with state_locked():
        states = read_state()
        states.get(vmid, {}).pop(f"local/{target}", None)
        if not states.get(vmid, True):
            states.pop(vmid)
        write_state(states)


def log_path(job_id: str) -> Path:
    return LOG_DIR / job_id
