"""Is the course lab on this node as the inventory describes it? Storage, guests, HA and placement,
fencing, backups - each check seen from this node (so every node must agree), each failing with a
sentence that says what is wrong and what to do. A check whose part of the lab the inventory does
not describe is skipped (it is not on the checklist)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest

BACKUP_MAX_AGE_H = 25  # a daily job plus an hour (role pve_backup's pve_backup_max_age)


def described(cluster: dict[str, Any], node: str, name: str) -> list[dict[str, Any]]:
    """The inventory's entries of `name` that are not being removed; the check is skipped without any."""
    entries = [e for e in cluster[node].get(name) or [] if e.get("state") != "absent"]
    if not entries:
        pytest.skip(f"the inventory describes no {name}")
    return entries


def pvesh(host: Any, path: str, node: str) -> Any:
    out = host.run(f"pvesh get {path} --output-format json")
    assert out.rc == 0, (f"{node} cannot read {path}: {(out.stderr or out.stdout).strip()} - is it in a quorate "
                         "cluster with pveproxy and pvedaemon running?")
    return json.loads(out.stdout)


def test_storages_are_defined_and_active(host: Any, node: str, cluster: dict[str, Any]) -> None:
    for storage in described(cluster, node, "pve_storage_definitions"):
        if storage.get("nodes") and node not in storage["nodes"]:
            continue
        sid = storage["storage"]
        out = host.run(f"pvesm status --storage {sid}")
        assert out.rc == 0, (f"{node} has no storage '{sid}': {(out.stderr or out.stdout).strip()} - define it "
                             "(Datacenter > Storage, pvesm add, or the pve_storage role)")
        assert re.search(rf"^{re.escape(sid)}\s+\S+\s+active\b", out.stdout, re.M), (
            f"storage '{sid}' is not active on {node}: {out.stdout.strip().splitlines()[-1]} - is its directory "
            "mounted (a shared storage needs the mount on every node) and the storage enabled?")
        config = pvesh(host, f"/storage/{sid}", node)
        missing = set(storage.get("content") or []) - set(str(config.get("content", "")).split(","))
        assert not missing, (f"storage '{sid}' does not hold {', '.join(sorted(missing))} content: add it to the "
                             "storage's content types (pvesm set --content)")
        for iso in storage.get("isos") or []:
            name = iso.rsplit("/", 1)[-1]
            listed = host.run(f"pvesm list {sid} --content iso").stdout
            assert f"{sid}:iso/{name}" in listed, (f"{node} does not see {name} on storage '{sid}': copy it into "
                                                   f"{storage.get('path')}/template/iso/")


def guests_by_vmid(host: Any, node: str) -> dict[int, dict[str, Any]]:
    return {int(g["vmid"]): g for g in pvesh(host, "/cluster/resources --type vm", node)}


def test_guests_exist_and_run_as_described(host: Any, node: str, cluster: dict[str, Any]) -> None:
    guests = guests_by_vmid(host, node)
    for wanted in described(cluster, node, "pve_guests_definitions"):
        vmid = int(wanted["vmid"])
        assert vmid in guests, (f"guest {vmid} ({wanted.get('name', 'no name')}) does not exist in the cluster, as "
                                f"{node} sees it: create it (qm create, or the pve_guests role)")
        status = guests[vmid].get("status")
        if wanted.get("state") in ("started", "stopped"):
            expected = "running" if wanted["state"] == "started" else "stopped"
            assert status == expected, (f"guest {vmid} is {status} on {guests[vmid].get('node')}, it should be "
                                        f"{expected}: {'start' if expected == 'running' else 'stop'} it (through "
                                        "ha-manager if HA manages it)")


def expected_nodes(placement: dict[str, Any], node_status: dict[str, str]) -> set[str]:
    """Where the HA manager should run a placed guest: the online placement nodes of the highest
    priority (any online placement node without failback); any online node if none is and it is not strict."""
    priority = {entry.split(":")[0]: int(entry.split(":")[1]) if ":" in entry else 0 for entry in placement["nodes"]}
    online = {n for n, p in priority.items() if node_status.get(n) == "online"}
    if not online:
        return set() if placement.get("strict") else {n for n, s in node_status.items() if s == "online"}
    if placement.get("failback") is False:
        return online
    top = max(priority[n] for n in online)
    return {n for n in online if priority[n] == top}


def test_ha_resources_are_in_their_requested_state_where_placement_says(host: Any, node: str,
                                                                          cluster: dict[str, Any]) -> None:
    resources = described(cluster, node, "pve_ha_resources")
    status = pvesh(host, "/cluster/ha/status/manager_status", node)
    manager = status.get("manager_status") or {}
    assert manager.get("master_node"), (f"{node} sees no HA manager master: is pve-ha-crm running on the nodes "
                                        "(systemctl status pve-ha-crm), and the cluster quorate?")
    services = manager.get("service_status") or {}
    placements = cluster[node].get("pve_ha_placements") or []
    for resource in resources:
        sid, requested = resource["sid"], resource.get("resource_state", "started")
        assert sid in services, (f"{sid} is not an HA resource, as {node} sees it: add it (ha-manager add {sid}, or "
                                 "the pve_ha role)")
        state, where = services[sid].get("state"), services[sid].get("node")
        assert state == requested, (f"HA resource {sid} is '{state}' on {where}, requested '{requested}' - see "
                                    "'ha-manager status' and the task log of its last start on that node")
        placement = next((p for p in placements if sid in (p.get("resources") or []) and p.get("state") != "absent"),
                         None)
        if placement is None or requested != "started":
            continue
        allowed = expected_nodes(placement, manager.get("node_status") or {})
        assert where in allowed, (f"HA resource {sid} runs on {where}, but its placement '{placement['name']}' "
                                  f"({', '.join(placement['nodes'])}) puts it on {' or '.join(sorted(allowed))} - "
                                  "is the HA manager still moving it (ha-manager status)?")


def test_watchdog_module_is_set(host: Any, node: str, cluster: dict[str, Any]) -> None:
    module = cluster[node].get("pve_fencing_watchdog_module")
    if not module:
        pytest.skip("the inventory sets no watchdog module")
    text = host.file("/etc/default/pve-ha-manager").content_string
    set_to = re.findall(r"^\s*WATCHDOG_MODULE=(\S+)", text, re.M)
    assert set_to and set_to[-1] == module, (
        f"{node}'s HA watchdog module is {set_to[-1] if set_to else 'softdog (the default)'}, not {module}: set "
        f"WATCHDOG_MODULE={module} in /etc/default/pve-ha-manager (or run the pve_fencing role), then reboot")


def test_bmc_answers_with_its_credentials(node: str, cluster: dict[str, Any]) -> None:
    variables = cluster[node]
    if not variables.get("bmc_address"):
        pytest.skip("the inventory gives this node no BMC")
    out = subprocess.run(["ipmitool", "-I", "lanplus", "-C", str(variables.get("bmc_cipher_suite", 3)),
                          "-H", variables["bmc_address"], "-p", str(variables.get("bmc_port", 623)),
                          "-U", variables.get("bmc_user", "admin"), "-E", "chassis", "status"],
                         env={"IPMI_PASSWORD": str(variables.get("bmc_password", "")), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0 and "System Power" in out.stdout, (
        f"{node}'s BMC at {variables['bmc_address']} does not answer 'chassis status' for user "
        f"{variables.get('bmc_user', 'admin')}: {(out.stderr or out.stdout).strip()} - check its network, address "
        "and credentials; without it nobody can power the node off or on from outside")


def test_every_backup_job_guest_has_a_young_archive(host: Any, node: str, cluster: dict[str, Any]) -> None:
    for job in described(cluster, node, "pve_backup_jobs"):
        storage = job.get("storage")
        archives = pvesh(host, f"/nodes/{node}/storage/{storage}/content --content backup", node)
        for vmid in job.get("vmids") or []:
            newest = max((a.get("ctime", 0) for a in archives if int(a.get("vmid", -1)) == int(vmid)), default=None)
            assert newest is not None, (f"guest {vmid} has no backup on '{storage}' (job {job['id']}, seen from "
                                        f"{node}): run the job now (Datacenter > Backup > Run now, or vzdump "
                                        f"{vmid} --storage {storage})")
            age_h = (time.time() - newest) / 3600
            assert age_h <= BACKUP_MAX_AGE_H, (
                f"the newest backup of guest {vmid} on '{storage}' is {age_h:.0f} h old, older than job "
                f"{job['id']}'s schedule ({job.get('schedule')}) allows: did the job run? Look at its task log")
