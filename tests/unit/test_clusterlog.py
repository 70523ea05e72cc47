"""The cluster log as pmxcfs keeps it: each node's entries multicast and merged once, newest first, a
bounded ring, a user's own entries for callers without Sys.Syslog; and /cluster/log's answer. The lab
suite reads it from a cluster, where one node's tasks show on every node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.access import guard
from pvelab.pve.api import schema
from pvelab.pve.api.routes import Caller, Context, handler_for
from pvelab.pve.cluster import clusterlog
from pvelab.pve.cluster.clusterlog import ClusterLog


class Wire:
    """CPG between a few ClusterLogs: every multicast delivered to all, the sender included."""

    def __init__(self) -> None:
        self.logs: list[ClusterLog] = []

    def join(self, node: str) -> ClusterLog:
        log = ClusterLog(node, self.deliver)
        self.logs.append(log)
        return log

    def deliver(self, payload: bytes) -> None:
        for log in self.logs:
            log.on_message(json.loads(payload))


def test_every_node_shows_every_nodes_entries_newest_first() -> None:
    wire = Wire()
    pve1, pve2 = wire.join("pve1"), wire.join("pve2")
    pve1.add(6, "pvedaemon", 11, "root@pam", "starting task UPID:pve1:1", when=100)
    pve2.add(3, "qm", 22, "student@pve", "end task UPID:pve2:2 boom", when=101)
    pve1.add(6, "pvedaemon", 11, "root@pam", "successful auth for user 'student@pve' äh", when=102)
    for log in (pve1, pve2):
        assert [e["msg"] for e in log.dump()] == ["successful auth for user 'student@pve' \\u00e4h",
                                                  "end task UPID:pve2:2 boom", "starting task UPID:pve1:1"]
    assert [e["uid"] for e in clusterlog.pick(pve2.dump(), user="root@pam")] == [2, 1]
    assert len(clusterlog.pick(pve1.dump(), limit=1)) == 1


def test_members_meeting_merge_their_logs_once() -> None:
    wire = Wire()
    pve1 = wire.join("pve1")
    pve1.add(6, "pvedaemon", 1, "root@pam", "before pve3 joined", when=50)
    pve3 = ClusterLog("pve3", wire.deliver)
    pve3.add(6, "pvedaemon", 1, "root@pam", "alone on pve3", when=60)  # not yet on the wire
    wire.logs.append(pve3)
    for log in (pve1, pve3):  # membership changed: each multicasts its whole log
        wire.deliver(log.snapshot())
    wire.deliver(pve1.snapshot())  # and again: nothing is counted twice
    assert [e["msg"] for e in pve1.dump()] == [e["msg"] for e in pve3.dump()] == ["alone on pve3",
                                                                                  "before pve3 joined"]


def test_the_ring_keeps_pmxcfss_size() -> None:
    log = ClusterLog("pve1")
    for n in range(3000):
        log.add(6, "pvedaemon", 1, "root@pam", f"entry {n}", when=n)
    kept = log.dump()
    assert kept[0]["msg"] == "entry 2999"
    assert sum(clusterlog.entry_size(e) for e in kept) <= clusterlog.MAX_BYTES < sum(
        clusterlog.entry_size(e) for e in kept) + 200


def test_the_api_answers_all_to_sys_syslog_and_own_entries_to_others(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    log = ClusterLog("pve1")
    for n, user in enumerate(("root@pam", "student@pve", "root@pam")):
        log.add(6, "pvedaemon", 7, user, f"message {n}", when=n)
    file = tmp_path / ".clusterlog"
    file.write_bytes(log.virtual_file())
    monkeypatch.setattr(clusterlog, "LOG_FILE", file)
    monkeypatch.setattr(guard, "allowed", lambda who, path, privs: who == "root@pam")

    def call(user: str, **params: Any) -> Any:
        found = schema.match("9", "GET", "/cluster/log")
        assert found is not None
        answer = handler_for("GET", "/cluster/log", "/cluster/log")(Context(Caller(user), "pve1"),
                                                                    schema.verify(found[0], params))
        assert schema.returns_problems(found[0].info["returns"], answer) == []
        return answer

    everything = call("root@pam")
    assert [(e["msg"], e["id"]) for e in everything] == [("message 2", "3:pve1"), ("message 1", "2:pve1"),
                                                         ("message 0", "1:pve1")]
    assert set(everything[0]) == {"uid", "time", "pri", "tag", "pid", "node", "user", "msg", "id"}
    assert [e["msg"] for e in call("student@pve")] == ["message 1"]
    assert len(call("root@pam", max="1")) == 1


def test_logging_without_pmxcfs_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With pmxcfs down /etc/pve is a plain directory: a log entry must not create a file there (it would
    stand in the way of the next mount)."""
    monkeypatch.setattr(clusterlog, "LOG_FILE", tmp_path / ".clusterlog")
    clusterlog.log_msg("info", "root@pam", "starting task UPID:pve1:x")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".clusterlog").write_bytes(b"")  # a stand-in for pmxcfs's file: the entry is written to it
    clusterlog.log_msg("err", "root@pam", "end task UPID:pve1:x boom")
    written = json.loads((tmp_path / ".clusterlog").read_bytes())
    assert (written["pri"], written["user"], written["msg"]) == (3, "root@pam", "end task UPID:pve1:x boom")
