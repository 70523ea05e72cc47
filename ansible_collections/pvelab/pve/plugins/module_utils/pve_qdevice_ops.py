"""A cluster's QDevice (corosync-qnetd on a third host gives a 2-node cluster its third vote), set up or
removed with `pvecm qdevice` over SSH on a cluster node, as PVE does it. Refusals come before check mode."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SshRunner
from ansible_collections.pvelab.pve.plugins.module_utils.pvecm_output import parse_status

QNETD_HOST = re.compile(r"^\s*host:\s*(\S+)\s*$", re.M)


def qdevice_state(ssh: SshRunner) -> tuple[dict[str, Any], str | None]:
    """`pvecm status` parsed, and the qnetd host corosync.conf names (None without a QDevice)."""
    code, out, err = ssh.run("pvecm status")
    if code != 0:
        raise PveError(f"pvecm status failed on {ssh.host}: {(err or out).strip()} - is the node in a cluster?")
    status = parse_status(out)
    code, conf, _err = ssh.run("cat /etc/pve/corosync.conf")
    device = conf.split("device {", 1)[1] if code == 0 and "device {" in conf else ""
    found = QNETD_HOST.search(device)
    return status, found.group(1) if found else None


def ensure_qdevice(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    ssh = SshRunner.from_params(p, p["host"])
    status, current = qdevice_state(ssh)
    nodes = status.get("nodes", 0)
    if p["state"] == "absent":
        if current is None:
            return {"changed": False, "qnetd": None}
        result = {"changed": True, "qnetd": None, "diff": {"before": {"qnetd": current}, "after": {"qnetd": None}}}
        if check_mode:
            return {**result, "msg": f"the QDevice (qnetd at {current}) would be removed"}
        run(ssh, "pvecm qdevice remove")
        return result
    wanted = p["qnetd_address"]
    if not wanted:
        raise PveError("a QDevice needs qnetd_address: the host running corosync-qnetd")
    if current == wanted:
        return {"changed": False, "qnetd": current}
    if current is not None:
        raise PveError(f"the cluster already has a QDevice with qnetd at {current}: remove it first (state: absent), "
                       f"then set up {wanted}")
    if nodes % 2 and not p["force"]:
        raise PveError(f"the cluster has {nodes} nodes: PVE supports a QDevice on clusters with an even node count "
                       "(with an odd one it can lower availability); set force: true to do it anyway")
    result = {"changed": True, "qnetd": wanted, "diff": {"before": {"qnetd": None}, "after": {"qnetd": wanted}}}
    if check_mode:
        return {**result, "msg": f"a QDevice with qnetd at {wanted} would be set up"}
    run(ssh, f"pvecm qdevice setup {wanted}" + (" --force" if p["force"] else ""))
    return result


def run(ssh: SshRunner, command: str) -> str:
    code, out, err = ssh.run(command)
    if code != 0:
        raise PveError(f"{command} failed on {ssh.host}: {(err or out).strip()} - the node needs root SSH access "
                       "to the qnetd host (ssh-copy-id), and corosync-qnetd running there")
    return out
