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
