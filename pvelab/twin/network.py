"""The lab's wiring: bridges on the host, one network namespace per node, and fault injection.

Each node's namespace holds eth0 (link0) and eth1 (link1), veth cables whose host ends sit on
the link bridges. Partitions are nft bridge rules between those host ends, so the host can
still reach a cut-off node (as a student's laptop on the management side would).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pvelab.errors import TwinError
from pvelab.twin.host import run, succeeds
from pvelab.twin.spec import LINKS, PREFIX, LabSpec, NodeSpec

NETNS_DIR = Path("/run/netns")
NAMED_PREFIX = re.compile(r"pvl\d\d")


def ip(*args: str, netns: str | None = None) -> str:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    return run([*prefix, *args])


def existing_netns(prefix: str = PREFIX) -> list[str]:
    """A lab's namespaces, found by its prefix (pvlab for the default lab)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix + "-"))


def existing_links(prefix: str = PREFIX) -> list[str]:
    out = json.loads(run(["ip", "-j", "link", "show"]) or "[]")
    return sorted(link["ifname"] for link in out if link["ifname"].startswith(prefix))


def named_prefixes_in_use() -> set[str]:
    """Prefixes (pvl01...) of named labs that have a namespace or a link on this host."""
    names = [p.name for p in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
    names += [link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"]) or "[]")]
    return {m.group(0) for n in names if (m := NAMED_PREFIX.match(n))}


def nft_table_exists(prefix: str = PREFIX) -> bool:
    """The lab's bridge-family nft table (named by its prefix) holds its partition rules."""
    return succeeds(["nft", "list", "table", "bridge", prefix])


@dataclass(frozen=True)
class LabNetwork:
    spec: LabSpec

    def create(self) -> None:
        for link in (*LINKS, None):
            self._create_bridge(link)
        for node in self.spec.nodes:
            self._create_node_netns(node)
        if self.spec.nas is not None:
            self._create_storage_server_netns(self.spec.nas)
        self._create_nft_table()

    def _create_bridge(self, link: int | None) -> None:
        bridge = self.spec.bridge(link)
        ip("link", "add", bridge, "type", "bridge")
        # Keep the host's iptables (docker, firewalls) out of bridged lab traffic.
        ip("link", "set", bridge, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0")
        ip("addr", "add", f"{self.spec.host_addr(link)}/{self.spec.prefixlen(link)}", "dev", bridge)
        if link is None:
            for node in self.spec.machines:  # BMCs live on the host side, like a management network
                ip("addr", "add", f"{node.bmc_addr}/32", "dev", bridge)
        ip("link", "set", bridge, "up")

    def _create_node_netns(self, node: NodeSpec) -> None:
        ip("netns", "add", node.netns)
        ip("link", "set", "lo", "up", netns=node.netns)
        # PVE's management network: the vmbr0 bridge holds the address, eth0 is its port.
        bridge = node.address_ifname(0)
        ip("link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0", netns=node.netns)
        for link in LINKS:
            host_end, node_end = node.host_veth(link), node.node_ifname(link)
            ip("link", "add", host_end, "type", "veth", "peer", "name", node_end, "netns", node.netns)
            ip("link", "set", host_end, "master", self.spec.bridge(link), "up")
            if node.address_ifname(link) != node_end:
                ip("link", "set", node_end, "master", node.address_ifname(link), netns=node.netns)
            ip("addr", "add", f"{node.link_addr(link)}/{self.spec.prefixlen(link)}", "dev",
               node.address_ifname(link), netns=node.netns)
            ip("link", "set", node_end, "up", netns=node.netns)
        # A bridge left to itself takes its lowest port MAC, so a guest's tap joining can change it and
        # the host keeps sending to the old one (no answer for half a minute, until ARP asks again);
        # ifupdown2 on PVE gives the bridge its first port's MAC, and it stays.
        port = json.loads(ip("-json", "link", "show", node.node_ifname(0), netns=node.netns))[0]
        ip("link", "set", bridge, "address", port["address"], netns=node.netns)
        ip("link", "set", bridge, "up", netns=node.netns)

    def _create_storage_server_netns(self, nas: NodeSpec) -> None:
        """The storage server: one NIC on link0 (the nodes' storage network here), its address there."""
        ip("netns", "add", nas.netns)
        ip("link", "set", "lo", "up", netns=nas.netns)
        host_end, nas_end = nas.host_veth(0), nas.node_ifname(0)
        ip("link", "add", host_end, "type", "veth", "peer", "name", nas_end, "netns", nas.netns)
        ip("link", "set", host_end, "master", self.spec.bridge(0), "up")
        ip("addr", "add", f"{nas.link_addr(0)}/{self.spec.prefixlen(0)}", "dev", nas_end, netns=nas.netns)
        ip("link", "set", nas_end, "up", netns=nas.netns)

    def _create_nft_table(self) -> None:
        run(["nft", "add", "table", "bridge", self.spec.prefix])
        run(["nft", "add", "chain", "bridge", self.spec.prefix, "partition",
             "{ type filter hook forward priority 0; policy accept; }"])

    # -- fault injection ------------------------------------------------------------------------
    def partition(self, cut: Iterable[NodeSpec], others: Iterable[NodeSpec], links: Iterable[int]) -> int:
        """Drop all frames between each node of `cut` and each of `others`; returns rules added."""
        added = 0
        cut, others = list(cut), list(others)
        for link in links:
            for a in cut:
                for b in others:
                    if a == b:
                        continue
                    for src, dst in ((a, b), (b, a)):
                        run(["nft", "add", "rule", "bridge", self.spec.prefix, "partition",
                             "iifname", src.host_veth(link), "oifname", dst.host_veth(link), "drop"])
                        added += 1
        return added

    def heal(self) -> None:
        run(["nft", "flush", "chain", "bridge", self.spec.prefix, "partition"])

    # -- teardown -------------------------------------------------------------------------------
    @staticmethod
    def destroy_all(prefix: str = PREFIX) -> list[str]:
        """Remove every namespace, link and nft table of the lab with this prefix, whether or not a
        record exists (other labs' objects have other prefixes and stay)."""
        removed = []
        for name in existing_netns(prefix):
            run(["ip", "netns", "delete", name], check=False)
            removed.append(f"netns {name}")
        for name in existing_links(prefix):
            run(["ip", "link", "delete", name], check=False)
            removed.append(f"link {name}")
        if nft_table_exists(prefix):
            run(["nft", "delete", "table", "bridge", prefix], check=False)
            removed.append(f"nft table bridge {prefix}")
        return removed


def require_netns_support(prefix: str = PREFIX) -> None:
    probe = f"{prefix}-probe"  # the lab's own, so labs coming up at once do not race for one name
    if not succeeds(["ip", "netns", "add", probe]):
        raise TwinError(
            "cannot create network namespaces here",
            "run on a host (or a privileged container) that allows 'ip netns add'",
        )
    run(["ip", "netns", "delete", probe], check=False)
