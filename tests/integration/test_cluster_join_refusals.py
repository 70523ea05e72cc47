"""Joins that PVE refuses, against a one-node cluster on pve1 while pve2 and pve3 stay standalone:
nothing in this file joins a node, so its tests hold in any order."""

from __future__ import annotations

import subprocess

import pytest

from pvelab.twin.drive import fingerprint, pvecm_add, pvecm_add_over_ssh, pvecm_create, quorum_view, ssh
from pvelab.twin.lab import Lab

from .conftest import pve_version

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def created(lab: Lab) -> subprocess.CompletedProcess[str]:
    """pvecm create on pve1, once; its output for the test that checks it."""
    return pvecm_create(lab, "pve1", "labclu")


def password(lab: Lab) -> str:
    return lab.require_record().root_password


def test_a_fresh_node_is_standalone(lab: Lab) -> None:
    out = ssh(lab, "pve3", "pvecm status")
    assert out.returncode == 2
    assert "Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?" in out.stderr
    assert ssh(lab, "pve3", "echo standalone > /etc/pve/standalone.txt && rm /etc/pve/standalone.txt").returncode == 0


def test_pvecm_create(lab: Lab, created: subprocess.CompletedProcess[str]) -> None:
    assert created.returncode == 0, created.stderr
    assert "Writing corosync config to /etc/pve/corosync.conf" in created.stdout
    conf = ssh(lab, "pve1", "cat /etc/pve/corosync.conf").stdout
    assert ("  token_coefficient: 125\n" in conf) == (pve_version() == "9")  # PVE 9.1 added it
    view = quorum_view(lab, "pve1")
    assert (view["name"], view["nodes"], view["quorate"]) == ("labclu", 1, True)


def test_join_with_a_wrong_password_is_refused(lab: Lab, created: subprocess.CompletedProcess[str]) -> None:
    out = pvecm_add(lab, "pve2", "pve1", "wrong-password", fingerprint(lab, "pve1"))
    assert out.returncode == 255
    assert "authentication failure" in out.stderr
    assert ssh(lab, "pve2", "test -e /etc/corosync/authkey").returncode != 0  # nothing was changed


def test_join_with_a_wrong_fingerprint_is_refused(lab: Lab, created: subprocess.CompletedProcess[str]) -> None:
    wrong = ":".join(["AB"] * 32)
    out = pvecm_add(lab, "pve2", "pve1", password(lab), wrong)
    assert out.returncode == 255
    assert "fingerprint mismatch" in out.stderr


def test_a_node_with_guests_may_not_join(lab: Lab, created: subprocess.CompletedProcess[str]) -> None:
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


def test_join_over_ssh_without_ssh_trust_is_refused(lab: Lab, created: subprocess.CompletedProcess[str]) -> None:
    out = pvecm_add_over_ssh(lab, "pve3", "pve1")
    assert out.returncode == 255
    assert "unable to copy ssh ID" in out.stderr
    assert ssh(lab, "pve3", "test -e /etc/corosync/authkey").returncode != 0  # nothing was changed
    assert "pve3" not in ssh(lab, "pve1", "cat /etc/pve/corosync.conf").stdout
