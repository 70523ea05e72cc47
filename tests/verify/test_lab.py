"""Is the course lab on this node as the inventory describes it? Storage, guests, HA and placement,
fencing, backups - each check is a probe of the grader (pvelab.grade.probes: one source of checks,
verify stays pass/fail), run through this node's API and shell only, so every node must agree. Each
fails with the probe's sentences: what is wrong and what to do. A check whose part of the lab the
inventory does not describe is skipped (it is not on the checklist)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import resolved

from pvelab.grade.access import ClusterAccess
from pvelab.grade.probes import PROBES

BACKUP_MAX_AGE_H = 25  # a daily job plus an hour (role pve_backup's pve_backup_max_age)


def described(cluster: dict[str, Any], node: str, name: str) -> list[dict[str, Any]]:
    """The inventory's entries of `name` that are not being removed; the check is skipped without any."""
    entries = [e for e in cluster[node].get(name) or [] if e.get("state") != "absent"]
    if not entries:
        pytest.skip(f"the inventory describes no {name}")
    return entries


def holds(access: ClusterAccess, probe: str, params: dict[str, Any]) -> None:
    outcome = PROBES[probe](access, params)
    assert outcome.ok, "; ".join(outcome.problems)


def test_storages_are_defined_and_active(access: ClusterAccess, node: str, cluster: dict[str, Any]) -> None:
    for storage in described(cluster, node, "pve_storage_definitions"):
        if not storage.get("nodes") or node in storage["nodes"]:
            holds(access, "storage.defined", {k: storage[k] for k in ("storage", "type", "content", "isos")
                                              if k in storage})


def test_guests_exist_and_run_as_described(access: ClusterAccess, node: str, cluster: dict[str, Any]) -> None:
    guests = described(cluster, node, "pve_guests_definitions")
    by_state = {state: [g["vmid"] for g in guests if g.get("state", "present") == state]
                for state in ("started", "stopped", "present")}
    holds(access, "guests.running", {"vmids": by_state["started"], "stopped": by_state["stopped"],
                                     "present": by_state["present"]})


def test_ha_resources_are_in_their_requested_state_where_placement_says(access: ClusterAccess, node: str,
                                                                          cluster: dict[str, Any]) -> None:
    resources = described(cluster, node, "pve_ha_resources")
    holds(access, "ha.resources_started", {"resources": resources})
    placements = [p for p in cluster[node].get("pve_ha_placements") or [] if p.get("state") != "absent"]
    holds(access, "ha.placement_respected", {"placements": placements})


def test_replicated_guests_have_synced_to_their_targets(access: ClusterAccess, node: str,
                                                        cluster: dict[str, Any]) -> None:
    jobs = described(cluster, node, "pve_guests_replication")
    holds(access, "replication.synced", {"jobs": [{"vmid": j["vmid"], "target": j["target"]} for j in jobs]})


def test_watchdog_module_is_set(access: ClusterAccess, node: str, cluster: dict[str, Any]) -> None:
    module = cluster[node].get("pve_fencing_watchdog_module")
    if not module:
        pytest.skip("the inventory sets no watchdog module")
    holds(access, "fencing.watchdog", {"watchdog_module": module})


def test_bmc_answers_with_its_credentials(access: ClusterAccess, node: str, cluster: dict[str, Any]) -> None:
    if not cluster[node].get("bmc_address"):
        pytest.skip("the inventory gives this node no BMC")
    holds(access, "fencing.bmc", {"cipher_suite": cluster[node].get("bmc_cipher_suite", 3)})


def test_every_backup_job_guest_has_a_young_archive(access: ClusterAccess, node: str,
                                                    cluster: dict[str, Any]) -> None:
    for job in described(cluster, node, "pve_backup_jobs"):
        holds(access, "backup.recent", {"storage": job.get("storage"), "vmids": job.get("vmids") or [],
                                        "max_age_h": BACKUP_MAX_AGE_H})


def test_ceph_is_healthy_with_its_monitors_osds_and_pools(access: ClusterAccess, node: str,
                                                           cluster: dict[str, Any]) -> None:
    variables = cluster[node]
    if not variables.get("pve_ceph_enabled"):
        pytest.skip("the inventory describes no Ceph")
    holds(access, "ceph.mons_quorum", {"nodes": variables.get("pve_ceph_mons") or access.node_names()})
    holds(access, "ceph.osds_up_in", {"per_node": len(resolved(variables, "pve_ceph_osd_devices") or [])})
    for pool in [p for p in variables.get("pve_ceph_pools") or [] if p.get("state") != "absent"]:
        holds(access, "ceph.pool", {k: pool[k] for k in ("name", "size", "min_size") if k in pool})
        if pool.get("add_storages"):
            holds(access, "storage.defined", {"storage": pool["name"], "type": "rbd"})
    holds(access, "ceph.health", {})


def test_the_lab_accounts_are_as_described(access: ClusterAccess, node: str, cluster: dict[str, Any]) -> None:
    users = [u["userid"] for u in described(cluster, node, "pve_access_users")]
    pools = [p for p in cluster[node].get("pve_access_pools") or [] if p.get("state") != "absent"]
    acls = [a for a in cluster[node].get("pve_access_acls") or [] if a.get("state") != "absent"]
    holds(access, "access.accounts", {"users": users, "pools": pools, "acls": acls})


def test_the_graders_token_reads_but_cannot_write(access: ClusterAccess, node: str, cluster: dict[str, Any]) -> None:
    """With the token the course lab kept for the grader: this node's API answers, a write is refused."""
    from pathlib import Path

    from pvelab.grade.roster import Student

    kept = cluster[node].get("lab_grader_token_file")
    if not kept or not Path(kept).exists():
        pytest.skip("the inventory keeps no grader token")
    full, _, secret = Path(kept).read_text().strip().rpartition("=")
    grader = ClusterAccess(Student(id=node, nodes=access.student.nodes, access={
        "api_user": full.partition("!")[0], "api_token_id": full, "api_token_secret": secret}), timeout=30)
    try:
        assert grader.api("/cluster/status", node=node), f"{node}: the grader's token reads nothing"
        holds(grader, "access.read_only", {})
    finally:
        grader.close()
