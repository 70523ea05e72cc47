"""A cluster built with pvecm over SSH, then cut, power-cycled and forced, as the course does it.

Tests run in file order: each step builds on the cluster the previous ones left.
"""

from __future__ import annotations

import pytest

from pvelab.cli import ExitStatus, main
from pvelab.twin.bmc import BmcClient
from pvelab.twin.drive import pvecm_add_over_ssh, trust_root_ssh
from pvelab.twin.lab import Lab

from .conftest import fingerprint, pvecm_add, pvecm_create, quorum_view, ssh, wait_until

pytestmark = pytest.mark.lab
NODES = ("pve1", "pve2", "pve3")


def password(lab: Lab) -> str:
    return lab.require_record().root_password


def test_a_fresh_node_is_standalone(lab: Lab) -> None:
    out = ssh(lab, "pve1", "pvecm status")
    assert out.returncode == 2
    assert "Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?" in out.stderr
    assert ssh(lab, "pve1", "echo standalone > /etc/pve/standalone.txt").returncode == 0


def test_pvecm_create(lab: Lab) -> None:
    out = pvecm_create(lab, "pve1", "labclu")
    assert out.returncode == 0, out.stderr
    assert "Writing corosync config to /etc/pve/corosync.conf" in out.stdout
    assert "  token_coefficient: 125\n" in ssh(lab, "pve1", "cat /etc/pve/corosync.conf").stdout  # PVE 9.1
    view = quorum_view(lab, "pve1")
    assert (view["name"], view["nodes"], view["quorate"]) == ("labclu", 1, True)


def test_join_with_a_wrong_password_is_refused(lab: Lab) -> None:
    out = pvecm_add(lab, "pve2", "pve1", "wrong-password", fingerprint(lab, "pve1"))
    assert out.returncode == 255
    assert "authentication failure" in out.stderr
    assert ssh(lab, "pve2", "test -e /etc/corosync/authkey").returncode != 0  # nothing was changed


def test_join_with_a_wrong_fingerprint_is_refused(lab: Lab) -> None:
    wrong = ":".join(["AB"] * 32)
    out = pvecm_add(lab, "pve2", "pve1", password(lab), wrong)
    assert out.returncode == 255
    assert "fingerprint mismatch" in out.stderr


def test_a_node_with_guests_may_not_join(lab: Lab) -> None:
    guest = "/etc/pve/nodes/pve2/qemu-server/100.conf"
    assert ssh(lab, "pve2", f"mkdir -p $(dirname {guest}) && echo 'memory: 512' > {guest}").returncode == 0
    try:
        out = pvecm_add(lab, "pve2", "pve1", password(lab), fingerprint(lab, "pve1"))
        assert out.returncode == 255
        assert "* this host already contains virtual guests" in out.stdout
        assert "Check if node may join a cluster failed!" in out.stderr
        assert ssh(lab, "pve2", "test -e /etc/corosync/authkey").returncode != 0  # nothing was changed
    finally:
        ssh(lab, "pve2", f"rm -f {guest}")


def test_join_over_ssh_without_ssh_trust_is_refused(lab: Lab) -> None:
    out = pvecm_add_over_ssh(lab, "pve3", "pve1")
    assert out.returncode == 255
    assert "unable to copy ssh ID" in out.stderr
    assert ssh(lab, "pve3", "test -e /etc/corosync/authkey").returncode != 0  # nothing was changed
    assert "pve3" not in ssh(lab, "pve1", "cat /etc/pve/corosync.conf").stdout


def test_pvecm_add_forms_a_quorate_three_node_cluster(lab: Lab) -> None:
    out = pvecm_add(lab, "pve2", "pve1", password(lab), fingerprint(lab, "pve1"))  # the API join
    assert out.returncode == 0, out.stdout + out.stderr
    assert "successfully added node 'pve2' to cluster." in out.stdout
    trust_root_ssh(lab, "pve3", "pve1")
    out = pvecm_add_over_ssh(lab, "pve3", "pve1")  # the SSH join: pvecm addnode on pve1, key and config by rsync
    assert out.returncode == 0, out.stdout + out.stderr
    assert "copy corosync auth key" in out.stdout
    assert "successfully added node 'pve3' to cluster." in out.stdout
    for node in NODES:
        view = quorum_view(lab, node)
        assert (view["nodes"], view["total_votes"], view["expected_votes"], view["quorate"]) == (3, 3, 3, True)
    confs = {ssh(lab, n, "cat /etc/pve/corosync.conf").stdout for n in NODES}
    assert len(confs) == 1 and "config_version: 3" in confs.pop()
    assert ssh(lab, "pve3", "cat /etc/pve/standalone.txt").stdout == "standalone\n"  # pve1's tree won


def test_joining_a_node_twice_is_refused(lab: Lab) -> None:
    out = pvecm_add(lab, "pve2", "pve1", password(lab), fingerprint(lab, "pve1"))
    assert out.returncode == 255
    assert "* authentication key '/etc/corosync/authkey' already exists" in out.stdout
    assert "Check if node may join a cluster failed!" in out.stderr


def test_a_cut_off_node_loses_quorum_and_refuses_writes(lab: Lab) -> None:
    assert main(["twin", "partition", "pve3"]) == ExitStatus.OK
    try:
        wait_until(lambda: quorum_view(lab, "pve3").get("quorate") is False, 30, "pve3 reporting Quorate: No")
        refused = ssh(lab, "pve3", "echo x > /etc/pve/from-pve3.txt")
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
        api = ssh(lab, "pve3", "pvesh set /cluster/options --description from-pve3")
        assert api.returncode != 0 and "cluster not ready - no quorum?" in api.stderr
        for node in ("pve1", "pve2"):
            assert quorum_view(lab, node)["quorate"] is True
        assert ssh(lab, "pve1", "echo meanwhile > /etc/pve/meanwhile.txt").returncode == 0
        assert ssh(lab, "pve2", "cat /etc/pve/meanwhile.txt").stdout == "meanwhile\n"
    finally:
        main(["twin", "heal"])
    wait_until(lambda: quorum_view(lab, "pve3").get("quorate") is True, 60, "pve3 quorate again")
    wait_until(lambda: ssh(lab, "pve3", "cat /etc/pve/meanwhile.txt").stdout == "meanwhile\n", 30,
               "pve3 seeing what was written while it was away")


def test_a_power_cycled_node_rejoins_with_its_configuration(lab: Lab) -> None:
    record = lab.require_record()
    ipmi = BmcClient(record.spec.node("pve2").bmc_addr, record.bmc_password).connect()
    ipmi.chassis_control_power_cycle()
    wait_until(lambda: lab.node_ready(record.spec.node("pve2")), 60, "pve2 booting again")
    wait_until(lambda: quorum_view(lab, "pve2").get("quorate") is True, 60, "pve2 quorate after power cycle")
    assert quorum_view(lab, "pve2")["nodes"] == 3
    assert ssh(lab, "pve2", "cat /etc/pve/meanwhile.txt").stdout == "meanwhile\n"


def test_expected_1_makes_an_isolated_node_writable_which_splits_the_brain(lab: Lab) -> None:
    assert main(["twin", "partition", "pve3"]) == ExitStatus.OK
    try:
        wait_until(lambda: quorum_view(lab, "pve3").get("quorate") is False, 30, "pve3 losing quorum")
        assert ssh(lab, "pve3", "pvecm expected 1").returncode == 0
        assert quorum_view(lab, "pve3")["quorate"] is True
        # The danger: both sides now accept writes, and they disagree.
        assert ssh(lab, "pve3", "echo pve3-side > /etc/pve/split.txt").returncode == 0
        assert ssh(lab, "pve1", "echo majority-side > /etc/pve/split.txt").returncode == 0
        assert ssh(lab, "pve3", "cat /etc/pve/split.txt").stdout != ssh(lab, "pve1", "cat /etc/pve/split.txt").stdout
    finally:
        main(["twin", "heal"])
    wait_until(lambda: quorum_view(lab, "pve3").get("nodes") == 3, 60, "pve3 back in the membership")
    wait_until(lambda: len({ssh(lab, n, "cat /etc/pve/split.txt").stdout for n in NODES}) == 1, 30,
               "one version of split.txt everywhere (the other side's write is lost)")
