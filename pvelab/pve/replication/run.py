"""One replication run, and which jobs are due: PVE's Replication.pm and ReplicationState.pm.

A run on the guest's node: the target prepares (drops stale replication snapshots, says which
snapshots it holds), a common base is chosen, every replicated volume gets the snapshot
`__replicate_<job>_<start>__`, each is sent whole (the first time) or from the base (after), the
state records the sync, the previous snapshot is deleted here and, by the target's finalize, there.
A failure counts in the state (fail_count, error) and the job is tried again after 5, 10, 15 and
then every 30 minutes while its target is online."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from typing import Any

from pvelab.poll import poll
from pvelab.procfs import nodename
from pvelab.pve import members
from pvelab.pve.guests import runtime, store
from pvelab.pve.guests.calendar import CalendarError, next_event
from pvelab.pve.remote import remote_node_ip, run_on, ssh_command
from pvelab.pve.replication import config
from pvelab.pve.replication.config import ReplicationError
from pvelab.pve.storage import config as storage_config
from pvelab.pve.storage.volumes import backend, parse_volume_id

Log = Callable[[str], None]
REPLICATABLE_TYPES = ("zfspool",)  # pvesr's own list
RETRY_MINUTES = (5, 10, 15)  # after the 1st, 2nd, 3rd failure; then every 30


def snapshot_name(job_id: str, start: int) -> str:
    return f"__replicate_{job_id}_{start}__"


def snapshot_prefix(job_id: str) -> str:
    return f"__replicate_{job_id}_"


# -- what is replicated -------------------------------------------------------------------------------
def replicatable_volumes(options: dict[str, str]) -> list[str]:
    """The guest's disks on storages that are not shared (CD-ROMs, and disks marked replicate=0,
    left out); each must be able to replicate: PVE's get_replicatable_volumes."""
    volumes = set()
    for drive in store.drives(options).values():
        file = drive.get("file", "none")
        if file in ("none", "cdrom") or ":" not in file or store.is_cdrom(drive) or store.is_cloudinit(drive):
            continue
        if drive.get("replicate") == "0":
            continue
        volumes.add(file)
    for key, value in options.items():
        if key.startswith("unused"):
            volumes.add(value)
    out = []
    for volid in sorted(volumes):
        sid, _ = parse_volume_id(volid)
        storage = storage_config.get(sid)
        if storage_config.is_shared(storage):
            continue
        if storage["type"] not in REPLICATABLE_TYPES:
            raise ReplicationError(f"missing replicate feature on volume '{volid}'")
        out.append(volid)
    return out


def volume_of(volid: str) -> tuple[Any, str]:
    sid, volname = parse_volume_id(volid)
    return backend(sid, storage_config.get(sid)), volname


# -- when a job runs ----------------------------------------------------------------------------------
def target_online(target: str) -> bool:
    info = (members.read().get("nodelist") or {}).get(target) or {}
    return bool(info.get("online"))


def next_sync(job: dict[str, Any], state: dict[str, Any]) -> int:
    """ReplicationState::job_status's next_sync: 1 for a job being removed (now), 0 while failing
    with its target offline (not at all), else after the retry interval or by the schedule."""
    if job.get("remove_job"):
        return 1
    fail_count = int(state.get("fail_count", 0))
    last_try = int(state.get("last_try", 0))
    if fail_count > 0:
        if not target_online(str(job["target"])):
            return 0
        minutes = RETRY_MINUTES[fail_count - 1] if fail_count <= len(RETRY_MINUTES) else 30
        return last_try + 60 * minutes
    try:
        return next_event(str(job.get("schedule") or config.DEFAULT_SCHEDULE), max(last_try, 0))
    except CalendarError:
        return 0


def switch_if_stolen(job_id: str, job: dict[str, Any], local: str) -> dict[str, Any]:
    """A guest now on its job's target (HA recovered it, or it was moved by hand): the job turns
    round and replicates back to the node it came from, as job_status does."""
    source = job.get("source")
    if job["target"] == local and source and source != local:
        jobs = config.read()
        if job_id in jobs:
            jobs[job_id] = {**jobs[job_id], "target": source, "source": local}
            config.write(jobs)
            return jobs[job_id]
    return job


def local_jobs(local: str) -> dict[str, dict[str, Any]]:
    """Jobs of guests on this node, each with its state and next_sync (PVE's job_status)."""
    guests = store.vmlist()
    out = {}
    for job_id, job in config.read().items():
        vmid, _ = config.parse_job_id(job_id)
        if (guests.get(vmid) or {}).get("node") != local:
            continue
        current = switch_if_stolen(job_id, job, local)
        if current["target"] == local:
            continue
        state = config.job_state(job_id, current)
        out[job_id] = {**current, "state": state, "next_sync": next_sync(current, state),
                       "vmtype": "lxc" if guests[vmid].get("type") == "lxc" else "qemu"}
    return out


RUN_LOCK = "/var/lock/pvesr.lck"


def run_due(now: int, log: Log | None = None, only: str | None = None) -> list[str]:
    """PVE's run_jobs under its node-wide lock (waited for up to 60 s, as PVE does)."""
    with open(RUN_LOCK, "a") as held:
        if poll(lambda: True if try_lock(held) else None, 60, interval=0.5) is None:
            raise ReplicationError(f"can't lock file '{RUN_LOCK}' - got timeout")
        return run_locked(now, log, only)


def try_lock(held: Any) -> bool:
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def purge_old_states(jobs: dict[str, dict[str, Any]]) -> None:
    """PVE's purge_old_states: states of jobs this node no longer runs (removed, turned round, moved away)."""
    wanted = {(str(config.parse_job_id(job_id)[0]), f"local/{job['target']}") for job_id, job in jobs.items()}
    with config.state_locked():
        states = config.read_state()
        kept = {vmid: {tid: s for tid, s in targets.items() if (vmid, tid) in wanted}
                for vmid, targets in states.items()}
        kept = {vmid: targets for vmid, targets in kept.items() if targets}
        if kept != states:
            config.write_state(kept)


def run_locked(now: int, log: Log | None = None, only: str | None = None) -> list[str]:
    """PVE's run_jobs: each enabled job due by now (or the one asked for), oldest iteration first."""
    local = nodename()
    jobs = local_jobs(local)
    purge_old_states(jobs)
    ran = []
    order = sorted(jobs.items(), key=lambda item: (item[1]["state"].get("last_iteration", 0), item[1]["next_sync"],
                                                   item[0]))
    for job_id, job in order:
        if only is not None and job_id != only:
            continue
        if only is not None and not config.is_enabled(job):
            raise ReplicationError(f"job '{job_id}' is disabled")
        if only is None and (not config.is_enabled(job) or not job["next_sync"] or now < job["next_sync"]):
            continue
        ran.append(job_id)
        try:
            run_job(job_id, job, now, log)
        except ReplicationError:
            if only is not None:  # `pvesr run --id`: the caller sees the error
                raise  # otherwise it is in the state and the job's log
    return ran


# -- one run ------------------------------------------------------------------------------------------
class JobLog:
    """The job's log file (truncated at each run), lines `%F %T JOBID: msg`; also echoed."""

    def __init__(self, job_id: str, echo: Log | None) -> None:
        self.job_id, self.echo = job_id, echo
        path = config.log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "w")  # noqa: SIM115 - closed by close()

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.job_id}: {message}"
        self.fh.write(line + "\n")
        self.fh.flush()
        if self.echo is not None:
            self.echo(line)

    def close(self) -> None:
        self.fh.close()


def run_job(job_id: str, job: dict[str, Any], now: int, echo: Log | None = None) -> dict[str, str]:
    """Replicate (or, for a job marked for removal, remove) one job; the state records the outcome.
    Returns {volid: snapshot} replicated."""
    target = str(job["target"])
    state = config.job_state(job_id, job)
    log = JobLog(job_id, echo)
    started = time.monotonic()
    config.update_state(job_id, target, {"last_try": now, "last_iteration": now, "pid": os.getpid(),
                                         "ptime": int(time.time())})
    try:
        if job.get("remove_job"):
            remove_job(job_id, job, log)
            config.remove_state(job_id, target)
            return {}
        done = replicate(job_id, job, state, now, log)
    except (ReplicationError, storage_config.StorageError, OSError, subprocess.SubprocessError) as exc:
        message = str(exc).strip()
        log(f"end replication job with error: {message}")
        config.update_state(job_id, target, {"fail_count": int(state["fail_count"]) + 1, "error": message},
                            drop=("pid", "ptime"))
        raise ReplicationError(message) from exc
    finally:
        log.close()
    config.update_state(job_id, target, {"last_sync": now, "fail_count": 0, "last_node": nodename(),
                                         "duration": round(time.monotonic() - started, 6),
                                         "storeid_list": sorted({parse_volume_id(v)[0] for v in done})},
                        drop=("error", "pid", "ptime"))
    return done


def replicate(job_id: str, job: dict[str, Any], state: dict[str, Any], start: int, log: Log) -> dict[str, str]:
    vmid, _ = config.parse_job_id(job_id)
    local, target = nodename(), str(job["target"])
    owner = store.owner(vmid)
    if owner is None:
        raise ReplicationError(f"no such guest '{vmid}'")
    if owner.get("node") != local:
        raise ReplicationError(f"guest '{vmid}' is not on local node")
    if target == local:
        raise ReplicationError("unable to sync to local node")
    if job.get("source") != local:  # recorded, so a guest later found on another node shows it was stolen
        jobs = config.read()
        if job_id in jobs:
            jobs[job_id]["source"] = local
            config.write(jobs)
    last_sync = int(state.get("last_sync", 0))
    if start <= last_sync:
        raise ReplicationError(f"start time before last sync ({start} <= {last_sync}) - abort sync")
    log("start replication job")
    conf = store.load(local, vmid)
    log(f"guest => VM {vmid}, running => {runtime.pid_of(vmid) or 0}")
    volids = replicatable_volumes(conf.main.options)
    log(f"volumes => {','.join(volids)}")
    if not volids:
        log("end replication job")
        return {}
    remote_snaps = prepare_remote(target, job_id, volids, last_sync, log)
    bases = common_bases(job_id, volids, last_sync, remote_snaps)
    snap = snapshot_name(job_id, start)
    snapshot_and_send(volids, snap, bases, target, job.get("rate"), log)
    for volid in volids:
        drop_job_snapshots(volid, job_id, snap, log)
    finalized = run_on(target, ["pvesr", "finalize-local-job", job_id, *volids, "--last_sync", str(start)])
    for line in finalized.stdout.splitlines():
        log(f"(remote_finalize_local_job) {line}")
    log("end replication job")
    return {volid: snap for volid in volids}


def drop_job_snapshots(volid: str, job_id: str, keep: str | None, log: Log | None = None,
                       what: str = "delete previous replication snapshot") -> dict[str, dict[str, Any]]:
    """The job's replication snapshots of a volume deleted (each logged `WHAT 'SNAP' on VOLID`), all
    but `keep`; the snapshots left."""
    store_, volname = volume_of(volid)
    snaps = store_.snapshots(volname)
    for snap in list(snaps):
        if snap.startswith(snapshot_prefix(job_id)) and snap != keep:
            if log is not None:
                log(f"{what} '{snap}' on {volid}")
            store_.snapshot_delete(volname, snap)
            del snaps[snap]
    return snaps


def snapshot_and_send(volids: list[str], snap: str, bases: dict[str, str], target: str, rate: Any, log: Log
                      ) -> None:
    """The new snapshot on every volume, then each sent; a failure takes the new snapshots away again."""
    made: list[str] = []
    try:
        for volid in volids:
            log(f"create snapshot '{snap}' on {volid}")
            store_, volname = volume_of(volid)
            store_.snapshot(volname, snap)
            made.append(volid)
        log(f"using secure transmission, rate limit: {str(rate) + ' MByte/s' if rate else 'none'}")
        for volid in volids:
            send(volid, snap, bases.get(volid), target, rate, log)
    except Exception:
        for volid in made:  # a failed transfer leaves no new snapshot here; the target cleans up next prepare
            store_, volname = volume_of(volid)
            log(f"delete previous replication snapshot '{snap}' on {volid}")
            store_.snapshot_delete(volname, snap)
        raise


def prepare_remote(target: str, job_id: str, volids: list[str], last_sync: int, log: Log
                   ) -> dict[str, dict[str, Any]]:
    """The target's prepare-local-job: its answer, the snapshots each volume holds there."""
    prepared = run_on(target, ["pvesr", "prepare-local-job", job_id, *volids, "--last_sync", str(last_sync)])
    if prepared.returncode != 0:  # what the command said goes to the log; the error is run_command's text
        for line in prepared.stderr.strip().splitlines():
            log(line)
        command = " ".join(shlex.quote(a) for a in prepared.args) if isinstance(prepared.args, list) else prepared.args
        raise ReplicationError(f"command '{command}' failed: exit code {prepared.returncode}")
    lines = prepared.stdout.strip().splitlines()
    try:
        return dict(json.loads(lines[-1])) if lines else {}
    except ValueError as exc:
        raise ReplicationError("prepare remote node failed - no result") from exc


def common_bases(job_id: str, volids: list[str], last_sync: int, remote_snaps: dict[str, dict[str, Any]]
                 ) -> dict[str, str]:
    """PVE's find_common_replication_snapshot: per volume, the last sync's snapshot when both sides
    hold it (same identity), else the newest common replication snapshot; a volume the target holds
    without any common base cannot be sent incrementally, nor whole over it."""
    bases, problems = {}, []
    wanted = snapshot_name(job_id, last_sync)
    for volid in volids:
        theirs = remote_snaps.get(volid)
        if theirs is None:
            continue  # not on the target: a full sync
        store_, volname = volume_of(volid)
        ours = store_.snapshots(volname)
        same = [s for s in ours if s in theirs and ours[s]["id"] == theirs[s].get("id")]
        if last_sync and wanted in same:
            bases[volid] = wanted
            continue
        replicas = [s for s in same if s.startswith("__replicate_")]
        if replicas:
            bases[volid] = replicas[-1]
        else:
            problems.append(volid)
    if problems:
        raise ReplicationError(f"No common base snapshot on volume(s) {' '.join(problems)}\nPlease remove the "
                               f"problematic volume(s) from the replication target or delete and re-create the "
                               f"whole job {job_id}")
    return bases


def send(volid: str, snap: str, base: str | None, target: str, rate: Any, log: Log) -> None:
    """pvesm export here piped into pvesm import on the target (cstream limits the rate when asked)."""
    if base:
        log(f"incremental sync '{volid}' ({base} => {snap})")
    else:
        log(f"full sync '{volid}' ({snap})")
    base_opt = f" -base {shlex.quote(base)}" if base else ""
    export = ["/usr/sbin/pvesm", "export", volid, "zfs", "-", "-with-snapshots", "1", "-snapshot", snap]
    if base:
        export += ["-base", base]
    sender = subprocess.Popen(export, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert sender.stdout is not None
    stream = sender.stdout
    limiter = None
    if rate:  # MB/s, as PVE's cstream -t
        limiter = subprocess.Popen(["cstream", "-t", str(int(1000000 * float(rate)))], stdin=stream,
                                   stdout=subprocess.PIPE)
        stream.close()
        assert limiter.stdout is not None
        stream = limiter.stdout
    importer = subprocess.Popen([*ssh_command(target, remote_node_ip(target)),
                                 f"pvesm import {shlex.quote(volid)} zfs - -with-snapshots 1 -snapshot "
                                 f"{shlex.quote(snap)} -allow-rename 0{base_opt}"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert importer.stdin is not None
    size = relay(stream, importer.stdin)  # counted on the way, for the log's sizes
    out, err = importer.communicate(timeout=3600)
    assert sender.stderr is not None  # its stdout is closed by now: communicate() would refuse it
    sent_error = sender.stderr.read().decode(errors="replace").strip()
    sender.wait(timeout=60)
    if limiter is not None:
        limiter.wait(timeout=60)
    received = subprocess.CompletedProcess(importer.args, importer.returncode, out, err)
    store_, volname = volume_of(volid)
    dataset = f"{store_.dataset}/{volname}"
    if base:  # zfs send -v's lines; the twin's figure is the stream's real size (btrfs send cannot estimate)
        log(f"send from @{base} to {dataset}@{snap} estimated size is {nicenum(size)}")
    else:
        log(f"full send of {dataset}@{snap} estimated size is {nicenum(size)}")
    log(f"total estimated size is {nicenum(size)}")
    for line in received.stdout.decode(errors="replace").splitlines():
        log(line)
    if sender.returncode != 0 or received.returncode != 0:
        reason = received.stderr.decode(errors="replace").strip() or sent_error
        raise ReplicationError(f"command 'set -o pipefail && pvesm export {volid} zfs - -with-snapshots 1 -snapshot "
                               f"{snap}{base_opt} | /usr/bin/ssh -e none -o 'BatchMode=yes' -o "
                               f"'HostKeyAlias={target}' root@{remote_node_ip(target)} -- pvesm import {volid} zfs - "
                               f"-with-snapshots 1 -snapshot {snap} -allow-rename 0{base_opt}' failed: exit code "
                               f"{received.returncode or sender.returncode}" + (f"\n{reason}" if reason else ""))


def relay(source: Any, sink: Any) -> int:
    """Copy the send stream into the importer's stdin (its communicate() closes that); the bytes
    copied. A dead importer ends it."""
    size = 0
    try:
        while chunk := source.read(1 << 20):
            sink.write(chunk)
            size += len(chunk)
    except BrokenPipeError:
        pass
    finally:
        source.close()
    return size


def nicenum(value: int) -> str:
    """ZFS's zfs_nicenum: 3 significant digits and a unit (624B, 4.34K, 1.02M, 2.06G)."""
    if value < 1024:
        return f"{value}B"
    number = float(value)
    for unit in "KMGTPE":
        number /= 1024
        if number < 1024 or unit == "E":
            break
    digits = 2 if number < 10 else 1 if number < 100 else 0
    return f"{number:.{digits}f}{unit}"


# -- the target's side (pvesr prepare-local-job / finalize-local-job) ----------------------------------
def prepare_local_job(job_id: str, volids: list[str], last_sync: int, force: bool = False) -> dict[str, Any]:
    """On the target: stale replication snapshots of the job deleted (all but last_sync's; none when
    last_sync is 0: the guest was stolen, its newest common snapshot is the base); the snapshots
    each volume holds."""
    vmid, _ = config.parse_job_id(job_id)
    if (store.owner(vmid) or {}).get("node") == nodename() and not force:
        raise ReplicationError(f"guest '{vmid}' is on local node")
    keep = snapshot_name(job_id, last_sync)
    out: dict[str, Any] = {}
    for volid in volids:
        sid, _ = parse_volume_id(volid)
        if storage_config.get(sid)["type"] not in REPLICATABLE_TYPES:
            raise ReplicationError(f"storage '{sid}' is not replicatable")
        store_, volname = volume_of(volid)
        store_.activate()
        if not store_.exists(volname):
            continue
        out[volid] = drop_job_snapshots(volid, job_id, keep) if last_sync else store_.snapshots(volname)
    return out


def finalize_local_job(job_id: str, volids: list[str], last_sync: int, log: Log) -> None:
    """On the target after a sync: the job's older replication snapshots go; with last_sync 0 (the job
    removed with its volumes), the guest's volumes here go too."""
    keep = snapshot_name(job_id, last_sync)
    for volid in volids:
        store_, volname = volume_of(volid)
        if not store_.exists(volname):
            continue
        if not last_sync:
            log(f"delete volume '{volid}'")
            store_.free(volname)
            continue
        drop_job_snapshots(volid, job_id, keep, log, "delete stale replication snapshot")


def remove_job(job_id: str, job: dict[str, Any], log: Log) -> None:
    """A job marked for removal: `full` also frees the replicated volumes on the target (when it
    answers); the local replication snapshots go, then the job."""
    vmid, _ = config.parse_job_id(job_id)
    owner = store.owner(vmid)
    volids: list[str] = []
    if owner and owner.get("node") == nodename():
        volids = replicatable_volumes(store.load(nodename(), vmid).main.options)
    target = str(job["target"])
    if job.get("remove_job") == "full" and volids:
        done = run_on(target, ["pvesr", "finalize-local-job", job_id, *volids, "--last_sync", "0"], timeout=120)
        if done.returncode != 0 and target_online(target):
            raise ReplicationError(done.stderr.strip() or "remove of remote volumes failed")
    for volid in volids:
        drop_job_snapshots(volid, job_id, None, log)
    jobs = config.read()
    jobs.pop(job_id, None)
    config.write(jobs)
