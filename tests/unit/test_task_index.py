"""GET /nodes/{node}/tasks filters as pve-manager's node_tasks does: user (a substring, any case), type,
VMID, start time, status (ok, warning, error, unknown; `errors` for all but ok), `start` and `limit`;
one's own tasks only without Sys.Audit on the node."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pvelab.pve.api import tasks
from pvelab.pve.cluster import api as cluster_api

TASKS = [  # newest first, as tasks.recent gives them
    {"upid": "u6", "type": "qmstart", "id": "101", "user": "root@pam", "starttime": 600, "status": "running"},
    {"upid": "u5", "type": "qmrollback", "id": "101", "user": "root@pam", "starttime": 500, "status": "stopped",
     "exitstatus": "OK"},
    {"upid": "u4", "type": "qmrollback", "id": "102", "user": "student@pve", "starttime": 400, "status": "stopped",
     "exitstatus": "WARNINGS: 2"},
    {"upid": "u3", "type": "vzdump", "id": "", "user": "root@pam", "starttime": 300, "status": "stopped",
     "exitstatus": "job failed"},
    {"upid": "u2", "type": "srvreload", "id": "networking", "user": "root@pam", "starttime": 200,
     "status": "stopped", "exitstatus": "unexpected status"},
    {"upid": "u1", "type": "qmstart", "id": "102", "user": "Student@pve", "starttime": 100, "status": "stopped",
     "exitstatus": "OK"},
]


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(tasks, "recent", lambda node, limit=50: list(TASKS)[:limit])

    def run(caller: str = "root@pam", auditor: bool = True, **params: Any) -> list[str]:
        monkeypatch.setattr(cluster_api.access, "allowed", lambda user, path, privs: auditor)
        ctx = SimpleNamespace(node="pve1", caller=SimpleNamespace(name=caller))
        return [t["upid"] for t in cluster_api.task_index(ctx, params)]  # type: ignore[arg-type]
    return run


def test_each_filter_picks_what_pve_picks(index: Any) -> None:
    assert index() == ["u6", "u5", "u4", "u3", "u2", "u1"]
    assert index(typefilter="qmrollback") == ["u5", "u4"]
    assert index(vmid=102) == ["u4", "u1"]
    assert index(userfilter="STUDENT") == ["u4", "u1"]  # a substring, any case
    assert index(since=200, until=400) == ["u4", "u3", "u2"]
    assert index(statusfilter="ok") == ["u5", "u1"]
    assert index(statusfilter="warning,unknown") == ["u4", "u2"]
    assert index(errors=1) == ["u4", "u3", "u2"]
    assert index(start=1, limit=2) == ["u5", "u4"]


def test_without_sys_audit_only_ones_own_tasks(index: Any) -> None:
    assert index(caller="student@pve", auditor=False) == ["u4"]


def test_the_status_types_are_pves() -> None:
    assert [tasks.status_type(t) for t in TASKS] == ["running", "ok", "warning", "error", "unknown", "ok"]
