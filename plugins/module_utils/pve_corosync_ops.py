"""Changing corosync.conf the way the PVE docs say (edit a copy, bump config_version, move it into
place), refusing changes that would cut nodes off, and checking that corosync took the new one."""

from __future__ import annotations

import copy
import ipaddress
import time
from typing import Any

from ansible.module_utils import corosync_conf as cc
from ansible.module_utils.pve_errors import PveError
from ansible.module_utils.pve_ssh import SshRunner
from ansible.module_utils.pvecm_output import parse_status

PVE_CONF = "/etc/pve/corosync.conf"


def desired_conf(current: cc.Conf, links: dict[str, list[str]] | None, priorities: dict[Any, int] | None,
                 totem: dict[str, Any] | None) -> cc.Conf:
    want = copy.deepcopy(current)
    nodes = {n["name"]: n for n in want["nodelist"]["node"]}
    numbers = cc.link_numbers(current)
    for name, addresses in (links or {}).items():
        if name not in nodes:
            raise PveError(f"links names node '{name}', which is not in the cluster ({', '.join(sorted(nodes))})")
        if len(addresses) != len(numbers):
            raise PveError(f"node '{name}' needs {len(numbers)} link address(es) (links {numbers}); adding or "
                           "removing links needs corosync restarted everywhere and is not done by this module")
        for number, address in zip(numbers, addresses, strict=True):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise PveError(f"link{number} address '{address}' of node '{name}' is not an IP address") from None
            nodes[name][f"ring{number}_addr"] = address
    interfaces = {int(i["linknumber"]): i for i in want["totem"]["interface"]}
    for number, priority in (priorities or {}).items():
        link = int(str(number).removeprefix("link"))
        if link not in interfaces:
            raise PveError(f"link_priorities names link{link}, but the cluster has links {numbers}")
        interfaces[link]["knet_link_priority"] = str(int(priority))
    for key, value in (totem or {}).items():
        if key in ("interface", "cluster_name", "config_version", "version"):
            raise PveError(f"totem option '{key}' is managed by PVE, not by this module")
        if value is None:
            want["totem"].pop(key, None)
        else:
            want["totem"][key] = str(int(value) if isinstance(value, bool) else value)
    return want


def refuse_breaking_quorum(current: cc.Conf, want: cc.Conf) -> None:
    """Refuse a change of every link address of a node at once: it would drop out of the cluster."""
    old = {n["name"]: n for n in cc.nodes(current)}
    for node in cc.nodes(want):
        numbers = [k for k in node if k.startswith("ring") and k.endswith("_addr")]
        if numbers and all(node[k] != old[node["name"]].get(k) for k in numbers):
            raise PveError(f"refusing to change every link address of '{node['name']}' at once: it would lose "
                           "contact with the cluster and quorum could be lost. Change one link, let it settle, "
                           "then the next")


def ensure(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    ssh = SshRunner.from_params(p, p["api_host"])
    try:
        status = parse_status(ssh.check("pvecm status"))
        text = ssh.check(f"cat {PVE_CONF}")
        current = cc.parse(text)
        want = desired_conf(current, p["links"], p["link_priorities"], p["totem"])
        if cc.dump(want) == cc.dump(current):
            return {"changed": False, "config_version": cc.config_version(current)}
        if not status.get("quorate"):
            raise PveError(f"'{p['api_host']}' is not quorate, so /etc/pve is read-only: restore quorum before "
                           "changing corosync.conf")
        refuse_breaking_quorum(current, want)
        new = cc.bump(want)
        result = {"changed": True, "config_version": cc.config_version(new),
                  "diff": {"before": text, "after": cc.dump(new), "before_header": PVE_CONF,
                           "after_header": PVE_CONF}}
        if check_mode:
            return result
        # PVE's documented safe edit: a copy, a backup, then one atomic move.
        ssh.check(f"cat > {PVE_CONF}.new", stdin=cc.dump(new))
        ssh.check(f"cp {PVE_CONF} {PVE_CONF}.bak && mv {PVE_CONF}.new {PVE_CONF}")
        wait_for_reload(ssh, p, new)
        return result
    finally:
        ssh.close()


def wait_for_reload(ssh: SshRunner, p: dict[str, Any], new: cc.Conf) -> None:
    version = cc.config_version(new)
    deadline = time.monotonic() + p["verify_timeout"]
    while time.monotonic() < deadline:
        rc, out, _ = ssh.run("corosync-cmapctl -g totem.config_version")
        status = parse_status(ssh.run("pvecm status")[1])
        if rc == 0 and out.strip().endswith(f"= {version}") and status.get("quorate"):
            return
        time.sleep(1)
    raise PveError(f"corosync on '{p['api_host']}' did not take config_version {version} within "
                   f"{p['verify_timeout']} s (or lost quorum). Check 'journalctl -u corosync'; the previous "
                   f"config is in {PVE_CONF}.bak")
