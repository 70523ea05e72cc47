"""Two PVE nodes plus a QDevice: pve3 is not a cluster member but the corosync-qnetd host. The
cluster and the QDevice come from fixtures; the fault test is audited, so tests hold in any order."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from pvelab.cli import ExitStatus, main
from pvelab.twin.drive import fingerprint, pvecm_add, pvecm_create, quorum_view, ssh
from pvelab.twin.lab import Lab

from .conftest import audit_cluster, lab_addr, wait_until

pytestmark = pytest.mark.lab
MEMBERS = ("pve1", "pve2")


@pytest.fixture(scope="module")
def two_nodes(lab: Lab) -> dict[str, Any]:
    """pve1 + pve2 in a cluster, corosync-qnetd running on pve3 and trusting pve1's root key."""
    assert pvecm_create(lab, "pve1", "twonode").returncode == 0
    joined = pvecm_add(lab, "pve2", "pve1", lab.require_record().root_password, fingerprint(lab, "pve1"))
    assert joined.returncode == 0, joined.stderr
    assert ssh(lab, "pve3", "systemctl enable --now corosync-qnetd").returncode == 0
    # What a student does with ssh-copy-id: let pve1's root log in to the qnetd host.
    key = ssh(lab, "pve1", "cat /root/.ssh/id_rsa.pub").stdout
    assert ssh(lab, "pve3", "cat >> /root/.ssh/authorized_keys", input=key).returncode == 0
    return {"view before the qdevice": quorum_view(lab, "pve1")}


@pytest.fixture(scope="module")
def qdevice(lab: Lab, two_nodes: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`pvecm qdevice setup` on pve1, once; its output."""
    out = ssh(lab, "pve1", f"pvecm qdevice setup {lab_addr(lab, 13)}", timeout=120)
    for node in MEMBERS:
        wait_until(lambda n=node: quorum_view(lab, n).get("total_votes") == 3, 30, f"{node} counting the QDevice")
    return out


@pytest.fixture
def audited(lab: Lab, qdevice: subprocess.CompletedProcess[str]) -> Iterator[Lab]:
    yield lab
    audit_cluster(lab, MEMBERS)
    wait_until(lambda: quorum_view(lab, "pve2").get("total_votes") == 3, 60, "pve2 back with three votes")


def test_two_nodes_expect_two_votes_without_a_qdevice(two_nodes: dict[str, Any]) -> None:
    view = two_nodes["view before the qdevice"]
    assert (view["expected_votes"], view["total_votes"], view["quorate"]) == (2, 2, True)


def test_qdevice_setup_adds_a_third_vote(lab: Lab, qdevice: subprocess.CompletedProcess[str]) -> None:
    assert qdevice.returncode == 0, qdevice.stdout + qdevice.stderr
    assert "INFO: add QDevice to cluster configuration" in qdevice.stdout
    for node in MEMBERS:
        assert "Qdevice" in quorum_view(lab, node)["flags"]
    conf = ssh(lab, "pve2", "cat /etc/pve/corosync.conf").stdout
    assert "model: net" in conf and f"host: {lab_addr(lab, 13)}" in conf and "algorithm: ffsplit" in conf


def test_a_second_setup_is_refused(lab: Lab, qdevice: subprocess.CompletedProcess[str]) -> None:
    out = ssh(lab, "pve1", f"pvecm qdevice setup {lab_addr(lab, 13)}")
    assert out.returncode == 255 and "QDevice already configured!" in out.stderr


def test_with_the_qdevice_one_node_keeps_quorum(audited: Lab) -> None:
    assert main(["twin", "partition", "pve2"]) == ExitStatus.OK
    try:
        wait_until(lambda: quorum_view(audited, "pve2").get("quorate") is False, 40, "pve2 losing quorum")
        view = quorum_view(audited, "pve1")
        assert (view["quorate"], view["total_votes"]) == (True, 2)
        assert ssh(audited, "pve1", "echo survived > /etc/pve/survived.txt").returncode == 0
    finally:
        main(["twin", "heal"])
