"""A real 3-node twin lab, shared by the integration tests and always torn down."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A fresh 3-node lab per test module, torn down after it even when tests fail."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (namespaces, bridges, mounts): run sudo ./scripts/test.sh")
    the_lab = Lab(log=print)
    if the_lab.leftovers():
        pytest.fail("a lab (or its leftovers) is already on this machine; the tests need the lab slot: "
                    "run `pvelab twin down` first")
    try:
        the_lab.up(LabSpec(node_count=3))
        yield the_lab
    finally:
        the_lab.down(quiet=True)


def ssh(lab: Lab, node: str, command: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    spec = lab.require_record().spec.node(node)
    return subprocess.run(lab.ssh_argv(spec, command), capture_output=True, text=True, timeout=timeout,
                          check=False)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until predicate() holds; return the seconds it took, or fail saying what never happened."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def quorum_view(lab: Lab, node: str) -> dict[str, str]:
    """`pvecm status` on a node as {field: value} ("Quorate", "Nodes", "Total votes", ...)."""
    out = ssh(lab, node, "pvecm status").stdout
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and not key.startswith(" "):
            fields[key.strip()] = value.strip()
    return fields


def fingerprint(lab: Lab, node: str) -> str:
    out = ssh(lab, node, "openssl x509 -in /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256").stdout
    return out.strip().split("=", 1)[1]


def pvecm_add(lab: Lab, node: str, host: str, password: str, fp: str) -> subprocess.CompletedProcess[str]:
    spec = lab.require_record().spec.node(node)
    argv = lab.ssh_argv(spec, f"pvecm add {host} --link0 {spec.link_addr(0)} --link1 {spec.link_addr(1)} "
                              f"--fingerprint {fp}")
    return subprocess.run(argv, input=password + "\n", capture_output=True, text=True, timeout=180, check=False)
