"""pve_backup_job and pve_backup against a fake API: create once, only the difference, refusals before
check mode (storage without backups, no schedule, no guests), a backup run reporting its archive."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_backup_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_backup, pve_backup_job
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import FakeApi, FakeCluster, module_params

JOB = {"id": "nightly", "schedule": "21:00", "vmids": [111, 110], "storage": "labshare", "mode": "snapshot"}


def options(spec: dict[str, dict[str, Any]], **given: Any) -> dict[str, Any]:
    return module_params(spec, **{"api_host": "198.18.0.11", "api_password": "pw", **given})


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster().form("lab", "pve1", "pve2", "pve3")
    cluster.storages["labshare"] = {"type": "dir", "path": "/mnt/lab-shared", "content": "images,backup", "shared": 1}
    monkeypatch.setattr(FakeApi, "world", cluster, raising=False)
    monkeypatch.setattr(pve_backup_ops, "PveApi", FakeApi)
    return cluster


def test_a_job_is_created_once_then_only_changed(world: FakeCluster) -> None:
    spec = pve_backup_job.ARGUMENT_SPEC
    preview = pve_backup_ops.ensure_job(options(spec, **JOB), check_mode=True)
    assert "would be created" in preview["msg"] and world.changes() == []
    pve_backup_ops.ensure_job(options(spec, **JOB), check_mode=False)
    assert world.changes() == [("pve1", "POST", "/cluster/backup", {"id": "nightly", "schedule": "21:00",
                                "storage": "labshare", "mode": "snapshot", "vmid": "110,111"})]
    assert pve_backup_ops.ensure_job(options(spec, **JOB), check_mode=False)["changed"] is False
    changed = pve_backup_ops.ensure_job(options(spec, **{**JOB, "schedule": "22:30"}), check_mode=False)
    assert changed["diff"]["after"]["schedule"] == "22:30"
    assert world.changes()[-1] == ("pve1", "PUT", "/cluster/backup/nightly", {"schedule": "22:30"})


@pytest.mark.parametrize("given,message", [
    ({"storage": "local-lvm"}, "storage 'local-lvm' does not hold backups"),
    ({"storage": "nas"}, "there is no storage 'nas'"),
    ({"schedule": None}, "give its schedule"),
    ({"vmids": None}, "needs vmids, or all_guests: true"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_job_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str,
                                             check_mode: bool) -> None:
    with pytest.raises(PveError, match=message):
        pve_backup_ops.ensure_job(options(pve_backup_job.ARGUMENT_SPEC, **{**JOB, **given}), check_mode)
    assert world.changes() == []


def test_a_backup_runs_where_the_guest_is_and_names_its_archive(world: FakeCluster) -> None:
    spec = pve_backup.ARGUMENT_SPEC
    preview = pve_backup_ops.run_backup(options(spec, vmid=200, storage="labshare"), check_mode=True)
    assert "would be backed up on node 'pve2'" in preview["msg"] and world.changes() == []
    world.task_log = ["INFO: creating vzdump archive '/mnt/lab-shared/dump/vzdump-lxc-200-x.tar.zst'", "TASK OK"]
    done = pve_backup_ops.run_backup(options(spec, vmid=200, storage="labshare"), check_mode=False)
    assert done["archive"] == "/mnt/lab-shared/dump/vzdump-lxc-200-x.tar.zst"
    assert world.changes() == [("pve1", "POST", "/nodes/pve2/vzdump", {"vmid": 200, "storage": "labshare",
                                                                       "mode": "snapshot", "compress": "zstd"})]
    with pytest.raises(PveError, match="guest 999 does not exist"):
        pve_backup_ops.run_backup(options(spec, vmid=999, storage="labshare"), check_mode=True)


def test_max_age_backs_up_only_when_no_archive_is_that_young(world: FakeCluster) -> None:
    spec, now = pve_backup.ARGUMENT_SPEC, time.time()
    world.archives["labshare"] = [{"volid": "labshare:backup/old.vma.zst", "vmid": 110, "ctime": now - 30 * 3600},
                                  {"volid": "labshare:backup/ct.tar.zst", "vmid": 200, "ctime": now - 60}]
    fresh = pve_backup_ops.run_backup(options(spec, vmid=200, storage="labshare", max_age=25), check_mode=False)
    assert (fresh["changed"], fresh["archive"]) == (False, "labshare:backup/ct.tar.zst") and world.changes() == []
    stale = pve_backup_ops.run_backup(options(spec, vmid=110, storage="labshare", max_age=25), check_mode=True)
    assert stale["changed"] is True and "would be backed up" in stale["msg"]


def test_a_jobs_retention_is_set_once_and_compared_as_pve_answers_it(world: FakeCluster) -> None:
    spec = pve_backup_job.ARGUMENT_SPEC
    job = {**JOB, "prune_backups": {"keep_daily": 7, "keep_last": 2}, "protected": False}
    pve_backup_ops.ensure_job(options(spec, **job), check_mode=False)
    assert world.changes()[-1][3]["prune-backups"] == "keep-daily=7,keep-last=2"
    assert world.changes()[-1][3]["protected"] == "0"
    assert pve_backup_ops.ensure_job(options(spec, **job), check_mode=False)["changed"] is False
    # PVE's GET answers the retention as an object; zero counts alone are PVE's keep-all=1
    assert pve_backup_ops.print_retention({"keep-last": 2, "keep-daily": "7", "keep-weekly": 0}) == \
        "keep-daily=7,keep-last=2"
    assert pve_backup_ops.retention({"keep_last": 0}, "job") == "keep-all=1"


@pytest.mark.parametrize("check_mode", [False, True])
def test_keep_all_beside_a_count_is_refused_before_check_mode(world: FakeCluster, check_mode: bool) -> None:
    job = {**JOB, "prune_backups": {"keep_all": True, "keep_last": 3}}
    with pytest.raises(PveError, match="keep_all cannot be set together with other options"):
        pve_backup_ops.ensure_job(options(pve_backup_job.ARGUMENT_SPEC, **job), check_mode)
    assert world.changes() == []


def test_a_backup_now_passes_its_retention_protection_and_notes(world: FakeCluster) -> None:
    world.task_log = ["INFO: creating vzdump archive '/mnt/lab-shared/dump/vzdump-lxc-200-x.tar.zst'", "TASK OK"]
    given = {"vmid": 200, "storage": "labshare", "prune_backups": {"keep_last": 2}, "protected": True,
             "notes_template": "{{guestname}} before the drill"}
    pve_backup_ops.run_backup(options(pve_backup.ARGUMENT_SPEC, **given), check_mode=False)
    sent = world.changes()[-1][3]
    assert (sent["prune-backups"], sent["protected"], sent["notes-template"]) == \
        ("keep-last=2", 1, "{{guestname}} before the drill")
