"""Guest commands on HA-managed guests: qemu-server and pve-container hand start, stop, shutdown and
migrate to HA (a small hastart/hastop/hamigrate task that runs ha-manager), unless the call comes from
HA's own LRM. Also the `ha` part of a guest's status and the `hastate` of /cluster/resources."""

from __future__ import annotations

import subprocess
from typing import Any

from pvelab.pve.api import tasks
from pvelab.pve.api.routes import Context
from pvelab.pve.guests.store import GuestError
from pvelab.pve.ha import config


def requested_state(sid: str) -> str | None:
    options = config.resources().get(sid)
    return None if options is None else config.with_defaults(options)["state"]


def managed(sid: str) -> bool:
    """PVE's vm_is_ha_managed: configured, not `ignored`, and HA not disarmed in ignore mode."""
    if requested_state(sid) in (None, "ignored"):
        return False
    return (config.manager_status().get("disarm") or {}).get("mode") != "ignore"


def redirected(ctx: Context, sid: str) -> bool:
    return not ctx.ha and managed(sid)


def guest_status(sid: str) -> dict[str, Any]:
    state = requested_state(sid)
    return {"managed": 0} if state in (None, "ignored") else {"managed": 1, "state": state}


def hastate(sid: str, service_status: dict[str, Any], requested: dict[str, dict[str, str]]) -> str | None:
    """/cluster/resources: the CRM's state of the service, else its requested state."""
    if sid in service_status:
        return str(service_status[sid].get("state"))
    if sid in requested:
        return config.with_defaults(requested[sid])["state"]
    return None


def forward(ctx: Context, task: str, vmid: int, line: str, command: list[str]) -> str:
    """The task that only queues the request with ha-manager; it fails when ha-manager refuses."""
    def work(log: Any) -> None:
        log(line)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        for out in (done.stdout, done.stderr):
            for text in out.splitlines():
                log(text)
        if done.returncode:
            raise RuntimeError(f"command '{' '.join(command)}' failed: exit code {done.returncode}")

    return tasks.start(ctx.node, task, str(vmid), ctx.caller.name, work)


def start(ctx: Context, sid: str, vmid: int, what: str) -> str:
    return forward(ctx, "hastart", vmid, f"Requesting HA start for {what} {vmid}",
                   ["ha-manager", "set", sid, "--state", "started"])


def stop(ctx: Context, sid: str, vmid: int, what: str, timeout: int) -> str:
    return forward(ctx, "hastop", vmid, f"Requesting HA stop for {what} {vmid}",
                   ["ha-manager", "crm-command", "stop", sid, str(timeout)])


def migrate(ctx: Context, sid: str, vmid: int, what: str, target: str) -> str:
    return forward(ctx, "hamigrate", vmid, f"Requesting HA migration for {what} {vmid} to node {target}",
                   ["ha-manager", "migrate", sid, target])


def check_destroy(sid: str, what: str, vmid: int, purge: bool) -> bool:
    """qm/pct destroy of an HA resource needs `purge`; True when the resource is to be removed too."""
    if sid not in config.resources():
        return False
    if not purge:
        raise GuestError(f"unable to remove {what} {vmid} - used in HA resources and purge parameter not set.")
    return True


def remove_resource(sid: str, what: str, vmid: int, log: Any) -> None:
    with config.domain_lock():
        entries = config.resources()
        if entries.pop(sid, None) is not None:
            config.write_resources(entries)
    log(f"NOTE: removed {what} {vmid} from HA resource configuration.")
