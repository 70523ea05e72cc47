"""Testinfra verify suite: read-only checks of a formed cluster, run on every node of pve_nodes.

Used by molecule verify, playbooks/verify.yml and (later) the grader:
  pytest tests/verify --connection=ansible --ansible-inventory=inventory/twin --hosts=pve_nodes
Every failure message says what is wrong on which node and what to look at.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra.utils.ansible_runner

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # the parsers the modules use
os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))  # finds the twin's inventory plugin
# testinfra runs ansible-inventory and ansible: take the ones installed beside this pytest
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """Every node of pve_nodes with its inventory variables."""
    inventory = request.config.getoption("ansible_inventory") or str(REPO / "inventory" / "twin")
    runner = testinfra.utils.ansible_runner.AnsibleRunner(inventory)
    return {name: runner.get_variables(name) for name in runner.get_hosts("pve_nodes")}


@pytest.fixture(scope="module")
def node(host: Any) -> str:
    return str(host.ansible.get_variables()["inventory_hostname"])


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
