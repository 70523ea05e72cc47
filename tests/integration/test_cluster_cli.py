"""A cluster built with pvecm over SSH (pve2 through the API join, pve3 through --use_ssh), then cut,
power-cycled and forced, as the course does it. The cluster comes from a fixture, and an audit after
every fault test puts it back whole (all quorate, one corosync.conf), so tests hold in any order."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from pvelab.cli import ExitStatus, main
from pvelab.twin.bmc import BmcClient
from pvelab.twin.drive import fingerprint, pvecm_add, pvecm_add_over_ssh, pvecm_create, quorum_view, ssh, trust_root_ssh
from pvelab.twin.lab import Lab

from .conftest import BIN, REPO, audit_cluster, wait_until
from .test_ansible_modules import ansible_env

pytestmark = pytest.mark.lab
NODES = ("pve1", "pve2", "pve3")


def password(lab: Lab) -> str:
    return lab.require_record().root_password


@pytest.fixture(scope="module")
def formed(lab: Lab) -> dict[str, subprocess.CompletedProcess[str]]:
    """pve1 creates labclu (with a file written while it was standalone), pve2 joins through the API,
    pve3 over SSH; the outputs of each step, for the tests that check them."""
    assert ssh(lab, "pve1", "echo standalone > /etc/pve/standalone.txt").returncode == 0
    steps = {"create": pvecm_create(lab, "pve1", "labclu")}
    steps["api join"] = pvecm_add(lab, "pve2", "pve1", password(lab), fingerprint(lab, "pve1"))
    trust_root_ssh(lab, "pve3", "pve1")
    steps["ssh join"] = pvecm_add_over_ssh(lab, "pve3", "pve1")
    return steps


@pytest.fixture
def cluster(lab: Lab, formed: dict[str, subprocess.CompletedProcess[str]]) -> Iterator[Lab]:
    """The formed cluster for a fault test, audited whole again afterwards."""
    yield lab
    audit_cluster(lab, NODES)


def test_pvecm_add_forms_a_quorate_three_node_cluster(lab: Lab, formed: dict[str, subprocess.CompletedProcess[str]]
                                                      ) -> None:
    for step, out in formed.items():
        assert out.returncode == 0, f"{step}: {out.stdout}{out.stderr}"
    assert "successfully added node 'pve2' to cluster." in formed["api join"].stdout
    assert "copy corosync auth key" in formed["ssh join"].stdout  # pvecm addnode on pve1, key and config by rsync
    assert "successfully added node 'pve3' to cluster." in formed["ssh join"].stdout
    for node in NODES:
        view = quorum_view(lab, node)
        assert (view["nodes"], view["total_votes"], view["expected_votes"], view["quorate"]) == (3, 3, 3, True)
    confs = {ssh(lab, n, "cat /etc/pve/corosync.conf").stdout for n in NODES}
    assert len(confs) == 1 and "config_version: 3" in confs.pop()
    assert ssh(lab, "pve3", "cat /etc/pve/standalone.txt").stdout == "standalone\n"  # pve1's tree won


def test_joining_a_node_twice_is_refused(cluster: Lab) -> None:
    out = pvecm_add(cluster, "pve2", "pve1", password(cluster), fingerprint(cluster, "pve1"))
    assert out.returncode == 255
    assert "* authentication key '/etc/corosync/authkey' already exists" in out.stdout
    assert "Check if node may join a cluster failed!" in out.stderr


def test_a_cut_off_node_loses_quorum_and_refuses_writes(cluster: Lab) -> None:
    assert main(["twin", "partition", "pve3"]) == ExitStatus.OK
    try:
        wait_until(lambda: quorum_view(cluster, "pve3").get("quorate") is False, 30, "pve3 reporting Quorate: No")
        refused = ssh(cluster, "pve3", "echo x > /etc/pve/from-pve3.txt")
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
        api = ssh(cluster, "pve3", "pvesh set /cluster/options --description from-pve3")
        assert api.returncode != 0 and "cluster not ready - no quorum?" in api.stderr
        for node in ("pve1", "pve2"):
            assert quorum_view(cluster, node)["quorate"] is True
        assert ssh(cluster, "pve1", "echo meanwhile > /etc/pve/meanwhile.txt").returncode == 0
        assert ssh(cluster, "pve2", "cat /etc/pve/meanwhile.txt").stdout == "meanwhile\n"
    finally:
        main(["twin", "heal"])
    wait_until(lambda: quorum_view(cluster, "pve3").get("quorate") is True, 60, "pve3 quorate again")
    wait_until(lambda: ssh(cluster, "pve3", "cat /etc/pve/meanwhile.txt").stdout == "meanwhile\n", 30,
               "pve3 seeing what was written while it was away")


def test_a_power_cycled_node_rejoins_with_its_configuration(cluster: Lab) -> None:
    record = cluster.require_record()
    assert ssh(cluster, "pve1", "echo before-cycle > /etc/pve/before-cycle.txt").returncode == 0
    ipmi = BmcClient(record.spec.node("pve2").bmc_addr, record.bmc_password).connect()
    ipmi.chassis_control_power_cycle()
    wait_until(lambda: cluster.node_ready(record.spec.node("pve2")), 60, "pve2 booting again")
    wait_until(lambda: quorum_view(cluster, "pve2").get("quorate") is True, 60, "pve2 quorate after power cycle")
    assert quorum_view(cluster, "pve2")["nodes"] == 3
    assert ssh(cluster, "pve2", "cat /etc/pve/before-cycle.txt").stdout == "before-cycle\n"


def test_expected_1_makes_an_isolated_node_writable_which_splits_the_brain(cluster: Lab) -> None:
    assert main(["twin", "partition", "pve3"]) == ExitStatus.OK
    try:
        wait_until(lambda: quorum_view(cluster, "pve3").get("quorate") is False, 30, "pve3 losing quorum")
        assert ssh(cluster, "pve3", "pvecm expected 1").returncode == 0
        assert quorum_view(cluster, "pve3")["quorate"] is True
        # The danger: both sides now accept writes, and they disagree.
        assert ssh(cluster, "pve3", "echo pve3-side > /etc/pve/split.txt").returncode == 0
        assert ssh(cluster, "pve1", "echo majority-side > /etc/pve/split.txt").returncode == 0
        sides = {ssh(cluster, n, "cat /etc/pve/split.txt").stdout for n in ("pve3", "pve1")}
        assert len(sides) == 2
    finally:
        main(["twin", "heal"])
    wait_until(lambda: quorum_view(cluster, "pve3").get("nodes") == 3, 60, "pve3 back in the membership")
    wait_until(lambda: len({ssh(cluster, n, "cat /etc/pve/split.txt").stdout for n in NODES}) == 1, 30,
               "one version of split.txt everywhere (the other side's write is lost)")


def test_the_latency_drill_names_the_latency_at_which_a_node_is_declared_dead(cluster: Lab) -> None:
    """playbooks/drills/corosync_latency.yml with short settings, on this cluster through the twin's
    inventory: verify's latency check fails with its hint, pve3 is declared dead at some step, the
    cluster settles once the delay goes."""
    steps = '{"latency_steps_ms": [10, 800, 2000, 4000], "latency_hold": 10, "latency_node": "pve3"}'
    playbook = [str(BIN / "ansible-playbook"), "playbooks/drills/corosync_latency.yml"]
    run = subprocess.run([*playbook, "-e", steps], cwd=REPO, env=ansible_env(), capture_output=True, text=True,
                         timeout=900, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    dead = re.search(r"pve3 was first declared dead at \+(\d+) ms of latency", out)
    assert dead and int(dead.group(1)) > 10, out[-4000:]
    assert re.search(r"\+10 ms: .*; pve3 quorate\b", out), out[-4000:]  # 10 ms is slow, not fatal
    hint = r"verify's latency check at \+10 ms: FAIL pve1: latency from pve1 to pve3 .* over the 2(\.0)? ms"
    assert re.search(hint, out), out[-4000:]
    settled = re.search(r"the cluster settled (\d+) s later", out)
    assert settled and int(settled.group(1)) < 180, out[-4000:]
    print(*re.findall(r'"(\+\d+ ms: [^"]*|pve3 was first[^"]*|verify\'s latency[^"]*|the delay went[^"]*)"', out),
          sep="\n")  # the drill's report, for the CI log
    for node in NODES:
        assert ssh(cluster, node, "true").returncode == 0
