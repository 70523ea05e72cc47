"""Changing corosync.conf the way the PVE docs say (edit a copy, bump config_version, move it into
place), refusing changes that would cut nodes off, and checking that corosync took the new one."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils import corosync_conf as cc
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_poll import poll
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SshRunner
from ansible_collections.pvelab.pve.plugins.module_utils.pvecm_output import parse_status

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
        link = whole_number(str(number).removeprefix("link"), f"link_priorities key '{number}'", "a link number")
        if link not in interfaces:
            raise PveError(f"link_priorities names link{link}, but the cluster has links {numbers}")
        value = whole_number(priority, f"link_priorities value '{priority}' of link{link}", "a number 0-255")
        interfaces[link]["knet_link_priority"] = str(value)
    for key, value in (totem or {}).items():
        if key in ("interface", "cluster_name", "config_version", "version"):
            raise PveError(f"totem option '{key}' is managed by PVE, not by this module")
        if value is None:
            want["totem"].pop(key, None)
        elif isinstance(value, (dict, list)):
            raise PveError(f"totem option '{key}' must be a single value (number or word), not {value!r}")
        else:
            want["totem"][key] = str(int(value) if isinstance(value, bool) else value)
    return want


def whole_number(value: Any, what: str, expected: str) -> int:
    """int(value), or a PveError that names the option (a traceback tells a student nothing)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PveError(f"{what} is not {expected}") from None


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
        wait_for_reload(ssh, p, new, result)
        return result
    finally:
        ssh.close()


def wait_for_reload(ssh: SshRunner, p: dict[str, Any], new: cc.Conf, result: dict[str, Any]) -> None:
    """Wait until corosync runs the new version and the node is still quorate. The file is already
    replaced when this fails, so the error carries `result` (changed, the new version, the diff)."""
    version = cc.config_version(new)

    def reloaded() -> bool | None:
        rc, out, _err = ssh.run("corosync-cmapctl -g totem.config_version")
        status = parse_status(ssh.run("pvecm status")[1])
        return True if rc == 0 and out.strip().endswith(f"= {version}") and status.get("quorate") else None

    if poll(reloaded, p["verify_timeout"], 1.0) is None:
        raise PveError(f"corosync.conf was replaced (config_version {version}), but corosync on '{p['api_host']}' "
                       f"did not take it within {p['verify_timeout']} s (or lost quorum). Check 'journalctl -u "
                       f"corosync'; the previous config is in {PVE_CONF}.bak", result)
