"""The LRM's resource agent: one HA request (started, request_stop/stopped, migrate, relocate, error) for
one guest, run as a worker process; its exit code is the HA result code the LRM reports. The guest
calls are the API's own handlers, marked as HA's so they act instead of queueing an HA request."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve.api import direct, tasks
from pvelab.pve.api.routes import ApiException
from pvelab.pve.guests import containers, runtime
from pvelab.pve.ha import config
from pvelab.pve.ha.env import log, service_config
from pvelab.pve.ha.manager import (
    EINVALID_PARAMETER,
    ERROR,
    EUNKNOWN_COMMAND,
    EUNKNOWN_SERVICE,
    EUNKNOWN_SERVICE_TYPE,
    EWRONG_NODE,
    IGNORED,
    SUCCESS,
)

DEFAULT_STOP_TIMEOUT = 60


class Guest:
    def __init__(self, sid: str, node: str) -> None:
        kind, self.vmid = config.parse_sid(sid)
        self.node = node
        self.api = "qemu" if kind == "vm" else "lxc"

    def running(self) -> bool:
        return runtime.pid_of(self.vmid) is not None if self.api == "qemu" else containers.running(self.vmid)

    def task(self, action: str, params: dict[str, Any]) -> bool:
        """Run one guest API call as HA and wait for its task; True when it succeeded."""
        try:
            upid = direct.call("POST", f"/nodes/{self.node}/{self.api}/{self.vmid}/{action}", params, ha=True)
        except ApiException as exc:
            log("err", str(exc))
            return False
        tasks.wait(upid)
        with contextlib.suppress(tasks.TaskError):
            return str(tasks.status(upid).get("exitstatus")) == "OK"
        return False

    def shutdown(self, timeout: str | None) -> None:
        if timeout is not None and str(timeout) == "0":
            self.task("status/stop", {})
        else:
            self.task("status/shutdown", {"timeout": str(timeout or DEFAULT_STOP_TIMEOUT), "forceStop": "1"})

    def migrate(self, target: str, online: bool) -> bool:
        if not online and self.running():  # relocate: stop here, move, start there
            self.shutdown(None)
        params: dict[str, Any] = {"target": target}
        if online and self.running():
            params.update({"online": "1", "with-local-disks": "1"} if self.api == "qemu" else {"restart": "1"})
        self.task("migrate", params)
        return not config_exists(self)


def config_exists(guest: Guest) -> bool:
    sub = "qemu-server" if guest.api == "qemu" else "lxc"
    return (config.PVE_DIR / "nodes" / guest.node / sub / f"{guest.vmid}.conf").exists()


def execute(sid: str, command: str, target: str | None, timeout: str | None) -> int:
    """One request on this node, its guest driven through the API."""
    node = nodename()
    if not sid.startswith(("vm:", "ct:")):
        log("err", f"service type '{sid.split(':', maxsplit=1)[0]}' not implemented")
        return EUNKNOWN_SERVICE_TYPE
    return run_request(sid, command, target, timeout, node, service_config().get(sid), Guest(sid, node), log)


def run_request(sid: str, command: str, target: str | None, timeout: str | None, node: str,
                conf: dict[str, str] | None, guest: Any, log: Any) -> int:
    """What the agent does with a request (pve-ha-manager's exec_resource_agent): the guest is anything
    that answers running(), task("status/start", {}), shutdown(timeout) and migrate(target, online) -
    the node's own, or a simulated cluster's."""
    if conf is None:
        log("err", f"missing resource configuration for '{sid}'")
        return EUNKNOWN_SERVICE
    if command == "error":
        log("err", f"service {sid} is in an error state and needs manual intervention."
                   " Look up 'ERROR RECOVERY' in the documentation.")
        return SUCCESS
    if conf.get("node") != node:
        log("err", f"service '{sid}' not on this node")
        return EWRONG_NODE
    running = guest.running()
    if command == "started":
        if running:
            return SUCCESS
        log("info", f"starting service {sid}")
        guest.task("status/start", {})
        if guest.running():
            log("info", f"service status {sid} started")
            return SUCCESS
        log("warning", f"unable to start service {sid}")
        return ERROR
    if command in ("request_stop", "stopped"):
        if not running:
            return SUCCESS
        log("info", f"stopping service {sid}" + (f" (timeout={timeout})" if timeout is not None else ""))
        guest.shutdown(timeout)
        if not guest.running():
            log("info", f"service status {sid} stopped")
            return SUCCESS
        log("info", f"unable to stop service {sid} (still running)")
        return ERROR
    if command in ("migrate", "relocate", "request_start_balance"):
        if not target:
            return EINVALID_PARAMETER
        if target == node:
            return SUCCESS
        if command == "request_start_balance" and running:
            log("info", f"ignoring rebalance-on-start for service {sid} - already running")
            return IGNORED
        if not guest.migrate(target, command == "migrate"):
            log("err", f"service {sid} not moved (migration error)")
            return ERROR
        return SUCCESS
    log("err", f"implement me (cmd '{command}')")
    return EUNKNOWN_COMMAND


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pve-ha-lrm-worker")
    parser.add_argument("sid")
    parser.add_argument("command")
    parser.add_argument("--target")
    parser.add_argument("--timeout")
    args = parser.parse_args(argv)
    return execute(args.sid, args.command, args.target, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
