"""The grader against fake clusters: rubric and roster refusals (with the line or student that is
wrong), scoring (full, partial, blocked, version-guarded, unreachable, a broken probe), the outputs
agreeing with each other, the signed manifest catching an edit, and one dead cluster not slowing
the others."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from pvelab.grade import probes
from pvelab.grade.access import ClusterAccess, Unreachable
from pvelab.grade.engine import GradeOptions, StudentResult, grade_class, shared_identities
from pvelab.grade.report import verify_manifest, write_run
from pvelab.grade.roster import NodeAddress, RosterError, Student, load_roster
from pvelab.grade.rubric import RubricError, load_rubric
from pvelab.pve.apiclient import ApiError
from tests.grade_outputs import assert_outputs_agree, browser_flags

# corosync-cfgtool -s of a node with two links to two peers (the format of corosync 3's output)
CFGTOOL = ("Local node ID 1, transport knet\nLINK ID 0 udp\n\taddr\t= 198.18.0.11\n\tstatus:\n"
           "\t\tnodeid:          1:\tlocalhost\n\t\tnodeid:          2:\tconnected\n"
           "\t\tnodeid:          3:\tconnected\nLINK ID 1 udp\n\taddr\t= 198.18.1.11\n\tstatus:\n"
           "\t\tnodeid:          1:\tlocalhost\n\t\tnodeid:          2:\tconnected\n"
           "\t\tnodeid:          3:\tconnected\n")

RUBRIC = """\
rubric: course-lab
defaults: {timeout_s: 2}
checks:
  - id: access.api
    title: The grader reaches every node
    points: 0
  - id: cluster.name
    title: The cluster has the planned name
    points: 2
    requires: [access.api]
    hint: pvecm create NAME
  - id: cluster.nodes_online
    title: Three nodes online
    points: 6
    requires: [access.api]
    instructor_note: 2 points per node
  - id: corosync.links
    title: Two links per node, connected
    points: 6
    requires: [cluster.name]
  - id: ha.placement
    title: web guests placed on pve1, pve2
    points: 3
    pve: ">=9"
    params: {sids: ["vm:110"], nodes: [pve1, pve2]}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rubric(tmp_path: Path, text: str = RUBRIC) -> Any:
    return load_rubric(write(tmp_path, "rubric.yml", text), probes.known)


@pytest.mark.parametrize("change,message", [
    (("    points: 6\n    requires: [access.api]\n    instructor_note", "    points: six\n    requires: [access.api]\n"
      "    instructor_note"), r"rubric.yml:14: 'cluster.nodes_online' has points 'six'"),
    (("- id: corosync.links", "- id: corosync.linkz"), r"rubric.yml:17: 'corosync.linkz' uses probe 'corosync.linkz'"),
    (("requires: [cluster.name]", "requires: [cluster.nam]"), r"rubric.yml:20: .*requires 'cluster.nam', which is"),
    (("- id: cluster.name\n", "- id: cluster.name\n    colour: red\n"), r"rubric.yml:7: unknown keys .*colour"),
    (("- id: ha.placement", "- id: cluster.name"), r"rubric.yml:21: check id 'cluster.name' is used twice"),
    (("pve: \">=9\"", "pve: nine"), r"rubric.yml:24: 'ha.placement' has pve 'nine'"),
])
def test_a_bad_rubric_is_refused_with_its_line(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in RUBRIC
    with pytest.raises(RubricError, match=message):
        rubric(tmp_path, RUBRIC.replace(*change, 1))


def test_a_cycle_in_requires_is_refused(tmp_path: Path) -> None:
    text = RUBRIC.replace("    points: 0\n", "    points: 0\n    requires: [corosync.links]\n", 1)
    with pytest.raises(RubricError, match=r"rubric.yml:4: 'requires' makes a cycle: access.api -> corosync.links -> "
                                          r"cluster.name -> access.api"):
        rubric(tmp_path, text)


ROSTER = """\
defaults: {api_user: grader@pve, api_password: pw}
students:
  - id: s1
    name: Ada
    nodes: [{name: pve1, address: 10.0.1.1, bmc: 10.0.9.1}, {name: pve2, address: 10.0.1.2},
            {name: pve3, address: 10.0.1.3}]
    params: {cluster_name: lab-s1}
  - id: s2
    nodes: [{name: pve1, address: 10.0.2.1}, {name: pve2, address: 10.0.2.2}, {name: pve3, address: 10.0.2.3}]
    params: {cluster_name: lab-s2}
  - id: s3
    nodes: [{name: pve1, address: 10.0.3.1}, {name: pve2, address: 10.0.3.2}, {name: pve3, address: 10.0.3.3}]
    params: {cluster_name: lab-s3}
"""


@pytest.mark.parametrize("change,message", [
    (("- id: s2", "- id: s1"), "student 's1' is listed twice"),
    (("address: 10.0.2.2}", "address: 10.0.1.2}"), "address 10.0.1.2 is given to both 's1' and 's2'"),
    (("defaults: {api_user: grader@pve, api_password: pw}", "defaults: {api_user: grader@pve}"),
     "student #1 .*'s1'.* has no API credentials"),
])
def test_a_bad_roster_is_refused(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(RosterError, match=message):
        load_roster(write(tmp_path, "class.yml", ROSTER.replace(*change, 1)))


# -- fake clusters ---------------------------------------------------------------------------------
class FakeNode:
    def __init__(self, cluster: FakeCluster, node: str) -> None:
        self.cluster, self.node = cluster, node

    def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        if self.node in self.cluster.down or self.cluster.hang:
            time.sleep(self.cluster.hang)
            raise ApiError(595, f"Connection refused or host unreachable: {self.node}")
        return self.cluster.api[path]  # query parameters do not matter to these fakes


class FakeCluster:
    """A cluster's API answers and SSH outputs; nodes in `down` do not answer."""

    def __init__(self, name: str, online: int = 3, links_ok: bool = True, major: int = 9, hang: float = 0) -> None:
        self.down: set[str] = set()
        self.hang = hang
        nodes = [{"type": "node", "name": f"pve{i}", "online": int(i <= online)} for i in (1, 2, 3)]
        self.api: dict[str, Any] = {
            "/version": {"version": f"{major}.1.1"},
            "/cluster/status": [{"type": "cluster", "name": name, "quorate": 1}, *nodes],
            "/cluster/ha/rules": [{"rule": "web", "type": "node-affinity", "resources": "vm:110",
                                   "nodes": "pve1:2,pve2"}],
        }
        self.cfgtool = CFGTOOL if links_ok else CFGTOOL.replace("\tconnected", "\tdisconnected", 1)

    def ssh(self, address: str, command: str, timeout: float) -> tuple[int, str, str]:
        assert command == "corosync-cfgtool -s"
        if f"pve{address.rsplit('.', 1)[1]}" in self.down:
            return 255, "", f"ssh: connect to host {address} port 22: No route to host\n"
        return 0, self.cfgtool if address.endswith(".1") else CFGTOOL, ""  # a link down on the first node


def access_to(clusters: dict[str, FakeCluster]) -> Any:
    def factory(student: Student, timeout: float) -> ClusterAccess:
        cluster = clusters[student.id]
        return ClusterAccess(student, timeout, api_client=lambda node: FakeNode(cluster, node),
                             ssh_runner=cluster.ssh)
    return factory


@pytest.fixture
def graded(tmp_path: Path) -> tuple[Any, list[Any]]:
    rules = rubric(tmp_path)
    students = load_roster(write(tmp_path, "class.yml", ROSTER))
    clusters = {"s1": FakeCluster("lab-s1"), "s2": FakeCluster("wrong", online=2, links_ok=False, major=8),
                "s3": FakeCluster("lab-s3")}
    clusters["s3"].down = {"pve1", "pve2", "pve3"}
    return rules, grade_class(students, rules, GradeOptions(), access_to(clusters))


def table(results: list[Any]) -> dict[str, dict[str, tuple[str, float]]]:
    return {r.student.id: {c.check.id: (c.status, c.score) for c in r.checks} for r in results}


def test_each_check_scores_what_the_cluster_shows(graded: tuple[Any, list[Any]]) -> None:
    _, results = graded
    got = table(results)
    assert got["s1"] == {"access.api": ("passed", 0), "cluster.name": ("passed", 2), "cluster.nodes_online":
                         ("passed", 6), "corosync.links": ("passed", 6), "ha.placement": ("passed", 3)}
    assert got["s2"]["cluster.name"] == ("failed", 0)
    assert got["s2"]["cluster.nodes_online"] == ("partial", 4)  # 2 of 3 nodes online
    assert got["s2"]["corosync.links"] == ("blocked", 0)  # requires cluster.name
    assert got["s2"]["ha.placement"][0] == "skipped"  # pve >=9 on a PVE 8 cluster
    assert {status for status, _ in got["s3"].values()} == {"unreachable"}  # not "wrong"
    assert [r.score for r in results] == [17, 4, 0] and results[0].max_score == 17
    failed_name = next(c for c in results[1].checks if c.check.id == "cluster.name")
    assert "called 'wrong', the lab asks for 'lab-s2'" in failed_name.message


def test_a_link_down_costs_that_nodes_share(tmp_path: Path) -> None:
    rules = rubric(tmp_path)
    student = load_roster(write(tmp_path, "class.yml", ROSTER))[0]
    results = grade_class([student], rules, GradeOptions(), access_to({"s1": FakeCluster("lab-s1", links_ok=False)}))
    links = next(c for c in results[0].checks if c.check.id == "corosync.links")
    assert links.status == "partial" and links.score == 4 and "disconnected" in links.message


def test_one_node_down_costs_its_share_and_blocks_nothing(tmp_path: Path) -> None:
    """access.api is partial; what requires it still runs (partial meets `requires`); a per-node check
    fails that node's item, not the whole check (unreachable is for a cluster that does not answer)."""
    rules = rubric(tmp_path)
    student = load_roster(write(tmp_path, "class.yml", ROSTER))[0]
    cluster = FakeCluster("lab-s1", online=2)
    cluster.down = {"pve3"}
    result = grade_class([student], rules, GradeOptions(), access_to({"s1": cluster}))[0]
    got = table([result])["s1"]
    assert got == {"access.api": ("partial", 0), "cluster.name": ("passed", 2), "cluster.nodes_online": ("partial", 4),
                   "corosync.links": ("partial", 4), "ha.placement": ("passed", 3)}
    links = next(c for c in result.checks if c.check.id == "corosync.links")
    assert "pve3 did not answer the grader" in links.message and result.reachable


def test_a_node_that_does_not_connect_costs_one_timeout_per_channel(tmp_path: Path) -> None:
    """A node that is off is asked once per channel (API, SSH); later checks skip it at once, so a
    cluster with two nodes off is graded in a few timeouts, not a few per check. A proxied 595 (the
    node answered, the node behind it did not) does not silence the node that answered."""
    student = load_roster(write(tmp_path, "class.yml", ROSTER))[0]
    calls: list[str] = []

    class Silent:
        def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
            calls.append(f"api {path}")
            if path == "/proxied":
                raise ApiError(595, "no route to pve3 (from pve1's proxy)")
            raise ApiError(595, "Connection refused or host unreachable") from OSError("No route to host")

    def ssh(address: str, command: str, timeout: float) -> tuple[int, str, str]:
        calls.append(f"ssh {address}")
        return 255, "", f"ssh: connect to host {address} port 22: No route to host\n"

    cx = ClusterAccess(student, 1, api_client=lambda node: Silent(), ssh_runner=ssh)
    for _ in range(3):
        with pytest.raises(Unreachable):
            cx.ssh("pve3", "corosync-cfgtool -s")
        with pytest.raises(Unreachable):
            cx.api("/version", node="pve3")
        with pytest.raises(Unreachable):
            cx.api("/proxied", node="pve1")
    assert calls == ["ssh 10.0.1.3", "api /version", "api /proxied", "api /proxied", "api /proxied"]


def test_a_broken_probe_is_an_error_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(cx: ClusterAccess, params: dict[str, Any]) -> probes.Outcome:
        raise KeyError("surprise")
    monkeypatch.setitem(probes.PROBES, "cluster.name", broken)
    rules = rubric(tmp_path)
    student = load_roster(write(tmp_path, "class.yml", ROSTER))[0]
    result = grade_class([student], rules, GradeOptions(), access_to({"s1": FakeCluster("lab-s1")}))[0]
    assert table([result])["s1"]["cluster.name"] == ("error", 0) and result.checks[1].message == "KeyError: 'surprise'"
    assert table([result])["s1"]["corosync.links"] == ("blocked", 0)


def test_one_hanging_cluster_does_not_delay_the_others(tmp_path: Path) -> None:
    rules = rubric(tmp_path)
    students = load_roster(write(tmp_path, "class.yml", ROSTER))
    clusters = {"s1": FakeCluster("lab-s1"), "s2": FakeCluster("lab-s2"), "s3": FakeCluster("lab-s3", hang=1.5)}
    started = time.monotonic()
    results = grade_class(students, rules, GradeOptions(), access_to(clusters))
    took = time.monotonic() - started
    assert [r.reachable for r in results] == [True, True, False]
    assert results[0].seconds < 1.0 and results[1].seconds < 1.0  # not waiting for s3
    assert took < 3 * 1.5 + 1  # s3: one try per node, each its own timeout, then every check unreachable at once


def test_two_students_on_one_cluster_are_caught() -> None:
    """A certificate is one cluster's, so sharing it is caught always; a cluster name only when the
    students were given different names (a class that all use edu-cloud shares it innocently)."""
    def result(sid: str, planned: str, certs: dict[str, str], name: str) -> Any:
        student = Student(sid, (), params={"cluster_name": planned})
        return StudentResult(student, [], 0.0, 0.0, True, 9, certs, [], {"cluster name": name})

    results = [result("s1", "lab-s1", {"pve1": "AA:01"}, "lab-s1"), result("s2", "lab-s2", {"pve1": "AA:02"}, "lab-s1"),
               result("s3", "lab-s3", {"pve1": "AA:01", "pve2": "AA:03"}, "lab-s3")]
    assert [(s.kind, s.value, s.students) for s in shared_identities(results)] == [
        ("certificate", "AA:01", ("s1", "s3")), ("cluster name", "lab-s1", ("s1", "s2"))]
    same_plan = [result("s1", "edu-cloud", {"pve1": "1"}, "edu-cloud"), result("s2", "edu-cloud", {"pve1": "2"},
                                                                                 "edu-cloud")]
    assert shared_identities(same_plan) == []


def test_each_check_waits_its_own_timeout(tmp_path: Path) -> None:
    """timeout_s is per check: a slow check may wait longer without making every request wait as long."""
    rules = rubric(tmp_path, RUBRIC.replace("    requires: [cluster.name]\n", "    requires: [cluster.name]\n"
                                                                       "    timeout_s: 1\n"))
    student = load_roster(write(tmp_path, "class.yml", ROSTER))[0]
    cluster, seen = FakeCluster("lab-s1"), []

    def ssh(address: str, command: str, timeout: float) -> tuple[int, str, str]:
        seen.append(timeout)
        return cluster.ssh(address, command, timeout)

    def factory(s: Student, timeout: float) -> ClusterAccess:
        return ClusterAccess(s, timeout, api_client=lambda node: FakeNode(cluster, node), ssh_runner=ssh)

    result = grade_class([student], rules, GradeOptions(), factory)[0]
    assert table([result])["s1"]["corosync.links"] == ("passed", 6) and seen == [1, 1, 1]  # not the rubric's 2
    seen.clear()
    grade_class([student], rules, GradeOptions(timeout=3), factory)
    assert seen == [3, 3, 3]  # --timeout overrides every check's


def test_the_outputs_agree_and_the_signed_manifest_catches_an_edit(tmp_path: Path,
                                                                   graded: tuple[Any, list[Any]]) -> None:
    rules, results = graded
    out = write_run(tmp_path / "run", results, rules, key=b"instructor secret")
    scores = {r.student.id: r.score for r in results}
    gradescope = {s: json.loads((out / "students" / s / "results.json").read_text()) for s in scores}
    assert {s: g["score"] for s, g in gradescope.items()} == scores
    assert all(sum(t["score"] for t in g["tests"]) == g["score"] for g in gradescope.values())
    book = {row["student_id"]: float(row["score"]) for row in csv.DictReader(io.StringIO(
        (out / "gradebook.csv").read_text()))}
    assert book == scores
    suites = ElementTree.parse(out / "junit.xml").getroot()
    junit_scores = {s.get("name"): float(s.find("properties/property[@name='score']").get("value"))  # type: ignore[union-attr]
                    for s in suites}
    assert junit_scores == scores
    assert suites.find("testsuite[@name='s3']").get("errors") == "5"  # type: ignore[union-attr]
    page = (out / "report.html").read_text()
    for student, score in scores.items():
        assert f'id="row-{student}"><th><a href="#student-{student}">{student}</a></th><td class="total" ' \
               f'data-score="{score:g}"' in page
    assert verify_manifest(out, b"instructor secret") == []
    (out / "gradebook.csv").write_text((out / "gradebook.csv").read_text().replace(",4,", ",14,"))
    assert verify_manifest(out, b"instructor secret") == ["gradebook.csv: changed since the run"]
    assert "signature does not match" in verify_manifest(out, b"another key")[0]


def test_a_failed_write_leaves_the_previous_run_whole(tmp_path: Path, graded: tuple[Any, list[Any]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rules, results = graded
    out = write_run(tmp_path / "run", results, rules)
    before = sorted(p.name for p in out.rglob("*"))
    monkeypatch.setattr("pvelab.grade.report.junit", lambda _results: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_run(tmp_path / "run", results, rules)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run-")] == []


def test_the_shipped_course_rubric_loads_with_every_probe_known() -> None:
    from pvelab.grade.cli import DEFAULT_RUBRIC

    shipped = load_rubric(DEFAULT_RUBRIC, probes.known)
    assert shipped.max_points == sum(c.points for c in shipped.checks) > 0
    assert {c.probe for c in shipped.checks} <= set(probes.PROBES)


def test_the_cli_refuses_a_bad_rubric_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pvelab.cli import main

    bad = write(tmp_path, "rubric.yml", RUBRIC.replace("points: 6", "points: 2.5", 1))
    roster = write(tmp_path, "class.yml", ROSTER)
    assert main(["grade", "--rubric", str(bad), "--roster", str(roster), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvelab: error: ") and "rubric.yml:14: 'cluster.nodes_online' has points 2.5" in err
    assert not (tmp_path / "out").exists()  # nothing written


def one_node_access(api: dict[str, Any], ipmi: Any = None) -> ClusterAccess:
    student = Student("s1", (probes_node("pve1", "10.0.1.1", "10.0.9.1"),), access={"bmc_password": "pw"})
    cluster = FakeCluster("lab-s1")
    cluster.api.update(api)
    return ClusterAccess(student, 2, api_client=lambda node: FakeNode(cluster, node), ipmi_runner=ipmi)


def probes_node(name: str, address: str, bmc: str) -> Any:
    from pvelab.grade.roster import NodeAddress

    return NodeAddress(name, address, bmc)


def test_placement_is_judged_by_priority_failback_and_who_is_online() -> None:
    placements = [{"name": "prefer-pve1", "nodes": ["pve1:2", "pve2:1"], "resources": ["vm:110"]},
                  {"name": "sticky", "nodes": ["pve1:2", "pve2:1"], "resources": ["vm:111"], "failback": False}]
    status = {"manager_status": {"master_node": "pve3", "node_status": {"pve1": "online", "pve2": "online"},
                                 "service_status": {"vm:110": {"state": "started", "node": "pve2"},
                                                    "vm:111": {"state": "started", "node": "pve2"}}}}
    outcome = probes.PROBES["ha.placement_respected"](one_node_access({"/cluster/ha/status/manager_status": status}),
                                                      {"placements": placements})
    assert (outcome.passed, outcome.total) == (1, 2)  # vm:111 may stay on pve2 (no failback), vm:110 may not
    assert outcome.problems == ["HA resource vm:110 runs on pve2, but its placement 'prefer-pve1' (pve1:2, pve2:1) "
                                "puts it on pve1 - is the HA manager still moving it (ha-manager status)?"]
    status["manager_status"]["node_status"]["pve1"] = "unknown"  # pve1 lost: pve2 is the best online node
    assert probes.PROBES["ha.placement_respected"](one_node_access({"/cluster/ha/status/manager_status": status}),
                                                   {"placements": placements}).ok


def test_bmc_and_backup_probes_read_what_they_are_shown() -> None:
    calls: list[tuple[list[str], str]] = []

    def ipmi(argv: list[str], password: str, timeout: float) -> tuple[int, str, str]:
        calls.append((argv, password))
        return 0, "System Power         : on\n", ""
    cx = one_node_access({"/nodes/pve1/storage/labshare/content": [
        {"volid": "labshare:backup/a.vma.zst", "vmid": 110, "ctime": time.time() - 3600},
        {"volid": "labshare:backup/b.vma.zst", "vmid": 111, "ctime": time.time() - 30 * 3600}]}, ipmi)
    assert probes.PROBES["fencing.bmc"](cx, {}).ok
    assert "10.0.9.1" in calls[0][0] and "pw" not in calls[0][0] and calls[0][1] == "pw"  # password not in argv
    backups = probes.PROBES["backup.recent"](cx, {"storage": "labshare", "vmids": [110, 111, 112]})
    assert (backups.passed, backups.total) == (1, 3)
    assert "guest 111 on 'labshare' is 30 h old" in backups.problems[0]
    assert "guest 112 has no backup" in backups.problems[1]


def test_the_replication_probe_reads_each_jobs_state_through_any_node() -> None:
    now = time.time()
    answers = {"/cluster/replication": [{"id": "113-0", "guest": 113, "target": "pve2"},
                                        {"id": "114-0", "guest": 114, "target": "pve1", "disable": 1},
                                        {"id": "115-0", "guest": 115, "target": "pve1"}],
               "/cluster/resources": [{"vmid": 113, "node": "pve1"}, {"vmid": 114, "node": "pve2"},
                                      {"vmid": 115, "node": "pve3"}, {"vmid": 116, "node": "pve1"}],
               "/nodes/pve1/replication/113-0/status": {"last_sync": now - 30, "fail_count": 0},
               "/nodes/pve3/replication/115-0/status": {"last_sync": now - 3600, "fail_count": 2,
                                                         "error": "command 'ssh ...' failed: exit code 255"}}
    outcome = probes.PROBES["replication.synced"](one_node_access(answers), {"jobs": [
        {"vmid": 113, "target": "pve2"}, {"vmid": 114, "target": "pve1"}, {"vmid": 115, "target": "pve1"},
        {"vmid": 116, "target": "pve2"}]})
    assert (outcome.passed, outcome.total) == (1, 4)
    assert "114-0 is disabled: pvesr enable 114-0" in outcome.problems[0]
    assert "115-0 fails on pve3 (2 times: command 'ssh ...' failed: exit code 255)" in outcome.problems[1]
    assert "guest 116 has no replication job to pve2: add one" in outcome.problems[2]
    # HA recovered 113 on pve2, its target: the job that now runs back to pve1 is the one that counts
    answers["/cluster/resources"][0]["node"] = "pve2"
    answers["/cluster/replication"][0]["target"] = "pve1"
    answers["/nodes/pve2/replication/113-0/status"] = {"last_sync": now - 10, "fail_count": 0}
    assert probes.PROBES["replication.synced"](one_node_access(answers), {"jobs": [
        {"vmid": 113, "target": "pve2"}]}).ok


def test_the_html_report_renders_in_a_browser_with_the_same_numbers_as_the_other_outputs(
        tmp_path: Path, graded: tuple[Any, list[Any]]) -> None:
    rules, results = graded
    out = write_run(tmp_path / "run", results, rules)
    table = assert_outputs_agree(out, tmp_path / "profile")
    assert {s: total for s, (total, _) in table.items()} == {r.student.id: r.score for r in results}
    shot = tmp_path / "report.png"
    subprocess.run([*browser_flags(tmp_path / "profile"), f"--screenshot={shot}", "--window-size=1200,900",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000  # drew a page, not nothing


def test_the_failover_drill_powers_off_times_the_recovery_and_powers_on_again(tmp_path: Path) -> None:
    text = ("checks:\n  - {id: drill.failover, title: HA recovers a node loss, points: 10, destructive: true,\n"
            "     thresholds_s: {full: 0.5, half: 5}, params: {poll_s: 0.05, timeout_s: 5}}\n")
    rules = rubric(tmp_path, text)
    student = load_roster(write(tmp_path, "class.yml", ROSTER))[0]
    cluster = FakeCluster("lab-s1")
    polls = {"n": 0}
    before = [{"type": "service", "sid": "vm:110", "node": "pve1", "state": "started"}]
    after = [{"type": "service", "sid": "vm:110", "node": "pve2", "state": "started"}]

    class Moving(FakeNode):
        def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
            if path == "/cluster/ha/status/current":
                polls["n"] += 1
                return before if polls["n"] < 4 else after  # recovered on the third look after the cut
            return super().request(method, path, params)
    power: list[str] = []

    def ipmi(argv: list[str], password: str, timeout: float) -> tuple[int, str, str]:
        power.append(" ".join(argv[-2:]))
        return 0, "", ""

    def factory(s: Student, timeout: float) -> ClusterAccess:
        return ClusterAccess(s, timeout, api_client=lambda node: Moving(cluster, node), ssh_runner=cluster.ssh,
                             ipmi_runner=ipmi)
    without = grade_class([student], rules, GradeOptions(), factory)[0].checks[0]
    assert (without.status, power) == ("skipped", [])  # destructive: never without --drills
    drilled = grade_class([student], rules, GradeOptions(drills=True), factory)[0].checks[0]
    assert power == ["power off", "power on"] and drilled.facts["node"] == "pve1"
    assert (drilled.status, drilled.score) == ("passed", 10) and 0.1 < drilled.facts["recovered_s"] < 0.5
    polls["n"] = 0  # the guest is on pve1 again for the second run
    out = write_run(tmp_path / "run", grade_class([student], rules, GradeOptions(drills=True), factory), rules)
    test = json.loads((out / "students" / "s1" / "results.json").read_text())["tests"][0]
    assert test["extra_data"]["facts"]["node"] == "pve1" and '"recovered_s": ' in test["output"]  # timing as evidence
    with pytest.raises(ValueError, match="only for status"):
        ClusterAccess(student, 1, ipmi_runner=ipmi).ipmi("pve1", "power off")


class Writable(FakeNode):
    """A node whose API answers a write as `status` (403 refused, 500 allowed but the guest is missing)."""

    def __init__(self, cluster: FakeCluster, node: str, status: int) -> None:
        super().__init__(cluster, node)
        self.status = status

    def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        if method != "GET":
            self.cluster.api.setdefault("_writes", []).append(path)
            raise ApiError(self.status, "Permission check failed" if self.status == 403 else "no such VM")
        return super().request(method, path, params)


@pytest.mark.parametrize(("status", "ok"), [(403, True), (500, False)])
def test_read_only_credentials_are_proven_by_a_refused_write(status: int, ok: bool) -> None:
    cluster = FakeCluster("lab")
    student = Student(id="s1", nodes=tuple(NodeAddress(f"pve{i}", f"198.18.0.1{i}", None) for i in (1, 2, 3)),
                      access={"api_token_id": "grader@pve!grade", "api_token_secret": "x"})
    cx = ClusterAccess(student, 1, api_client=lambda node: Writable(cluster, node, status))
    outcome = probes.PROBES["access.read_only"](cx, {})
    assert outcome.ok is ok and cluster.api["_writes"] == ["/nodes/pve1/qemu/999999999/status/start"]
    assert ok or "grade with a PVEAuditor token" in outcome.problems[0]


def test_the_accounts_probe_names_each_missing_piece_and_its_fix() -> None:
    cluster = FakeCluster("lab")
    cluster.api.update({
        "/access/users": [{"userid": "student@pve", "enable": 1}, {"userid": "grader@pve", "enable": 0}],
        "/pools/course": {"members": [{"vmid": 110}, {"vmid": 111}]},
        "/access/acl": [{"path": "/pool/course", "ugid": "students", "roleid": "PVEVMUser", "type": "group"}],
    })
    student = Student(id="s1", nodes=(NodeAddress("pve1", "198.18.0.11", None),), access={"api_password": "x"})
    cx = ClusterAccess(student, 1, api_client=lambda node: FakeNode(cluster, node))
    outcome = probes.PROBES["access.accounts"](cx, {
        "users": ["student@pve", "grader@pve", "ghost@pve"], "pools": [{"poolid": "course", "vms": [110, 111, 112]}],
        "acls": [{"path": "/pool/course", "roles": ["PVEVMUser"], "groups": ["students"]},
                 {"path": "/", "roles": ["PVEAuditor"], "tokens": ["grader@pve!grade"]}]})
    assert (outcome.passed, outcome.total) == (2, 6)
    assert sorted(outcome.problems) == sorted([
        "user 'grader@pve' is disabled: pveum user modify grader@pve --enable 1",
        "there is no user 'ghost@pve': add it (pveum user add ghost@pve)",
        "pool 'course' lacks guest 112: pveum pool modify course --vms 112",
        "grader@pve!grade lacks role PVEAuditor on /: pveum acl modify / --roles PVEAuditor --tokens grader@pve!grade"])
