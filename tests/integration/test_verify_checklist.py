"""verify.yml on a cluster broken on purpose reads like a checklist: one line per failed check (node,
what is wrong, what to do) and the count, with the full pytest report in a file. Its own lab, since
the test removes a node from the cluster."""

from __future__ import annotations

import subprocess

import pytest

from pvelab.twin.drive import fingerprint, pvecm_add, pvecm_create, quorum_view
from pvelab.twin.lab import Lab

from .conftest import BIN, REPO, wait_until
from .test_ansible_modules import ansible_env, api_args, module

pytestmark = [pytest.mark.lab, pytest.mark.destructive]


def verify_playbook() -> subprocess.CompletedProcess[str]:
    """verify.yml with the cluster checks (this lab has a cluster only, not the course lab)."""
    return subprocess.run([str(BIN / "ansible-playbook"), "playbooks/verify.yml",
                           "-e", f"verify_checks={REPO / 'tests' / 'verify' / 'test_cluster.py'}"], cwd=REPO,
                          env=ansible_env(), capture_output=True, text=True, timeout=600, check=False)


def test_a_node_left_out_gives_one_line_per_failed_check(lab: Lab) -> None:
    password = lab.require_record().root_password
    assert pvecm_create(lab, "pve1", "edu-cloud").returncode == 0
    for node in ("pve2", "pve3"):
        assert pvecm_add(lab, node, "pve1", password, fingerprint(lab, "pve1")).returncode == 0
    passed = verify_playbook()
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "0 failed" in (REPO / "reports" / "verify" / "checklist.txt").read_text()

    removed = module(lab, "pvelab.pve.pve_cluster",
                     {**api_args(lab, "pve1"), "cluster_name": "edu-cloud", "state": "absent", "node": "pve3"})
    assert removed["_failed"] and "still online" in removed["msg"]  # guarded
    assert lab.power("pve3", "off") == "off"
    wait_until(lambda: quorum_view(lab, "pve1").get("nodes") == 2, 30, "pve1 noticing pve3 is gone")
    gone = module(lab, "pvelab.pve.pve_cluster",
                  {**api_args(lab, "pve1"), "cluster_name": "edu-cloud", "state": "absent", "node": "pve3"})
    assert gone["changed"] is True and gone["membership"]["nodes"] == ["pve1", "pve2"], gone
    lab.power("pve3", "on")
    wait_until(lambda: lab.node_ready(lab.require_record().spec.node("pve3")), 90, "pve3 booting again")

    out = verify_playbook()
    assert out.returncode != 0
    assert "FAIL pve1: pve1 sees 2 nodes in the cluster, the inventory has 3 (pve1, pve2, pve3)" in out.stdout
    assert "full report: " in out.stdout and "passed, " in out.stdout
    assert "Traceback" not in out.stdout and "def test_" not in out.stdout  # a checklist, not a dump
    report = (REPO / "reports" / "verify" / "pytest-report.txt").read_text()
    assert "def test_" in report or "assert" in report  # the detail is in the file
    assert max(len(line) for line in out.stdout.splitlines()) < 600, "a line of the output is a dump"
