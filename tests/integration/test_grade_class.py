"""A class over two lab servers, graded at once: `playbooks/class.yml` brings up eight twin labs, four on
this host directly and four on this host over a real SSH hop (tests/ssh_hop.py), and writes one roster
and one inventory per student. Each lab is put in a different state a student could leave it in, and
`pvelab grade` scores the whole roster in one run over real HTTPS, SSH and IPMI. Each check's score
must match the state its lab is in; the unreachable lab must not hold up the others; the four outputs
must agree; a student pointing at another's cluster must be caught."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from pvelab.cli import main
from pvelab.twin.drive import fingerprint, quorum_view, ssh
from pvelab.twin.lab import Lab
from tests.grade_outputs import assert_outputs_agree
from tests.ssh_hop import ssh_hop

from .conftest import BIN, REPO, TEST_LAB, own_lab, pve_version, wait_until

# Grading is version-blind at this layer (the version-guarded probes are unit-tested), and eight labs
# are the dearest setup in the suite: this runs once per CI run, on PVE 9 nodes.
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.environ.get("PVELAB_PVE_VERSION", "9") != "9", reason="runs once, on PVE 9 nodes")]
TIMEOUT_S = 5
RUBRIC = f"""\
rubric: cluster part
defaults: {{timeout_s: {TIMEOUT_S}}}
checks:
  - {{id: access.api, title: the grader reaches every node, points: 3}}
  - {{id: cluster.name, title: the planned name, points: 2, requires: [access.api]}}
  - {{id: cluster.nodes_online, title: three nodes online, points: 6, requires: [access.api]}}
  - {{id: cluster.quorate, title: quorate without override, points: 4, requires: [cluster.nodes_online]}}
  - {{id: corosync.links, title: "two links per node, connected", points: 6, requires: [cluster.name]}}
  - {{id: fencing.bmc, title: every BMC answers, points: 3}}
"""
CHECKS = ["access.api", "cluster.name", "cluster.nodes_online", "cluster.quorate", "corosync.links", "fencing.bmc"]
CLUSTER = "edu-cloud"  # the whole class is given one name, so sharing it proves nothing


def create(lab: Lab, name: str = CLUSTER, links: int = 2) -> None:
    node = lab.require_record().spec.node("pve1")
    options = " ".join(f"--link{k} {node.link_addr(k)}" for k in range(links))
    made = ssh(lab, "pve1", f"pvecm create {name} {options}", timeout=180)
    assert made.returncode == 0, made.stderr


def join(lab: Lab, member: str, links: int = 2) -> None:
    node = lab.require_record().spec.node(member)
    options = " ".join(f"--link{k} {node.link_addr(k)}" for k in range(links))
    joined = ssh(lab, member, f"pvecm add pve1 {options} --fingerprint {fingerprint(lab, 'pve1')}", timeout=180,
                 input=lab.require_record().root_password + "\n")
    assert joined.returncode == 0, joined.stderr


def whole(lab: Lab, name: str = CLUSTER, links: int = 2) -> None:
    create(lab, name, links)
    for member in ("pve2", "pve3"):
        join(lab, member, links)


def off(lab: Lab, *nodes: str) -> None:
    for node in nodes:
        lab.power(node, "off", cause="test: the state graded")


def two_joined(lab: Lab) -> None:
    create(lab)
    join(lab, "pve2")


def node_down(lab: Lab) -> None:
    whole(lab)
    off(lab, "pve3")
    wait_until(lambda: quorum_view(lab, "pve1").get("nodes") == 2, 60, "pve1 seeing 2 of 3 nodes")


def no_quorum(lab: Lab) -> None:
    whole(lab)
    off(lab, "pve2", "pve3")
    wait_until(lambda: quorum_view(lab, "pve1").get("quorate") is False, 60, "pve1 without quorum")


# Each lab (student) and what is done to it. `scores` is what the rubric must give each check, and why.
STATES: dict[str, Callable[[Lab], None]] = {
    "complete": whole,
    "one-link": lambda lab: whole(lab, links=1),
    "node-down": node_down,
    "wrong-name": lambda lab: whole(lab, name="my-cluster"),
    "no-quorum": no_quorum,
    "unreachable": lambda lab: off(lab, "pve1", "pve2", "pve3"),
    "standalone": lambda lab: None,
    "two-joined": two_joined,
}
P, PA, F, B, U = "passed", "partial", "failed", "blocked", "unreachable"
SCORES = {
    "complete": [(P, 3), (P, 2), (P, 6), (P, 4), (P, 6), (P, 3)],
    "one-link": [(P, 3), (P, 2), (P, 6), (P, 4), (F, 0), (P, 3)],  # every node has 1 link of 2
    # pve3 off: its API is silent (1 of 3 lost), 2 of 3 online, 2 of 3 votes is quorate; every node's
    # links miss node 3 or are silent; its BMC answers (power off is a state a BMC reports)
    "node-down": [(PA, 2), (P, 2), (PA, 4), (P, 4), (F, 0), (P, 3)],
    "wrong-name": [(P, 3), (F, 0), (P, 6), (P, 4), (B, 0), (P, 3)],
    "no-quorum": [(PA, 1), (P, 2), (PA, 2), (F, 0), (F, 0), (P, 3)],
    "unreachable": [(U, 0)] * 6,  # not wrong: nothing answered
    "standalone": [(P, 3), (F, 0), (PA, 2), (F, 0), (B, 0), (P, 3)],  # a node is "online" in its own status
    "two-joined": [(P, 3), (P, 2), (PA, 4), (P, 4), (PA, 4), (P, 3)],  # pve3 never joined: no links there
}


PREFIX = f"{TEST_LAB}-"  # the tests' own labs: named TEST_LAB-<state>


class Classroom:
    """The class class.yml made: its labs by student (state) and the files it wrote."""

    def __init__(self, labs: dict[str, Lab], class_dir: Path, runs: list[str]) -> None:
        self.labs, self.dir, self.runs = labs, class_dir, runs

    @property
    def roster(self) -> dict:
        return dict(yaml.safe_load((self.dir / "roster.yml").read_text()))


def class_playbook(inventory: Path, class_dir: Path, state: str) -> str:
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/class.yml",
                           "-e", json.dumps({"class_state": state, "class_students": list(STATES),
                                             "class_dir": str(class_dir), "class_lab_prefix": PREFIX,
                                             "class_pve_version": pve_version(),
                                             "class_roster_params": {"cluster_name": CLUSTER}})],
                          cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def classroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Classroom]:
    """Eight named labs over two lab servers by class.yml, each brought into its state; all torn down
    afterwards (class.yml absent, then each lab directly) even when a test fails."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (namespaces, bridges, mounts): run sudo ./scripts/test.sh")
    labs = {name: own_lab(PREFIX + name) for name in STATES}
    workdir = tmp_path_factory.mktemp("class")
    inventory, class_dir = workdir / "servers.yml", workdir / "class"
    with ssh_hop() as there:
        servers = {"here": {"ansible_connection": "local", "lab_capacity": 4},
                   "there": {**there.inventory_vars(), "lab_capacity": 4}}
        inventory.write_text(yaml.safe_dump({"lab_servers": {"hosts": servers, "vars": {
            "pvelab_cli": str(BIN / "pvelab"), "ansible_python_interpreter": "/usr/bin/python3"}}}))
        try:
            started = time.monotonic()
            runs = [class_playbook(inventory, class_dir, "present")]
            print(f"class.yml: 8 labs over 2 servers up in {time.monotonic() - started:.1f} s")
            again = time.monotonic()
            runs.append(class_playbook(inventory, class_dir, "present"))
            print(f"class.yml again (nothing to change) in {time.monotonic() - again:.1f} s")
            with ThreadPoolExecutor(max_workers=len(labs)) as pool:
                for done in [pool.submit(STATES[name], lab) for name, lab in labs.items()]:
                    done.result()
            print(f"8 labs up and in their states after {time.monotonic() - started:.1f} s")
            yield Classroom(labs, class_dir, runs)
            runs.append(class_playbook(inventory, class_dir, "absent"))
            assert [name for name, lab in labs.items() if lab.paths.root.exists()] == [], "class.yml absent left labs"
            assert not (class_dir / "roster.yml").exists() and not list(class_dir.iterdir())
        finally:
            for lab in labs.values():
                lab.down(quiet=True)


def test_class_yml_spreads_the_class_over_both_servers_once(classroom: Classroom) -> None:
    made, again = classroom.runs[:2]
    # four labs each, as the capacities ask, placed in list order by room left
    assert "here: " + ", ".join(PREFIX + s for s in list(STATES)[0::2]) in made, made
    assert "there: " + ", ".join(PREFIX + s for s in list(STATES)[1::2]) in made, made
    assert re.search(r"^here\s+: ok=\d+\s+changed=[1-9]", made, re.M) and re.search(
        r"^there\s+: ok=\d+\s+changed=[1-9]", made, re.M), made
    assert all(re.search(rf"^{server}\s+: ok=\d+\s+changed=0\b", again, re.M) for server in ("here", "there")), again
    roster = classroom.roster
    assert [s["id"] for s in roster["students"]] == list(STATES)  # one roster, in class order
    for student in roster["students"]:
        record = classroom.labs[student["id"]].require_record()
        assert [n["address"] for n in student["nodes"]] == [n.link_addr(0) for n in record.spec.nodes]
        assert student["params"] == {"cluster_name": CLUSTER}
        assert Path(student["ssh_key_file"]).parent == classroom.dir / student["id"]
        assert oct(Path(student["ssh_key_file"]).stat().st_mode & 0o777) == "0o600"
        inventory = yaml.safe_load((classroom.dir / student["id"] / "inventory.yml").read_text())
        hosts = inventory["all"]["children"]["pve_nodes"]["hosts"]
        assert {name: h["ansible_host"] for name, h in hosts.items()} == {
            n.name: n.link_addr(0) for n in record.spec.nodes}
        assert inventory["all"]["vars"]["ansible_ssh_private_key_file"] == student["ssh_key_file"]
    # the student's inventory works from the controller as it is: Ansible reaches all three nodes
    pinged = subprocess.run([str(BIN / "ansible"), "-i", str(classroom.dir / "complete" / "inventory.yml"),
                             "pve_nodes", "-m", "ansible.builtin.ping"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=False)
    assert pinged.returncode == 0 and pinged.stdout.count("SUCCESS") == 3, pinged.stdout + pinged.stderr


def read_cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def grade(tmp_path: Path, roster: dict, out: str) -> tuple[int, Path, float]:
    (tmp_path / "rubric.yml").write_text(RUBRIC)
    (tmp_path / f"{out}.yml").write_text(yaml.safe_dump(roster))
    started = time.monotonic()
    code = main(["grade", "--rubric", str(tmp_path / "rubric.yml"), "--roster", str(tmp_path / f"{out}.yml"),
                 "--out", str(tmp_path / out)])
    return code, tmp_path / out, time.monotonic() - started


def test_one_run_scores_each_lab_as_the_state_it_is_in(classroom: Classroom, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    roster = classroom.roster  # class.yml's, over both servers
    complete = next(s for s in roster["students"] if s["id"] == "complete")
    # A student who hands in the complete lab's cluster (through its link1 addresses) as their own.
    spec = classroom.labs["complete"].require_record().spec
    roster["students"].append({**complete, "id": "copycat", "nodes": [
        {"name": n.name, "address": n.link_addr(1)} for n in spec.nodes]})
    code, alone, _ = grade(tmp_path, {"students": [complete]}, "alone")
    assert code == 0
    code, out, took = grade(tmp_path, roster, "class")
    assert code == 0
    table = assert_outputs_agree(out, tmp_path / "profile")
    got = {student: cells for student, (_, cells) in table.items()}
    for student, expected in SCORES.items():
        assert got[student] == [(status, float(points)) for status, points in expected], student
    # the copycat scores the complete lab's marks except the BMCs it did not list...
    assert got["copycat"] == [(P, 3), (P, 2), (P, 6), (P, 4), (P, 6), (F, 0)]
    # ...and is caught: one certificate in two students' clusters (the run says so, the signed manifest too)
    assert "one certificate" in capsys.readouterr().err
    shared = json.loads((out / "manifest.json").read_text())["shared_identities"]
    assert {(s["kind"], tuple(s["students"])) for s in shared} == {("certificate", ("complete", "copycat"))}
    # The unreachable lab (three silent nodes) does not hold up the rest: the complete lab is graded
    # in the class run within one probe timeout of the time it takes alone.
    seconds = {s: json.loads((out / "students" / s / "results.json").read_text())["execution_time"]
               for s in table}
    alone_s = json.loads((alone / "students" / "complete" / "results.json").read_text())["execution_time"]
    print(f"graded 9 students in {took:.1f} s; complete alone {alone_s:.1f} s, in class {seconds['complete']:.1f} s, "
          f"unreachable {seconds['unreachable']:.1f} s")
    assert seconds["complete"] <= alone_s + TIMEOUT_S
    # the run ended the SSH connections it kept open per node, and removed their sockets
    assert not [p for p in Path("/proc").glob("[0-9]*") if b"pvelab-grade-ssh-" in read_cmdline(p)]
    assert not list(Path(tempfile.gettempdir()).glob("pvelab-grade-ssh-*"))
    evidence = json.loads((out / "students" / "node-down" / "evidence.json").read_text())
    assert any(e["request"] == "GET /cluster/status" and e["ok"] for e in evidence)
    assert any(e["target"] == "pve3" and not e["ok"] for e in evidence)
    assert all(classroom.labs["complete"].require_record().root_password not in json.dumps(e) for e in evidence)
