"""Backup jobs: jobs.cfg as PVE writes it, and when a schedule (a PVE calendar event) next fires."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.api import direct, schema
from pvelab.pve.api.routes import ApiException
from pvelab.pve.guests import jobs

JOBS_CFG = """vzdump: backup-3a6d0b6c-7b8e
\tschedule mon..fri 21:00
\tall 1
\tcompress zstd
\tenabled 1
\tmode snapshot
\tstorage local

vzdump: nightly
\tschedule */15
\tvmid 100,101
\tenabled 0
"""


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").timestamp()


def test_jobs_cfg_reads_and_writes_back_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "JOBS_CFG", tmp_path / "jobs.cfg")
    jobs.JOBS_CFG.write_text(JOBS_CFG)
    read = jobs.read()
    assert list(read) == ["backup-3a6d0b6c-7b8e", "nightly"]
    assert read["nightly"] == {"type": "vzdump", "schedule": "*/15", "vmid": "100,101", "enabled": "0"}
    assert jobs.dump(read) == JOBS_CFG


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("21:00", "2026-11-27 15:06", "2026-11-27 21:00"),          # a Friday
    ("mon..fri 21:00", "2026-11-27 21:00", "2026-11-30 21:00"),  # past Friday's: Monday
    ("sat,sun 0/6:00", "2026-11-27 15:06", "2026-11-28 00:00"),
    ("*/15", "2026-11-27 15:06", "2026-11-27 15:15"),
    ("hourly", "2026-11-27 15:06", "2026-11-27 16:00"),
    ("weekly", "2026-11-27 15:06", "2026-11-30 00:00"),
    ("minutely", "2026-11-27 15:06", "2026-11-27 15:07"),
])
def test_next_run_of_a_schedule(schedule: str, after: str, expected: str) -> None:
    assert jobs.next_event(schedule, at(after)) == at(expected)


@pytest.mark.parametrize("schedule", ["25:00", "someday 10:00", "10:00 11:00", "*/x"])
def test_a_schedule_pve_would_not_parse_is_refused(schedule: str) -> None:
    with pytest.raises(jobs.CalendarError):
        jobs.parse_schedule(schedule)


@pytest.mark.parametrize(("options", "backed_up"), [
    ("\tall 1\n", "100,200"),                  # all=1: the node's VMs and containers
    ("\tall 1\n\texclude 100\n", "200"),
    ("\texclude 100\n", "200"),                # an exclude list alone means all the others
    ("\tvmid 200,300\n", "200"),               # 300 is another node's guest
    ("\tvmid 100,200\n\texclude 200\n", "100,200"),  # exclude goes with all: beside vmid PVE ignores it
])
def test_a_due_job_backs_up_the_nodes_vms_and_containers(options: str, backed_up: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "JOBS_CFG", tmp_path / "jobs.cfg")
    monkeypatch.setattr(jobs, "STATE_DIR", tmp_path / "state")
    jobs.JOBS_CFG.write_text(f"vzdump: nightly\n\tschedule 21:00\n{options}\tstorage local\n\tmode snapshot\n")
    guests = {"qemu": {100: None}, "lxc": {200: None}}  # the node's VM and container
    monkeypatch.setattr(jobs.store, "guests_on", lambda node, kind="qemu": guests[kind])
    monkeypatch.setattr(jobs.store, "vmlist", lambda: {100: {"node": "pve1", "type": "qemu"},  # the cluster's list
                                                       200: {"node": "pve1", "type": "lxc"},
                                                       300: {"node": "pve2", "type": "qemu"}})
    calls: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(jobs.direct, "call", lambda method, path, params: calls.append((method, path, params)) or "U")
    assert jobs.run_due("pve1", int(at("2026-11-27 21:00"))) == ["U"]
    assert calls == [("POST", "/nodes/pve1/vzdump", {"mode": "snapshot", "storage": "local", "vmid": backed_up})]


def test_a_jobs_retention_is_kept_as_a_string_and_answered_as_pves_object(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "JOBS_CFG", tmp_path / "jobs.cfg")
    monkeypatch.setattr(direct.version, "major", lambda: "9")
    direct.call("POST", "/cluster/backup", {"id": "keep2", "schedule": "21:00", "vmid": "110", "storage": "local",
                                            "prune-backups": "keep-last=2,keep-daily=7"})
    assert "\tprune-backups keep-last=2,keep-daily=7\n" in jobs.JOBS_CFG.read_text()
    job = direct.call("GET", "/cluster/backup/keep2", {})
    assert job["prune-backups"] == {"keep-last": 2, "keep-daily": 7}
    returns = schema.endpoints("9")["GET /cluster/backup/{id}"].info["returns"]
    assert schema.returns_problems(returns, job) == []
    before = jobs.JOBS_CFG.read_text()
    with pytest.raises(ApiException) as refused:
        direct.call("PUT", "/cluster/backup/keep2", {"prune-backups": "keep-all=1,keep-last=1"})
    assert refused.value.errors == {"prune-backups": "keep-all cannot be set together with other options."}
    assert jobs.JOBS_CFG.read_text() == before


def test_vzdump_refuses_a_backup_beyond_its_limits_as_pve(node_sandbox: Any) -> None:
    """With --remove 0 the policy's total is a limit; with --protected 1 the storage's protected limit."""
    from pvelab.pve.guests import backup
    from pvelab.pve.guests.store import GuestError

    root = node_sandbox("dir: bak\n\tpath {root}/bak\n\tcontent backup\n\n")
    dump = root / "bak" / "dump"
    dump.mkdir(parents=True)
    for n, stamp in enumerate(("2026_11_01-10_00_00", "2026_11_02-10_00_00")):
        (dump / f"vzdump-qemu-100-{stamp}.vma.zst").write_bytes(b"x")
        if n == 0:
            (dump / f"vzdump-qemu-100-{stamp}.vma.zst.protected").write_text("")
    policy = {"storage": "bak", "prune-backups": "keep-last=1", "remove": 0}
    with pytest.raises(GuestError, match=r"^There is a max backup limit of 1 enforced by the target storage or the "
                                         r"vzdump parameters\. Either increase the limit or delete old backups\.$"):
        backup.check_backup_limits(policy, 100, "qemu")
    backup.check_backup_limits({**policy, "prune-backups": "keep-last=2"}, 100, "qemu")  # one unprotected: room
    backup.check_backup_limits({**policy, "remove": 1}, 100, "qemu")  # pruning makes room
    with pytest.raises(GuestError, match="^The number of protected backups per guest is limited to 1 on "
                                         "storage 'bak'$"):
        backup.check_backup_limits({"storage": "bak", "protected": 1, "max-protected-backups": 1}, 100, "qemu")
    backup.check_backup_limits({"storage": "bak", "protected": 1, "max-protected-backups": -1}, 100, "qemu")
    backup.check_backup_limits({"storage": "bak", "protected": 1, "max-protected-backups": 1}, 101, "qemu")
