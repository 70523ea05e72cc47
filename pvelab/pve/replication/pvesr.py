"""`pvesr`, PVE's storage replication command (pve-manager's PVE/CLI/pvesr.pm): the job commands
call the API in-process; `run` runs due jobs here (what pvescheduler starts every minute);
prepare-local-job, finalize-local-job and set-state are what the source node calls over SSH."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve.api import direct
from pvelab.pve.replication import config, run
from pvelab.pve.replication.config import ReplicationError
from pvelab.pve.storage.config import StorageError

USAGE = """USAGE: pvesr <COMMAND> [ARGS] [OPTIONS]
       pvesr create-local-job <id> <target> [OPTIONS]
       pvesr delete <id> [OPTIONS]
       pvesr disable <id>
       pvesr enable <id>
       pvesr list
       pvesr read <id>
       pvesr run [OPTIONS]
       pvesr schedule-now <id>
       pvesr status [OPTIONS]
       pvesr update <id> [OPTIONS]
       pvesr finalize-local-job <id> [<extra-args>] [OPTIONS]
       pvesr prepare-local-job <id> [<extra-args>] [OPTIONS]
       pvesr set-state <vmid> <state>"""
TIME_FORMAT = "%Y-%m-%d_%H:%M:%S"


def print_list(jobs: list[dict[str, Any]]) -> None:
    line = "{:<20} {:<20} {:>10} {:>5} {:>8}"  # pvesr.pm's "%-20s %-20s %10s %5s %8s"
    print(line.format("JobID", "Target", "Schedule", "Rate", "Enabled"))
    for job in sorted(jobs, key=lambda j: (j["guest"], j["jobnum"])):
        print(line.format(job["id"], f"local/{job['target']}", job.get("schedule", "*/15"),
                          fmt_rate(job.get("rate")), "no" if job.get("disable") else "yes"))


def fmt_rate(rate: Any) -> str:
    if rate is None:
        return "-"
    return str(int(rate)) if float(rate).is_integer() else str(rate)


def fmt_time(value: Any, now: float) -> str:
    if not value:
        return "-"
    if int(value) <= now:
        return "pending"
    return time.strftime(TIME_FORMAT, time.localtime(int(value)))


def print_status(jobs: list[dict[str, Any]]) -> None:
    line = "{:<10} {:<10} {:<20} {:>20} {:>20} {:>10} {:>10} {}"  # "%-10s %-10s %-20s %20s %20s %10s %10s %s"
    print(line.format("JobID", "Enabled", "Target", "LastSync", "NextSync", "Duration", "FailCount", "State"))
    now = time.time()
    for job in sorted(jobs, key=lambda j: (j["guest"], j["jobnum"])):
        last = time.strftime(TIME_FORMAT, time.localtime(job["last_sync"])) if job.get("last_sync") else "-"
        state = "SYNCING" if job.get("pid") else job.get("error") or "OK"
        print(line.format(job["id"], "No" if job.get("disable") else "Yes", f"local/{job['target']}", last,
                          fmt_time(job.get("next_sync"), now), str(job.get("duration", "-")),
                          str(job.get("fail_count", 0)), state))


def run_command(command: str, args: list[str], options: dict[str, str]) -> int:
    node = nodename()
    if command == "create-local-job":
        job_id, target = args
        direct.call("POST", "/cluster/replication", {**options, "id": job_id, "target": target, "type": "local"})
    elif command == "list":
        print_list(direct.call("GET", "/cluster/replication", options))
    elif command == "status":
        print_status(direct.call("GET", f"/nodes/{node}/replication", options))
    elif command == "read":
        (job_id,) = args
        print(json.dumps(direct.call("GET", f"/cluster/replication/{job_id}", options), indent=4, sort_keys=True))
    elif command == "update":
        (job_id,) = args
        direct.call("PUT", f"/cluster/replication/{job_id}", options)
    elif command in ("enable", "disable"):
        (job_id,) = args
        change = {"delete": "disable"} if command == "enable" else {"disable": "1"}
        direct.call("PUT", f"/cluster/replication/{job_id}", change)
    elif command == "delete":
        (job_id,) = args
        direct.call("DELETE", f"/cluster/replication/{job_id}", options)
        if not options.get("force"):
            print("Replication job removal is a background task and will take some time.")
    elif command == "schedule-now":
        (job_id,) = args
        direct.call("POST", f"/nodes/{node}/replication/{job_id}/schedule_now", options)
    elif command == "run":
        verbose = options.get("verbose") in ("1", "true")
        ran = run.run_due(int(time.time()), print if verbose else None, only=options.get("id"))
        if options.get("id") and not ran:
            raise ReplicationError(f"no such job '{options['id']}'")
    elif command == "prepare-local-job":
        job_id, *volids = args
        last_sync = int(options.get("last_sync", 0))
        print(json.dumps(run.prepare_local_job(job_id, volids, last_sync, options.get("force") == "1")))
    elif command == "finalize-local-job":
        job_id, *volids = args
        run.finalize_local_job(job_id, volids, int(options.get("last_sync", 0)), print)
    elif command == "set-state":
        vmid, text = args
        set_state(vmid, json.loads(text))
    else:
        print(f"unknown command 'pvesr {command}'\n{USAGE}", file=sys.stderr)
        return direct.ERROR_EXIT
    return 0


def set_state(vmid: str, states: dict[str, Any]) -> None:
    """A migrated guest's replication state, handed over by the node it left."""
    with config.state_locked():
        all_states = config.read_state()
        all_states[str(vmid)] = states
        config.write_state(all_states)


def main(argv: list[str] | None = None) -> int:
    return direct.cli_main(USAGE, run_command, (ReplicationError, StorageError), argv)


if __name__ == "__main__":
    raise SystemExit(main())
