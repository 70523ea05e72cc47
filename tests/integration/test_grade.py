"""`pvelab grade` against a real twin cluster, over real HTTPS, SSH and IPMI: a whole cluster scores
full marks, a cut corosync link costs exactly that check's share, and a student whose cluster does
not exist is `unreachable` without holding up the others. The reports agree with each other."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml

from pvelab.cli import main
from pvelab.twin.drive import form_cluster, ssh
from pvelab.twin.inventory import roster
from pvelab.twin.lab import Lab

from .conftest import wait_until

# The grader reads the cluster layer the same way on both versions (the version-guarded probes are
# unit-tested), so this runs once per CI run, on PVE 9 nodes.
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.environ.get("PVELAB_PVE_VERSION", "9") != "9", reason="runs once, on PVE 9 nodes")]
RUBRIC = """\
rubric: cluster part
defaults: {timeout_s: 5}
checks:
  - {id: access.api, title: the grader reaches every node, points: 0}
  - {id: cluster.name, title: the planned name, points: 2, requires: [access.api]}
  - {id: cluster.nodes_online, title: three nodes online, points: 6, requires: [access.api]}
  - {id: cluster.quorate, title: quorate without override, points: 4, requires: [cluster.nodes_online]}
  - {id: corosync.links, title: "two links per node, connected", points: 6, requires: [cluster.name]}
  - {id: fencing.bmc, title: every BMC answers, points: 3}
"""


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Lab:
    form_cluster(lab, "grademe")
    return lab


def grade(lab: Lab, tmp_path: Path, name: str) -> tuple[int, Path]:
    """Grade the lab (student 'twin') and a student whose addresses answer nothing ('ghost')."""
    data = roster(lab.require_record(), lab.paths, "twin", {"cluster_name": "grademe"})
    data["students"].append({"id": "ghost", "params": {"cluster_name": "grademe"}, "nodes": [
        {"name": f"pve{i}", "address": f"198.18.0.{200 + i}", "bmc": f"198.18.2.{200 + i}"} for i in (1, 2, 3)]})
    (tmp_path / "class.yml").write_text(yaml.safe_dump(data))
    (tmp_path / "rubric.yml").write_text(RUBRIC)
    out = tmp_path / name
    code = main(["grade", "--rubric", str(tmp_path / "rubric.yml"), "--roster", str(tmp_path / "class.yml"),
                 "--out", str(out)])
    return code, out


def statuses(out: Path, student: str) -> dict[str, tuple[str, float]]:
    tests = json.loads((out / "students" / student / "results.json").read_text())["tests"]
    return {t["name"].split(":")[0]: (t["extra_data"]["pvelab_status"], t["score"]) for t in tests}


def test_a_whole_cluster_scores_full_marks_and_a_missing_one_is_unreachable(cluster: Lab, tmp_path: Path) -> None:
    code, out = grade(cluster, tmp_path, "run1")
    assert code == 0
    assert statuses(out, "twin") == {"access.api": ("passed", 0), "cluster.name": ("passed", 2),
                                     "cluster.nodes_online": ("passed", 6), "cluster.quorate": ("passed", 4),
                                     "corosync.links": ("passed", 6), "fencing.bmc": ("passed", 3)}
    assert {status for status, _ in statuses(out, "ghost").values()} == {"unreachable"}
    book = {row["student_id"]: row for row in csv.DictReader((out / "gradebook.csv").open())}
    assert (book["twin"]["score"], book["twin"]["max_score"], book["ghost"]["reachable"]) == ("21", "21", "no")
    evidence = json.loads((out / "students" / "twin" / "evidence.json").read_text())
    assert any(e["request"] == "GET /cluster/status" and e["ok"] for e in evidence)
    assert all("password" not in json.dumps(e).lower() for e in evidence)


def test_a_cut_link_costs_that_checks_share(cluster: Lab, tmp_path: Path) -> None:
    cluster.partition(["pve3"], None, "1")
    try:
        for node in ("pve1", "pve2", "pve3"):
            wait_until(lambda n=node: "disconnected" in ssh(cluster, n, "corosync-cfgtool -s").stdout, 60,
                       f"{node} seeing link1 down")
        code, out = grade(cluster, tmp_path, "run2")
    finally:
        cluster.heal()
    assert code == 0
    got = statuses(out, "twin")
    assert got["corosync.links"] == ("failed", 0)  # every node has a link1 peer it cannot reach
    assert got["cluster.quorate"] == ("passed", 4) and got["cluster.nodes_online"] == ("passed", 6)  # link0 holds
    results = json.loads((out / "students" / "twin" / "results.json").read_text())
    links = next(t for t in results["tests"] if t["name"].startswith("corosync.links"))
    assert "link1 to node 3 disconnected" in links["output"]
