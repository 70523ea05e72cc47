"""The /nodes/{node}/network API on a node's files kept in a temporary directory and links as `ip`
would report them: PVE's listing (types, cidr, pending `changes`), edits that go to interfaces.new and
leave the running file alone, PVE's refusals that write nothing, revert, and what a reload does to the
node's links. The lab suite proves the same against a real node's kernel."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.api import schema, tasks
from pvelab.pve.api.routes import ApiException, Caller, Context, WithAttributes, handler_for
from pvelab.pve.network import apply, files, interfaces
from pvelab.twin.spec import LabSpec

ROOT = Caller("root@pam")
LINKS = {
    "lo": {"ifname": "lo", "link_type": "loopback", "flags": ["LOOPBACK", "UP"]},
    "eth0": {"ifname": "eth0", "link_type": "ether", "flags": ["UP"], "master": "vmbr0",
             "address": "ba:5e:00:00:00:01"},
    "eth1": {"ifname": "eth1", "link_type": "ether", "flags": ["UP"], "altnames": ["enp0s4"]},
    "eth2": {"ifname": "eth2", "link_type": "ether", "flags": [], "address": "ba:5e:00:00:00:02"},
    "vmbr0": {"ifname": "vmbr0", "link_type": "ether", "flags": ["UP"], "linkinfo": {"info_kind": "bridge"},
              "address": "ba:5e:00:00:00:01"},
    "tap100i0": {"ifname": "tap100i0", "link_type": "ether", "flags": ["UP"], "master": "vmbr0",
                 "linkinfo": {"info_kind": "tun"}, "address": "02:00:00:00:00:01"},
}


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A twin node's /etc/network (as the twin writes it) under tmp_path, its links from LINKS."""
    running = tmp_path / "interfaces"
    running.write_text(LabSpec().etc_network_interfaces(LabSpec().nodes[0]))
    monkeypatch.setattr(files, "INTERFACES", running)
    monkeypatch.setattr(files, "PENDING", tmp_path / "interfaces.new")
    monkeypatch.setattr(files, "LOCK", tmp_path / ".pve-interfaces.lock")
    monkeypatch.setattr(files, "ip_links", lambda: copy.deepcopy(LINKS))
    return tmp_path


def call(method: str, path: str, params: dict[str, Any] | None = None) -> Any:
    found = schema.match("9", method, path)
    assert found is not None, path
    endpoint, values = found
    typed = schema.verify(endpoint, {**(params or {}), **values}, form=False)
    return handler_for(method, endpoint.template, path)(Context(ROOT, "pve1"), typed)


def refusal(method: str, path: str, params: dict[str, Any]) -> tuple[int, str, dict[str, str]]:
    with pytest.raises(ApiException) as caught:
        call(method, path, params)
    return caught.value.status, str(caught.value), caught.value.errors


def returns(method: str, path: str) -> dict[str, Any]:
    found = schema.match("9", method, path)
    assert found is not None
    return found[0].info["returns"]


def test_the_twins_network_lists_as_a_fresh_pve_node_shows_it(node: Path) -> None:
    listed = call("GET", "/nodes/pve1/network")
    assert not isinstance(listed, WithAttributes)  # nothing pending
    by_name = {i["iface"]: i for i in listed}
    assert set(by_name) == {"eth0", "eth1", "eth2", "vmbr0"}  # no lo, no guest's tap
    vmbr0 = by_name["vmbr0"]
    assert (vmbr0["type"], vmbr0["cidr"], vmbr0["address"], vmbr0["netmask"], vmbr0["bridge_ports"]) == (
        "bridge", "198.18.0.11/24", "198.18.0.11", "24", "eth0")
    assert (vmbr0["autostart"], vmbr0["active"], vmbr0["method"], vmbr0["families"]) == (1, 1, "static", ["inet"])
    assert by_name["eth0"]["type"] == "eth" and "autostart" not in by_name["eth0"]
    assert by_name["eth1"]["altnames"] == ["enp0s4"]
    assert (by_name["eth2"]["exists"], by_name["eth2"]["method"], "active" in by_name["eth2"]) == (1, "manual", False)
    assert schema.returns_problems(returns("GET", "/nodes/pve1/network"), listed) == []
    assert [i["iface"] for i in call("GET", "/nodes/pve1/network", {"type": "any_bridge"})] == ["vmbr0"]
    assert [i["iface"] for i in call("GET", "/nodes/pve1/network", {"type": "eth"})] == ["eth0", "eth1", "eth2"]


def test_a_new_bridge_is_pending_until_the_network_is_reloaded(node: Path) -> None:
    running = files.INTERFACES.read_text()
    call("POST", "/nodes/pve1/network", {"iface": "vmbr1", "type": "bridge", "bridge_ports": "eth2",
                                         "cidr": "198.18.9.11/24", "autostart": True, "comments": "lab net"})
    assert files.INTERFACES.read_text() == running  # the running config is untouched
    pending = files.PENDING.read_text()
    assert pending.startswith(interfaces.HEADER)
    assert ("auto vmbr1\niface vmbr1 inet static\n\taddress 198.18.9.11/24\n\tbridge-ports eth2\n"
            "\tbridge-stp off\n\tbridge-fd 0\n#lab net\n") in pending
    assert "source /etc/network/interfaces.d/*" in pending  # lines PVE does not manage are kept
    listed = call("GET", "/nodes/pve1/network")
    assert isinstance(listed, WithAttributes)
    assert "+auto vmbr1" in listed.attributes["changes"]
    assert call("GET", "/nodes/pve1/network/vmbr1")["cidr"] == "198.18.9.11/24"
    call("DELETE", "/nodes/pve1/network")
    assert not files.PENDING.exists()
    assert not isinstance(call("GET", "/nodes/pve1/network"), WithAttributes)


def test_an_update_changes_what_it_names_and_deletes_what_it_is_told(node: Path) -> None:
    call("PUT", "/nodes/pve1/network/eth1", {"type": "eth", "cidr": "198.18.1.21/24", "mtu": 9000,
                                             "autostart": True})
    eth1 = call("GET", "/nodes/pve1/network/eth1")
    assert (eth1["cidr"], eth1["mtu"]) == ("198.18.1.21/24", 9000)
    call("PUT", "/nodes/pve1/network/eth1", {"type": "eth", "delete": "cidr,mtu"})
    eth1 = call("GET", "/nodes/pve1/network/eth1")
    assert ("cidr" not in eth1, "mtu" not in eth1, eth1["method"]) == (True, True, "manual")


@pytest.mark.parametrize(("params", "error"), [
    ({"iface": "vmbr0", "type": "bridge"}, {"iface": "interface already exists"}),
    ({"iface": "vmbr1", "type": "bridge", "bridge_ports": "eth0"},
     {"bridge_ports": "eth0 is already used on interface 'vmbr0'."}),
    ({"iface": "vmbr1", "type": "bridge", "cidr": "198.18.9.1/24", "address": "198.18.9.1", "netmask": "24"},
     {"address": "address conflicts with cidr"}),
    ({"iface": "vmbr1", "type": "bridge", "cidr6": "ff02::1/64"},
     {"address": "ff02::1 with type 'MULTICAST', cannot be used as host IPv6 address."}),
])
def test_bad_edits_get_pves_message_and_write_nothing(node: Path, params: dict[str, Any],
                                                      error: dict[str, str]) -> None:
    assert refusal("POST", "/nodes/pve1/network", params) == (400, "Parameter verification failed.", error)
    assert not files.PENDING.exists()


def test_refusals_of_the_writer_and_of_missing_interfaces(node: Path) -> None:
    status, message, _ = refusal("POST", "/nodes/pve1/network", {"iface": "vmbr9", "type": "OVSBridge"})
    assert (status, message) == (500, "Open VSwitch is not installed (need package 'openvswitch-switch')")
    status, message, errors = refusal("PUT", "/nodes/pve1/network/vmbr7", {"type": "bridge"})
    assert errors == {"iface": "interface does not exist"}
    status, message, _ = refusal("POST", "/nodes/pve1/network", {"iface": "vmbr1", "type": "bridge",
                                                                 "bridge_ports": "eth9"})
    assert (status, message) == (500, "bridge 'vmbr1' - unable to find bridge port 'eth9'")
    assert not files.PENDING.exists()
    call("PUT", "/nodes/pve1/network/vmbr0", {"type": "bridge", "bridge_ports": "eth0", "cidr": "198.18.0.11/24",
                                              "gateway": "198.18.0.1"})
    _, _, errors = refusal("PUT", "/nodes/pve1/network/eth1", {"type": "eth", "cidr": "198.18.1.11/24",
                                                               "gateway": "198.18.1.1"})
    assert errors == {"gateway": "Default gateway already exists on interface 'vmbr0'."}


class FakeKernel:
    """`ip` as apply.reload drives it: the commands it ran, links and addresses it would see."""

    def __init__(self, links: dict[str, dict[str, Any]], addresses: dict[str, set[str]]) -> None:
        self.links, self.addresses, self.ran = links, addresses, []

    def ip(self, *args: str) -> Any:
        self.ran.append(" ".join(args))
        return type("Done", (), {"returncode": 0, "stderr": ""})()


def test_a_reload_makes_new_bridges_and_removes_dropped_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    old = interfaces.parse(LabSpec().etc_network_interfaces(LabSpec().nodes[0])
                           + "\nauto vmbr8\niface vmbr8 inet manual\n\tbridge-ports none\n", LINKS, [])
    links = {**LINKS, "vmbr8": {"ifname": "vmbr8", "link_type": "ether", "linkinfo": {"info_kind": "bridge"}}}
    new = copy.deepcopy(old)
    del new["ifaces"]["vmbr8"]
    new["ifaces"]["vmbr1"] = {"type": "bridge", "autostart": 1, "bridge_ports": "eth2", "cidr": "198.18.9.11/24",
                              "families": ["inet"], "method": "static"}
    new["ifaces"]["bond0"] = {"type": "bond", "autostart": 1, "slaves": "eth2", "families": ["inet"]}
    kernel = FakeKernel(links, {"vmbr0": {"198.18.0.11/24"}, "eth1": {"198.18.1.11/24"}})
    monkeypatch.setattr(apply, "ip", kernel.ip)
    monkeypatch.setattr(files, "ip_links", lambda: kernel.links)
    monkeypatch.setattr(apply, "live_addresses", lambda name: kernel.addresses.get(name, set()))
    log: list[str] = []
    apply.reload(old, new, log.append)
    assert "link del vmbr8" in kernel.ran
    assert kernel.ran.index("link add vmbr1 type bridge") < kernel.ran.index("link set eth2 master vmbr1")
    assert "addr add 198.18.9.11/24 dev vmbr1" in kernel.ran
    assert not any(cmd.startswith("addr") and ("vmbr0" in cmd or "eth1" in cmd) for cmd in kernel.ran)  # as it was
    assert not any("tap100i0" in cmd for cmd in kernel.ran)  # a guest's NIC stays on its bridge
    # a bridge keeps its first port's MAC (a guest's tap with a lower one joining must not move it)
    assert "link set vmbr1 address ba:5e:00:00:00:02" in kernel.ran
    assert not any(cmd.startswith("link set vmbr0 address") for cmd in kernel.ran)  # it has it already
    assert log == ["bond0 : warning: bond0: cannot create bond link: this kernel has no bonding support (the "
                   "twin's; a PVE node has it)"]


def test_a_bridges_hwaddress_line_is_its_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    old = interfaces.parse(LabSpec().etc_network_interfaces(LabSpec().nodes[0]), LINKS, [])
    new = copy.deepcopy(old)
    new["ifaces"]["vmbr0"]["options"] = ["hwaddress BA:5E:00:00:00:99"]
    kernel = FakeKernel(LINKS, {"vmbr0": {"198.18.0.11/24"}, "eth1": {"198.18.1.11/24"}})
    monkeypatch.setattr(apply, "ip", kernel.ip)
    monkeypatch.setattr(files, "ip_links", lambda: kernel.links)
    monkeypatch.setattr(apply, "live_addresses", lambda name: kernel.addresses.get(name, set()))
    apply.reload(old, new, [].append)
    assert "link set vmbr0 address BA:5E:00:00:00:99" in kernel.ran


def test_a_reload_is_a_srvreload_task_that_moves_the_pending_file(node: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    started: list[tuple[str, str]] = []
    ran: list[tuple[Any, Any]] = []

    def start(node_name: str, kind: str, ident: str, user: str, work: Any) -> str:
        started.append((kind, ident))
        work(lambda line: None)
        return "UPID:pve1:1:1:1:srvreload:networking:root@pam:"

    monkeypatch.setattr(tasks, "start", start)
    monkeypatch.setattr(apply, "reload", lambda old, new, log: ran.append((old, new)))
    call("POST", "/nodes/pve1/network", {"iface": "vmbr1", "type": "bridge", "autostart": True})
    assert call("PUT", "/nodes/pve1/network").startswith("UPID:pve1:")
    assert started == [("srvreload", "networking")]
    assert not files.PENDING.exists() and "auto vmbr1" in files.INTERFACES.read_text()
    old, new = ran[0]
    assert "vmbr1" not in old["ifaces"] and "vmbr1" in new["ifaces"]
