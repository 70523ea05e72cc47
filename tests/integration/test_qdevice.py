"""Two PVE nodes plus a QDevice: pve3 is not a cluster member but the corosync-qnetd host.

Tests run in file order: each step builds on the cluster the previous ones left.
"""

from __future__ import annotations

import pytest

from pvelab.cli import ExitStatus, main
from pvelab.twin.lab import Lab

from .conftest import fingerprint, pvecm_add, pvecm_create, quorum_view, ssh, wait_until

pytestmark = pytest.mark.lab


def test_two_node_cluster_with_a_qnetd_host(lab: Lab) -> None:
    assert pvecm_create(lab, "pve1", "twonode").returncode == 0
    joined = pvecm_add(lab, "pve2", "pve1", lab.require_record().root_password, fingerprint(lab, "pve1"))
    assert joined.returncode == 0, joined.stderr
    assert ssh(lab, "pve3", "systemctl enable --now corosync-qnetd").returncode == 0
    # What a student does with ssh-copy-id: let pve1's root log in to the qnetd host.
    key = ssh(lab, "pve1", "cat /root/.ssh/id_rsa.pub").stdout
    assert ssh(lab, "pve3", "cat >> /root/.ssh/authorized_keys", input=key).returncode == 0
    assert quorum_view(lab, "pve1")["expected_votes"] == 2


def test_qdevice_setup_adds_a_third_vote(lab: Lab) -> None:
    out = ssh(lab, "pve1", "pvecm qdevice setup 198.18.0.13", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "INFO: add QDevice to cluster configuration" in out.stdout
    for node in ("pve1", "pve2"):
        wait_until(lambda n=node: quorum_view(lab, n).get("total_votes") == 3, 30, f"{node} counting the QDevice")
        assert "Qdevice" in quorum_view(lab, node)["flags"]
    conf = ssh(lab, "pve2", "cat /etc/pve/corosync.conf").stdout
    assert "model: net" in conf and "host: 198.18.0.13" in conf and "algorithm: ffsplit" in conf


def test_a_second_setup_is_refused(lab: Lab) -> None:
    out = ssh(lab, "pve1", "pvecm qdevice setup 198.18.0.13")
    assert out.returncode == 255 and "QDevice already configured!" in out.stderr


def test_with_the_qdevice_one_node_keeps_quorum(lab: Lab) -> None:
    assert main(["twin", "partition", "pve2"]) == ExitStatus.OK
    try:
        wait_until(lambda: quorum_view(lab, "pve2").get("quorate") is False, 40, "pve2 losing quorum")
        view = quorum_view(lab, "pve1")
        assert (view["quorate"], view["total_votes"]) == (True, 2)
        assert ssh(lab, "pve1", "echo survived > /etc/pve/survived.txt").returncode == 0
    finally:
        main(["twin", "heal"])
    wait_until(lambda: quorum_view(lab, "pve2").get("total_votes") == 3, 60, "pve2 back with three votes")
