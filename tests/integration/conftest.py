"""A real 3-node twin lab, shared by the integration tests and always torn down."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from pvelab.twin.drive import fingerprint, pvecm_add, pvecm_create, quorum_view, ssh
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh 3-node lab per test module, torn down after it even when tests fail. A module's
    PVE_VERSION ("8" or "9") picks the PVE its nodes present; the default is the twin's (9)."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (namespaces, bridges, mounts): run sudo ./scripts/test.sh")
    the_lab = Lab(log=print)
    if the_lab.leftovers():
        pytest.fail("a lab (or its leftovers) is already on this machine; the tests need the lab slot: "
                    "run `pvelab twin down` first")
    try:
        the_lab.up(LabSpec(node_count=3, pve_version=getattr(request.module, "PVE_VERSION", LabSpec.pve_version)))
        yield the_lab
    finally:
        the_lab.down(quiet=True)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until predicate() holds; return the seconds it took, or fail saying what never happened."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")



__all__ = ["fingerprint", "lab", "pvecm_add", "pvecm_create", "quorum_view", "ssh", "wait_until"]
