"""Real twin labs for the integration tests, always torn down, and the audits that run after every
fault test (as pacemaker's CTS audits after each test): no test relies on what another left."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from pvelab.poll import wait_for
from pvelab.twin.drive import quorum_view, ssh
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec


def start_lab(pve_version: str) -> Lab:
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (namespaces, bridges, mounts): run sudo ./scripts/test.sh")
    the_lab = Lab(log=print)
    if the_lab.leftovers():
        pytest.fail("a lab (or its leftovers) is already on this machine; the tests need the lab slot: "
                    "run `pvelab twin down` first")
    try:
        the_lab.up(LabSpec(node_count=3, pve_version=pve_version))
    except BaseException:
        the_lab.down(quiet=True)
        raise
    return the_lab


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh 3-node lab per test module, torn down after it even when tests fail. A module's
    PVE_VERSION ("8" or "9") picks the PVE its nodes present; the default is the twin's (9)."""
    the_lab = start_lab(getattr(request.module, "PVE_VERSION", LabSpec.pve_version))
    try:
        yield the_lab
    finally:
        the_lab.down(quiet=True)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until predicate() holds; return the seconds it took, or fail saying what never happened."""
    try:
        return wait_for(predicate, timeout, what)
    except TimeoutError as exc:
        pytest.fail(str(exc))


def audit_hardware(lab: Lab) -> None:
    """Every node powered on, running (not frozen), answering SSH and the API; no cut, no delay."""
    lab.heal()
    for status in lab.status():
        if status.power == "off":
            lab.power(status.name, "on", cause="test audit")
        elif status.frozen:
            lab.freeze(status.name, False)
    for node in lab.require_record().spec.nodes:
        wait_until(lambda n=node: lab.node_ready(n), 120, f"{node.name} answering SSH and the API")


def audit_cluster(lab: Lab, members: tuple[str, ...]) -> None:
    """The hardware audit, then every member quorate with all members, and one corosync.conf everywhere."""
    audit_hardware(lab)
    for node in members:
        wait_until(lambda n=node: quorum_view(lab, n).get("quorate") is True
                   and quorum_view(lab, n).get("nodes") == len(members), 90, f"{node} quorate with {members}")
    wait_until(lambda: len({ssh(lab, n, "cat /etc/pve/corosync.conf").stdout for n in members}) == 1, 30,
               "one corosync.conf on every member")
