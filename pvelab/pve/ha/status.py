"""What `ha-manager status` and /cluster/ha/status/* show: the quorum, the master, fencing, each LRM and
each service, read from manager_status, the lrm_status files and the resources."""

from __future__ import annotations

import json
import time
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve import members, version
from pvelab.pve.ha import config
from pvelab.pve.ha.env import service_config
from pvelab.pve.ha.manager import count_active_services

STALE_AFTER = 30  # seconds: an older timestamp reads "old timestamp - dead?"


def freshness(now: float, timestamp: float) -> str:
    age = now - timestamp
    if age > STALE_AFTER:
        return "old timestamp - dead?"
    return "detected time drift!" if age < -2 else "active"


def verbose_state(ss: dict[str, Any] | None, sc: dict[str, str] | None) -> str:
    """A service's displayed state: the CRM state, made readable with the requested state."""
    if sc is None:
        return "deleting"
    requested = sc.get("state", "ignored")
    if requested == "ignored":
        return "ignored"
    if not sc.get("node"):
        return "not found"
    if ss is None or not ss.get("state"):
        return "queued"
    state = str(ss["state"])
    if state == "stopped":
        state = {"started": "starting", "disabled": "disabled"}.get(requested, state)
    elif state == "started":
        if requested in ("stopped", "disabled"):
            state = "stopping"
        if not ss.get("running"):
            state = "starting"
    elif state == "error" and requested == "disabled":
        state = "clearing error flag"
    return state


def current() -> list[dict[str, Any]]:
    """GET /cluster/ha/status/current."""
    node, now = nodename(), time.time()
    pve9 = version.major() != "8"
    quorate = members.quorate()
    out: list[dict[str, Any]] = [{"id": "quorum", "type": "quorum", "node": node,
                                  "status": "OK" if quorate else f"No quorum on node '{node}'!",
                                  "quorate": int(quorate)}]
    ms = config.manager_status()
    sc = service_config()
    master, stamp = ms.get("master_node"), ms.get("timestamp")
    if master is not None and stamp is not None:
        state = freshness(now, stamp)
        if quorate and state != "active" and not sc:
            state = "idle"
        extra = ""
        if ms.get("disarm"):
            extra += f" - {ms['disarm']['state']}, resource mode: {ms['disarm']['mode']}"
        crs = config.datacenter_option("crs").get("ha")
        if crs and crs != "basic":
            extra += f" - {crs} load CRS"
        out.append({"id": "master", "type": "master", "node": master, "timestamp": stamp,
                    "status": f"{master} ({state}, {time.asctime(time.localtime(stamp))}){extra}"})
    if pve9:
        out.append(fencing_entry(ms, node, now))
    ss_all = ms.get("service_status") or {}
    for lrm_node in sorted(ms.get("node_status") or {}):
        out.append(lrm_entry(lrm_node, config.lrm_status(lrm_node) or {}, ss_all, now, pve9))
    for sid in [*sorted(ss_all), *sorted(s for s in sc if s not in ss_all)]:
        out.append(service_entry(sid, sc.get(sid), ss_all.get(sid), ms, pve9))
    return out


def fencing_entry(ms: dict[str, Any], node: str, now: float) -> dict[str, Any]:
    where = ms.get("master_node") or node
    disarm = ms.get("disarm")
    if disarm:
        released = "CRM watchdog released" if disarm.get("state") == "disarmed" else "CRM watchdog active"
        return {"id": "fencing", "type": "fencing", "node": where, "armed-state": disarm.get("state"),
                "resource_mode": disarm.get("mode"),
                "status": f"{disarm.get('state')}, resource mode: {disarm.get('mode')} ({released})"}
    active = ms.get("master_node") is not None and ms.get("timestamp") is not None \
        and freshness(now, ms["timestamp"]) == "active"
    armed = "armed" if active else "standby"
    return {"id": "fencing", "type": "fencing", "node": where, "armed-state": armed,
            "status": f"{armed} (CRM watchdog {'active' if active else 'standby'})"}


def lrm_entry(node: str, lrm: dict[str, Any], ss: dict[str, Any], now: float, pve9: bool) -> dict[str, Any]:
    if not lrm.get("timestamp"):
        return {"id": f"lrm:{node}", "type": "lrm", "node": node, "status": f"{node} (unable to read lrm status)"}
    state = freshness(now, lrm["timestamp"])
    mode, lrm_state = lrm.get("mode"), lrm.get("state") or "unknown"
    if state == "active" and lrm_state in ("active", "maintenance"):
        watchdog = "watchdog active"
    elif mode == "disarm":
        watchdog = "watchdog released"
    else:
        watchdog = "watchdog standby"
    if state == "active":
        mode = mode or "active"
        if mode != "active":
            state = f"{mode} mode"
        else:
            idle = lrm_state == "wait_for_agent_lock" and not count_active_services(ss, node)
            state = "idle" if idle else lrm_state
    elif mode in ("maintenance", "disarm"):
        state = f"{mode} mode"
    stamp = time.asctime(time.localtime(lrm["timestamp"]))
    text = f"{node} ({state}, {watchdog}, {stamp})" if pve9 else f"{node} ({state}, {stamp})"
    return {"id": f"lrm:{node}", "type": "lrm", "node": node, "status": text, "timestamp": lrm["timestamp"]}


def service_entry(sid: str, sc: dict[str, str] | None, ss: dict[str, Any] | None, ms: dict[str, Any],
                  pve9: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"id": f"service:{sid}", "type": "service", "sid": sid}
    if ss is not None:
        data["node"], data["crm_state"] = ss.get("node"), ss.get("state")
    elif sc is not None:
        data["node"] = sc.get("node")
    data["state"] = verbose_state(ss, sc)
    if (ms.get("disarm") or {}).get("mode") == "ignore":
        data["state"] = "ignore"
    data["status"] = f"{sid} ({data.get('node') or '---'}, {data['state']})"
    if sc is not None:
        data["request_state"] = sc["state"]
        keys = ("group", "max_restart", "max_relocate", "failback", "comment") if pve9 else \
            ("group", "max_restart", "max_relocate", "comment")
        for key in keys:
            if key in sc:
                data[key] = int(sc[key]) if key in ("max_restart", "max_relocate", "failback") else sc[key]
    if data.get("node") is None:
        data.pop("node", None)
    return data


def manager_status_view() -> dict[str, Any]:
    """GET /cluster/ha/status/manager_status."""
    ms = config.manager_status()
    return {"manager_status": ms, "quorum": {"node": nodename(), "quorate": 1 if members.quorate() else ""},
            "lrm_status": {n: config.lrm_status(n) or {} for n in sorted(ms.get("node_status") or {})}}


def status_lines(verbose: bool = False) -> list[str]:
    """`ha-manager status [--verbose]`."""
    lines = [f"{e['type']} {e['status']}" for e in current()]
    if verbose:
        lines.append("full cluster state:")
        lines.append(perl_pretty_json(manager_status_view()))
    return lines


def perl_pretty_json(data: Any) -> str:
    """Perl JSON's canonical pretty output: 3-space indent, `"key" : value`."""
    text = json.dumps(data, indent=3, sort_keys=True, separators=(",", " : "))
    return text
