"""What a lab is made of: node names, addresses, interface and namespace names (pure, no I/O).

Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking space), which is never routed anywhere.
The default lab (slot 0) has:
  link0 (corosync link 0, management, SSH)  198.18.0.0/24   node N at .10+N, host at .1
  link1 (corosync link 1)                   198.18.1.0/24   node N at .10+N, host at .1
  BMC network                               198.18.2.0/24   BMC of node N at .10+N, host at .1
A named lab (`pvelab twin up --lab NAME`) takes a free slot K (1..MAX_SLOT) and the three /24s after
those of slot K-1 (198.18.3K.0/24 onwards, counting on into 198.19), and its kernel objects start with
pvlKK instead of pvlab, so labs side by side share nothing but the host.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pvelab.errors import TwinError

LINKS = (0, 1)
LAB_SPACE = ipaddress.ip_network("198.18.0.0/15")
SUBNETS_PER_LAB = 3  # link0, link1, BMC network
MAX_SLOT = 99  # two digits in the names; 100 labs x 3 /24s fit the /15's 512
HOST_OCTET = 1
FIRST_NODE_OCTET = 10
MAX_NODES = 16
PVE_VERSIONS = ("8", "9")
BMC_PORT = 623
BMC_USER = "admin"
MANAGEMENT_BRIDGE = "vmbr0"
STORAGE_SERVER = "nas"
STORAGE_SERVER_OCTET = 5
ISCSI_TARGET = "iqn.2026-12.test.pvelab:nas.store1"  # the storage server's one target
ISCSI_PORT = 3260
ISCSI_LUNS = 3  # LUNs 1..3 of the target (LUN 0 is tgt's controller)
ISCSI_LUN_SIZE = 2 * 1024 ** 3  # bytes, sparse files on the host
NFS_EXPORT = "/vmstore"  # the storage server's one NFS export (v3 path = v4 pseudo path)
NFS_MOUNTD_PORT = 20048  # MOUNT protocol, pinned as NFS servers commonly do (rpcbind maps it)
PREFIX = "pvlab"  # every kernel object the default lab makes starts with this, so leftovers are easy to find


def prefix_of(slot: int) -> str:
    """The name prefix of a lab's kernel objects: pvlab for the default lab, pvl01..pvl99 for named
    ones (five characters either way, so one lab's prefix never starts another's)."""
    return PREFIX if slot == 0 else f"pvl{slot:02d}"


def subnet(slot: int, link: int | None) -> ipaddress.IPv4Network:
    """A lab's /24 for a corosync link, or for its BMC network when link is None."""
    offset = SUBNETS_PER_LAB * slot + (2 if link is None else link)
    return ipaddress.IPv4Network((int(LAB_SPACE.network_address) + 256 * offset, 24))


@dataclass(frozen=True)
class NodeSpec:
    index: int  # 1-based
    slot: int = 0  # the lab's slot: 0 is the default lab

    @property
    def name(self) -> str:
        return f"pve{self.index}"

    @property
    def netns(self) -> str:
        return f"{prefix_of(self.slot)}-{self.name}"

    @property
    def cgroup(self) -> str:
        """The node's control group: its name in the default lab (as always), its namespace's in a named one."""
        return self.name if self.slot == 0 else self.netns

    def link_addr(self, link: int) -> str:
        return str(subnet(self.slot, link).network_address + FIRST_NODE_OCTET + self.index)

    @property
    def bmc_addr(self) -> str:
        return str(subnet(self.slot, None).network_address + FIRST_NODE_OCTET + self.index)

    def host_veth(self, link: int) -> str:
        """Host-side end of the node's link cable (at most 15 characters, a kernel limit)."""
        return f"{prefix_of(self.slot)}{self.index}l{link}"

    @staticmethod
    def node_ifname(link: int) -> str:
        return f"eth{link}"

    @staticmethod
    def address_ifname(link: int) -> str:
        """Where the link's address lives in the node: link0 on vmbr0 (eth0 is its port, as PVE's
        installer sets up the management network, so guests can join it), link1 on eth1."""
        return MANAGEMENT_BRIDGE if link == 0 else f"eth{link}"


@dataclass(frozen=True)
class StorageServerSpec(NodeSpec):
    """The lab's storage server `nas` (`pvelab twin up --storage-server`): not a PVE node, a machine on
    link0 (the lab's storage network too) at .5, with its BMC at .5 of the BMC network, serving iSCSI
    LUNs (tgtd) to the nodes (docs/twin.md)."""

    @property
    def name(self) -> str:
        return STORAGE_SERVER

    def link_addr(self, link: int) -> str:
        return str(subnet(self.slot, link).network_address + STORAGE_SERVER_OCTET)

    @property
    def bmc_addr(self) -> str:
        return str(subnet(self.slot, None).network_address + STORAGE_SERVER_OCTET)

    def host_veth(self, link: int) -> str:
        return f"{prefix_of(self.slot)}nasl{link}"

    @staticmethod
    def address_ifname(link: int) -> str:
        return f"eth{link}"

    @property
    def control_port(self) -> int:
        """tgtd's management channel (/var/run/tgtd/socket.N): one per lab, never tgtd's default 0."""
        return 1000 + self.slot

    @property
    def iqn(self) -> str:
        return ISCSI_TARGET

    def portal(self) -> str:
        return f"{self.link_addr(0)}:{ISCSI_PORT}"


@dataclass(frozen=True)
class LabSpec:
    node_count: int = 3
    pve_version: str = "9"
    name: str = ""  # "" is the default lab; others are named with --lab
    slot: int = 0
    osd_disks: int = 1  # data disks per node, for Ceph OSDs (/dev/sdb, ...)
    osd_size: int = 16 * 1024 ** 3  # bytes, sparse: Ceph OSDs under ~8 GiB die of ENOSPC under `rados bench`
    storage_server: bool = False  # a storage server `nas` beside the nodes (iSCSI)
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
        if not 0 <= self.slot <= MAX_SLOT or (self.slot == 0) != (self.name == ""):
            raise TwinError(f"lab '{self.name}' cannot take slot {self.slot}",
                            f"named labs take slots 1 to {MAX_SLOT}, the default lab slot 0")
        object.__setattr__(self, "nodes", tuple(NodeSpec(i, self.slot) for i in range(1, self.node_count + 1)))

    @property
    def prefix(self) -> str:
        return prefix_of(self.slot)

    def same_build(self, other: LabSpec) -> bool:
        """Whether `other` asks for this lab as it is (its slot is the lab's business, not the asker's)."""
        return ((self.node_count, self.pve_version, self.name, self.osd_disks, self.osd_size, self.storage_server)
                == (other.node_count, other.pve_version, other.name, other.osd_disks, other.osd_size,
                    other.storage_server))

    @property
    def nas(self) -> StorageServerSpec | None:
        return StorageServerSpec(0, self.slot) if self.storage_server else None

    @property
    def machines(self) -> tuple[NodeSpec, ...]:
        """Everything with power and a BMC: the nodes, and the storage server if the lab has one."""
        return (*self.nodes, *([self.nas] if self.nas else []))

    def node(self, name: str) -> NodeSpec:
        for node in self.machines:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.machines)
        raise TwinError(f"unknown node '{name}'", f"this lab has: {known}")

    def nodes_named(self, names: list[str]) -> list[NodeSpec]:
        return [self.node(n) for n in names]

    def bridge(self, link: int | None) -> str:
        """Bridge of a corosync link, or of the BMC network when link is None."""
        return f"{self.prefix}-bmc" if link is None else f"{self.prefix}-link{link}"

    def subnet(self, link: int | None) -> ipaddress.IPv4Network:
        return subnet(self.slot, link)

    def host_addr(self, link: int | None) -> str:
        return str(self.subnet(link).network_address + HOST_OCTET)

    def prefixlen(self, link: int | None) -> int:
        return self.subnet(link).prefixlen

    def etc_hosts(self) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{n.link_addr(0)}\t{n.name}.pvelab.test {n.name}" for n in self.machines]
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
        return {"node_count": self.node_count, "pve_version": self.pve_version, "name": self.name,
                "slot": self.slot, "osd_disks": self.osd_disks, "osd_size": self.osd_size,
                "storage_server": self.storage_server}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LabSpec:
        return cls(node_count=int(str(data["node_count"])), pve_version=str(data["pve_version"]),
                   name=str(data.get("name", "")), slot=int(str(data.get("slot", 0))),
                   osd_disks=int(str(data.get("osd_disks", 0))),  # records from before data disks had none
                   osd_size=int(str(data.get("osd_size", cls.osd_size))),
                   storage_server=bool(data.get("storage_server", False)))
