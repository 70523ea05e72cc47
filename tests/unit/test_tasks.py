"""Tasks seen from another process: a worker that runs in a CLI tool or pvescheduler is `running`
to the API server until its log ends, and a task whose worker is gone without a last line is not."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pvelab.pve.api import tasks


def test_a_task_of_another_process_is_running_until_its_log_ends(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "TASK_DIR", tmp_path)
    release = threading.Event()
    upid = tasks.start("pve1", "vzdump", "100", "root@pam", lambda log: (log("INFO: working"), release.wait()))
    monkeypatch.setattr(tasks, "RUNNING", {})  # what another process knows of it: nothing
    assert tasks.status(upid)["status"] == "running"
    release.set()
    tasks.wait(upid)
    for _ in range(100):
        if tasks.status(upid).get("exitstatus") == "OK":
            break
        threading.Event().wait(0.01)
    assert tasks.status(upid) == {**tasks.parse_upid(upid), "status": "stopped", "exitstatus": "OK"}


def test_a_task_whose_worker_died_without_a_last_line_is_stopped(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "TASK_DIR", tmp_path)
    upid = tasks.make_upid("pve1", 4_000_000, "qmstart", "100", "root@pam")  # no such thread
    tasks.log_path(upid).parent.mkdir(parents=True, exist_ok=True)
    tasks.log_path(upid).write_text("starting\n")
    assert tasks.status(upid) == {**tasks.parse_upid(upid), "status": "stopped", "exitstatus": "unexpected status"}
