"""What a lab is made of: node names, addresses, interface and namespace names (pure, no I/O).

Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking space), which is never routed anywhere:
  link0 (corosync link 0, management, SSH)  198.18.0.0/24   node N at .10+N, host at .1
  link1 (corosync link 1)                   198.18.1.0/24   node N at .10+N, host at .1
  BMC network                               198.18.2.0/24   BMC of node N at .10+N, host at .1
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pvelab.errors import TwinError

LINKS = (0, 1)
LINK_SUBNETS = {0: ipaddress.ip_network("198.18.0.0/24"), 1: ipaddress.ip_network("198.18.1.0/24")}
BMC_SUBNET = ipaddress.ip_network("198.18.2.0/24")
HOST_OCTET = 1
FIRST_NODE_OCTET = 10
MAX_NODES = 16
PVE_VERSIONS = ("8", "9")
BMC_PORT = 623
BMC_USER = "admin"
MANAGEMENT_BRIDGE = "vmbr0"
PREFIX = "pvlab"  # every kernel object the twin makes starts with this, so leftovers are easy to find


@dataclass(frozen=True)
class NodeSpec:
    index: int  # 1-based

    @property
    def name(self) -> str:
        return f"pve{self.index}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    def link_addr(self, link: int) -> str:
        return str(LINK_SUBNETS[link].network_address + FIRST_NODE_OCTET + self.index)

    @property
    def bmc_addr(self) -> str:
        return str(BMC_SUBNET.network_address + FIRST_NODE_OCTET + self.index)

    def host_veth(self, link: int) -> str:
        """Host-side end of the node's link cable (at most 15 characters, a kernel limit)."""
        return f"{PREFIX}{self.index}l{link}"

    @staticmethod
    def node_ifname(link: int) -> str:
        return f"eth{link}"

    @staticmethod
    def address_ifname(link: int) -> str:
        """Where the link's address lives in the node: link0 on vmbr0 (eth0 is its port, as PVE's
        installer sets up the management network, so guests can join it), link1 on eth1."""
        return MANAGEMENT_BRIDGE if link == 0 else f"eth{link}"


@dataclass(frozen=True)
class LabSpec:
    node_count: int = 3
    pve_version: str = "9"
    nodes: tuple[NodeSpec, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.node_count <= MAX_NODES:
            raise TwinError(
                f"cannot build a lab of {self.node_count} nodes",
                f"choose --nodes between 1 and {MAX_NODES}",
            )
        if self.pve_version not in PVE_VERSIONS:
            raise TwinError(
                f"unknown PVE version '{self.pve_version}'",
                f"choose one of: {', '.join(PVE_VERSIONS)}",
            )
        object.__setattr__(self, "nodes", tuple(NodeSpec(i) for i in range(1, self.node_count + 1)))

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise TwinError(f"unknown node '{name}'", f"this lab has: {known}")

    def nodes_named(self, names: list[str]) -> list[NodeSpec]:
        return [self.node(n) for n in names]

    @staticmethod
    def bridge(link: int | None) -> str:
        """Bridge of a corosync link, or of the BMC network when link is None."""
        return f"{PREFIX}-bmc" if link is None else f"{PREFIX}-link{link}"

    @staticmethod
    def host_addr(link: int | None) -> str:
        subnet = BMC_SUBNET if link is None else LINK_SUBNETS[link]
        return str(subnet.network_address + HOST_OCTET)

    @staticmethod
    def prefixlen(link: int | None) -> int:
        return (BMC_SUBNET if link is None else LINK_SUBNETS[link]).prefixlen

    def etc_hosts(self) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{n.link_addr(0)}\t{n.name}.pvelab.test {n.name}" for n in self.nodes]
        return "\n".join(lines) + "\n"

    def etc_network_interfaces(self, node: NodeSpec) -> str:
        """The node's network as PVE's installer writes it (vmbr0 over eth0), plus link1 on eth1. The
        twin wires exactly this from the host; there is no gateway, since a lab is routed nowhere."""
        link1 = f"{node.link_addr(1)}/{self.prefixlen(1)}"
        return ("auto lo\niface lo inet loopback\n\niface eth0 inet manual\n\n"
                f"auto vmbr0\niface vmbr0 inet static\n\taddress {node.link_addr(0)}/{self.prefixlen(0)}\n"
                "\tbridge-ports eth0\n\tbridge-stp off\n\tbridge-fd 0\n\n"
                f"auto eth1\niface eth1 inet static\n\taddress {link1}\n\n"
                "source /etc/network/interfaces.d/*\n")

    def to_dict(self) -> dict[str, object]:
        return {"node_count": self.node_count, "pve_version": self.pve_version}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LabSpec:
        return cls(node_count=int(str(data["node_count"])), pve_version=str(data["pve_version"]))
