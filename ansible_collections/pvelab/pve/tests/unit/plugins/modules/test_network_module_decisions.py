"""pve_network against a fake node API: a bridge made once and applied, changed with its whole state (PVE's
update forgets an address it is not given), emptied of its ports, removed; check mode and diff; refusals
(a type change, a port the node lacks, a port of another bridge) before check mode."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_network_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_network
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import module_params


class FakeNode:
    """GET/POST/PUT/DELETE /nodes/pve1/network as PVE answers them (listing as the API shows it)."""

    ifaces: dict[str, dict[str, Any]]
    calls: list[tuple[str, str, dict[str, Any]]]

    def __init__(self, host: str, password: str | None = None) -> None:
        pass

    @classmethod
    def from_params(cls, params: dict[str, Any], host: str | None = None) -> FakeNode:
        return cls(params["api_host"])

    def get(self, path: str, /, **params: Any) -> Any:
        return [{"iface": name, **entry} for name, entry in self.ifaces.items()]

    def post(self, path: str, /, **params: Any) -> Any:
        self.calls.append(("POST", path, params))
        self.ifaces[params["iface"]] = {k: v for k, v in params.items() if k != "iface"}

    def put(self, path: str, /, **params: Any) -> Any:
        self.calls.append(("PUT", path, params))
        if path.endswith("/network"):
            return "UPID:pve1:0000AAAA:0000BBBB:6740A000:srvreload:networking:root@pam:"
        entry = self.ifaces[path.rsplit("/", 1)[1]]
        for key in (params.get("delete") or "").split(","):
            entry.pop(key, None)
        entry.update({k: v for k, v in params.items() if k != "delete" and v is not None})
        return None

    def delete(self, path: str, /, **params: Any) -> Any:
        self.calls.append(("DELETE", path, params))
        del self.ifaces[path.rsplit("/", 1)[1]]

    def wait_for_task(self, node: str, upid: str, timeout: float = 300) -> list[str]:
        return ["TASK OK"]


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> type[FakeNode]:
    FakeNode.ifaces = {
        "eth0": {"type": "eth", "method": "manual"}, "eth1": {"type": "eth", "method": "manual"},
        "vmbr0": {"type": "bridge", "bridge_ports": "eth0", "cidr": "198.18.0.11/24", "autostart": 1}}
    FakeNode.calls = []
    monkeypatch.setattr(pve_network_ops, "PveApi", FakeNode)
    return FakeNode


def options(**given: Any) -> dict[str, Any]:
    return module_params(pve_network.ARGUMENT_SPEC, **{"api_host": "198.18.0.11", "api_password": "pw",
                                                       "node": "pve1", "iface": "vmbr1", **given})


def test_a_bridge_is_made_once_and_the_network_applied(node: type[FakeNode]) -> None:
    preview = pve_network_ops.ensure_network(options(bridge_ports=["eth1"], cidr="198.18.9.1/24"), True)
    assert preview["msg"] == "interface 'vmbr1' on node 'pve1' would be created and the network reloaded"
    assert preview["diff"] == {"before": {}, "after": {"type": "bridge", "autostart": 1, "bridge_ports": ["eth1"],
                                                       "cidr": "198.18.9.1/24"}}
    assert node.calls == []
    done = pve_network_ops.ensure_network(options(bridge_ports=["eth1"], cidr="198.18.9.1/24"), False)
    assert done["changed"] and done["reload_log"] == ["TASK OK"]
    assert node.calls == [("POST", "/nodes/pve1/network", {"iface": "vmbr1", "type": "bridge", "autostart": 1,
                                                           "bridge_ports": "eth1", "cidr": "198.18.9.1/24"}),
                          ("PUT", "/nodes/pve1/network", {})]
    again = pve_network_ops.ensure_network(options(bridge_ports=["eth1"], cidr="198.18.9.1/24"), False)
    assert again == {"changed": False, "iface": "vmbr1", "node": "pve1"}


def test_a_change_sends_the_whole_state_and_emptied_ports_are_deleted(node: type[FakeNode]) -> None:
    node.ifaces["vmbr1"] = {"type": "bridge", "bridge_ports": "eth1", "cidr": "198.18.9.1/24", "autostart": 1,
                            "comments": "lab\n"}
    done = pve_network_ops.ensure_network(options(bridge_ports=[], comments="lab", apply=False), False)
    assert done["diff"]["before"]["bridge_ports"] == ["eth1"] and "bridge_ports" not in done["diff"]["after"]
    assert node.calls == [("PUT", "/nodes/pve1/network/vmbr1", {"delete": "bridge_ports", "type": "bridge",
                                                                "autostart": 1, "cidr": "198.18.9.1/24",
                                                                "comments": "lab\n"})]


def test_removed_then_gone(node: type[FakeNode]) -> None:
    node.ifaces["vmbr1"] = {"type": "bridge", "autostart": 1}
    done = pve_network_ops.ensure_network(options(state="absent"), False)
    assert done["changed"] and node.calls[0] == ("DELETE", "/nodes/pve1/network/vmbr1", {})
    assert pve_network_ops.ensure_network(options(state="absent"), False)["changed"] is False


@pytest.mark.parametrize(("given", "message"), [
    ({"iface": "eth1"}, "interface 'eth1' on node 'pve1' is a eth, not a bridge: its type cannot change"),
    ({"bridge_ports": ["eth7"]}, "bridge 'vmbr1' cannot take port eth7: node 'pve1' has no such interface"),
    ({"bridge_ports": ["eth0"]}, "bridge 'vmbr1' cannot take port eth0 (on vmbr0): a port belongs to one bridge"),
])
def test_refusals_come_before_check_mode(node: type[FakeNode], given: dict[str, Any], message: str) -> None:
    with pytest.raises(PveError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pve_network_ops.ensure_network(options(**given), True)
    assert node.calls == []
