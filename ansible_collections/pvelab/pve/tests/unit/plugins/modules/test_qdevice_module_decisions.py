"""pve_qdevice with a fake node shell: set up once on an even cluster, no change when in place, a
different qnetd host or an odd node count refused before check mode, removal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_qdevice_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_qdevice

FIXTURES = Path(__file__).parents[2] / "fixtures"
WITH_DEVICE = "quorum {\n  provider: corosync_votequorum\n  device {\n    model: net\n    net {\n" \
              "      algorithm: ffsplit\n      host: 198.18.0.13\n      tls: on\n    }\n    votes: 1\n  }\n}\n"


class Node:
    def __init__(self, status: str, conf: str) -> None:
        self.status, self.conf, self.commands, self.host = status, conf, [], "198.18.0.11"

    def run(self, command: str, stdin: str | None = None, timeout: float = 300) -> tuple[int, str, str]:
        self.commands.append(command)
        if command == "pvecm status":
            return 0, self.status, ""
        if command == "cat /etc/pve/corosync.conf":
            return 0, self.conf, ""
        if command.startswith("pvecm qdevice "):
            return 0, "", ""
        raise AssertionError(command)


def params(**given: Any) -> dict[str, Any]:
    spec = pve_qdevice.ARGUMENT_SPEC
    return {name: {"host": "198.18.0.11", **given}.get(name, option.get("default")) for name, option in spec.items()}


def two_nodes(monkeypatch: pytest.MonkeyPatch, conf: str) -> Node:
    status = (FIXTURES / "pvecm-status-2nodes-qdevice.txt").read_text()
    node = Node(status, conf)
    monkeypatch.setattr(pve_qdevice_ops.SshRunner, "from_params", classmethod(lambda cls, p, host: node))
    return node


def test_setup_once(monkeypatch: pytest.MonkeyPatch) -> None:
    node = two_nodes(monkeypatch, "quorum {\n  provider: corosync_votequorum\n}\n")
    preview = pve_qdevice_ops.ensure_qdevice(params(qnetd_address="198.18.0.13"), check_mode=True)
    assert "would be set up" in preview["msg"] and not any("qdevice" in c for c in node.commands)
    pve_qdevice_ops.ensure_qdevice(params(qnetd_address="198.18.0.13"), check_mode=False)
    assert node.commands[-1] == "pvecm qdevice setup 198.18.0.13"
    node.conf = WITH_DEVICE
    assert pve_qdevice_ops.ensure_qdevice(params(qnetd_address="198.18.0.13"), False)["changed"] is False


@pytest.mark.parametrize("check_mode", [False, True])
def test_another_qnetd_host_is_refused(monkeypatch: pytest.MonkeyPatch, check_mode: bool) -> None:
    node = two_nodes(monkeypatch, WITH_DEVICE)
    with pytest.raises(PveError, match="already has a QDevice with qnetd at 198.18.0.13: remove it first"):
        pve_qdevice_ops.ensure_qdevice(params(qnetd_address="198.18.0.99"), check_mode)
    assert not any(c.startswith("pvecm qdevice") for c in node.commands)


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_odd_cluster_needs_force(monkeypatch: pytest.MonkeyPatch, check_mode: bool) -> None:
    node = two_nodes(monkeypatch, "quorum {\n}\n")
    node.status = (FIXTURES / "pvecm-status-3nodes.txt").read_text()
    with pytest.raises(PveError, match="has 3 nodes.*force: true"):
        pve_qdevice_ops.ensure_qdevice(params(qnetd_address="198.18.0.14"), check_mode)
    assert not any(c.startswith("pvecm qdevice") for c in node.commands)


def test_absent_removes(monkeypatch: pytest.MonkeyPatch) -> None:
    node = two_nodes(monkeypatch, WITH_DEVICE)
    pve_qdevice_ops.ensure_qdevice(params(state="absent"), check_mode=False)
    assert node.commands[-1] == "pvecm qdevice remove"
