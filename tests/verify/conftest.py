"""Testinfra verify suite: read-only checks of a formed cluster, run on every node of pve_nodes.

Used by molecule verify, playbooks/verify.yml and (later) the grader:
  pytest tests/verify --connection=ansible --ansible-inventory=inventory/twin --hosts=pve_nodes
Every failure message says what is wrong on which node and what to look at.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra.utils.ansible_runner

from pvelab.grade.access import ClusterAccess
from pvelab.grade.roster import NodeAddress, Student

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))  # finds the twin's inventory plugin
# testinfra runs ansible-inventory and ansible: take the ones installed beside this pytest
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """Every node of pve_nodes with its inventory variables."""
    inventory = request.config.getoption("ansible_inventory") or str(REPO / "inventory" / "twin")
    runner = testinfra.utils.ansible_runner.AnsibleRunner(inventory)
    hosts = runner.get_hosts("pve_nodes")
    variables = {name: runner.get_variables(name) for name in hosts}
    for name in TEMPLATED:  # an expression in the inventory: its value as a play would see it
        if hosts and isinstance(variables[hosts[0]].get(name), str) and "{{" in variables[hosts[0]][name]:
            for host, value in templated(inventory, name).items():
                variables[host][name] = value
    return variables


# Variables the checks read that an inventory may write as an expression (the twin's storages
# depend on whether its lab has a storage server); the inventory's raw values are not templated.
TEMPLATED = ("pve_storage_definitions",)


def templated(inventory: str, name: str) -> dict[str, Any]:
    """Each node's value of `name`, templated by Ansible itself (its debug module, one line per host)."""
    done = subprocess.run(["ansible", "-i", inventory, "pve_nodes", "-o", "-m", "ansible.builtin.debug", "-a",
                           f"var={name}"], capture_output=True, text=True, check=False)
    found = dict(re.findall(r"^(\S+) \| SUCCESS => (\{.*\})$", done.stdout, re.M))
    if done.returncode != 0 or not found:
        raise RuntimeError(f"ansible could not template {name}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return {host: json.loads(text)[name] for host, text in found.items()}


@pytest.fixture(scope="module")
def node(host: Any) -> str:
    return str(host.ansible.get_variables()["inventory_hostname"])


def resolved(variables: dict[str, Any], name: str) -> Any:
    """An inventory value; one that only names another variable ("{{ other }}") is that variable's value."""
    value = variables.get(name)
    found = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", str(value)) if isinstance(value, str) else None
    return variables.get(found.group(1)) if found else value


@pytest.fixture(scope="module")
def access(node: str, cluster: dict[str, dict[str, Any]]) -> Iterator[ClusterAccess]:
    """This node's API and shell as the grader's probes read them (only this node: every node must agree)."""
    v = cluster[node]
    keys = {"api_user": resolved(v, "pve_api_user") or "root@pam",
            "api_password": resolved(v, "pve_api_password") or v.get("pve_root_password"),
            "api_token_id": resolved(v, "pve_api_token_id"), "api_token_secret": resolved(v, "pve_api_token_secret"),
            "ssh_user": v.get("ansible_user", "root"), "ssh_key_file": v.get("ansible_ssh_private_key_file"),
            "ssh_known_hosts_file": v.get("pve_ssh_known_hosts_file"), "bmc_user": v.get("bmc_user"),
            "bmc_password": v.get("bmc_password"), "bmc_port": v.get("bmc_port")}
    student = Student(id=node, nodes=(NodeAddress(node, str(v.get("pve_api_host") or v["ansible_host"]),
                                                  v.get("bmc_address")),),
                      access={k: value for k, value in keys.items() if value is not None})
    reader = ClusterAccess(student, timeout=30)
    try:
        yield reader
    finally:
        reader.close()  # its SSH connection


# -- the checklist: one line per failed check, for people (verify.yml, the grader) ---------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--checklist", metavar="PATH",
                     help="write one line per check (PASS/FAIL, node, what is wrong and what to do) to PATH")


def check_line(report: pytest.TestReport) -> str:
    """'FAIL pve3: <the check's own message>' - the message a check asserts with, without pytest's dump."""
    test, _, param = report.nodeid.split("::")[-1].partition("[")
    node = param.rstrip("]").split("://")[-1] or "-"
    if report.passed:
        return f"PASS {node}: {test.removeprefix('test_').replace('_', ' ')}"
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr).splitlines()[-1]
    message = message.split("\nassert ")[0].removeprefix("AssertionError: ").replace("\n", " ").strip()
    return f"FAIL {node}: {message.removeprefix(node + ': ')}"


class Checklist:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped:  # a part of the lab the inventory does not describe: not a check
            return
        if report.when == "call" or (report.when == "setup" and report.failed):
            self.lines.append(check_line(report))

    def pytest_sessionfinish(self) -> None:
        failed = sum(line.startswith("FAIL") for line in self.lines)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        summary = f"{len(self.lines) - failed} passed, {failed} failed"
        self.path.write_text("\n".join([*sorted(self.lines, key=lambda line: not line.startswith("FAIL")), summary])
                             + "\n")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("checklist", default=None)
    if path:
        config.pluginmanager.register(Checklist(Path(path)), "pvelab-checklist")
