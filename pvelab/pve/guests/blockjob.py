"""QEMU's mirror jobs as qemu-server drives them (PVE::QemuServer::BlockJob): a running VM's disk
copied while the guest writes to it, then either switched over to the copy (a disk move) or left
alone with the copy in sync (a clone of a running VM, a migration's NBD export)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

from pvelab.poll import poll
from pvelab.pve.guests import qmp
from pvelab.pve.guests.qemu_drive import node_name
from pvelab.pve.guests.store import GuestError

Log = Callable[[str], None]
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def render_bytes(value: float) -> str:
    """PVE::Tools::render_bytes with a precision of 1 ("64.0 MiB")."""
    unit = int(math.log(value, 1024)) if value > 1023 else 0
    return f"{value / 1024 ** unit:.1f} {UNITS[unit]}"


def render_duration(seconds: float) -> str:
    """PVE::Tools::render_duration ("3s", "1m 3s", "1h 0m 3s")."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def start(vmid: int, drive_key: str, target: str, fmt: str, log: Log, volids: tuple[str, str] | None = None) -> str:
    """drive-mirror of the VM's drive into an existing volume; returns the job's id (drive-KEY).
    With -blockdev, `volids` (from, to) name the format node the copy replaces below the drive's
    throttle node, and the copy's own node, as a fresh start would name them."""
    job = f"drive-{drive_key}"
    log(f"drive mirror is starting for {job}")
    try:
        arguments: dict[str, Any] = {"device": job, "target": target, "sync": "full", "mode": "existing",
                                     "format": fmt, "job-id": job}
        if volids and "node-name" in qmp.block_node(vmid, drive_key):
            arguments.update(replaces=node_name("fmt", drive_key, volids[0]),
                             **{"node-name": node_name("fmt", drive_key, volids[1])})
        qmp.command(vmid, "drive-mirror", **arguments)
    except qmp.QmpError as exc:
        raise GuestError(f"mirroring error: {exc}") from exc
    return job


def wait_ready(vmid: int, jobs: list[str], log: Log, timeout: float = 3600) -> None:
    """Until every job is ready (its copy in sync), with qemu-server's progress line once a second."""
    started = time.monotonic()
    deadline = started + timeout
    ready: set[str] = set()
    while time.monotonic() < deadline:
        running = {j["device"]: j for j in qmp.command(vmid, "query-block-jobs") if j.get("type") == "mirror"}
        for job in jobs:
            stat = running.get(job)
            if stat is None:
                raise GuestError(f"{job}: 'mirror' has been cancelled")
            if stat.get("error"):
                raise GuestError(f"{job}: {stat['error']} (io-status: {stat.get('io-status', 'ok')})")
            total, done = int(stat.get("len") or 0), int(stat.get("offset") or 0)
            if total and job not in ready:
                line = (f"{job}: transferred {render_bytes(done)} of {render_bytes(total)} "
                        f"({done * 100 / total:.2f}%) in {render_duration(time.monotonic() - started)}")
                log(line + (", ready" if stat.get("ready") else ""))
            if stat.get("ready"):
                ready.add(job)
        if ready >= set(jobs):
            log("all 'mirror' jobs are ready")
            return
        time.sleep(1)
    raise GuestError("block job ('mirror') timed out")


def finish(vmid: int, jobs: list[str], switch: bool, log: Log) -> None:
    """Complete each ready job: `switch` moves the guest onto the copy (block-job-complete); otherwise
    the copy is left in sync and the guest stays on its disk (block-job-cancel of a ready mirror)."""
    for job in jobs:
        if switch:
            log(f"{job}: Completing block job...")
            qmp.command(vmid, "block-job-complete", device=job)
        else:
            qmp.command(vmid, "block-job-cancel", device=job)
    if poll(lambda: None if any(j["device"] in jobs for j in qmp.command(vmid, "query-block-jobs")) else True,
            timeout=300, interval=0.1) is None:
        raise GuestError("block job ('mirror') timed out")
    for job in jobs:
        log(f"{job}: Completed successfully." if switch else f"{job}: mirror-job finished")


def cancel(vmid: int, jobs: list[str]) -> None:
    """After a failure: stop what still runs, leaving the guest on its own disk."""
    for job in jobs:
        with contextlib.suppress(qmp.QmpError):
            qmp.command(vmid, "block-job-cancel", device=job, force=True)
