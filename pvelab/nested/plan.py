"""A class of nested labs on an L0 host or over the nodes of an L0 cluster: for each student three
nodes, each a VM (its VMID, bridges, MACs), an answer file and an answer disc; all of it derived from
a few class settings, so a second run plans the same and an added student changes no one else's lab.

Student k (0-based, in class order) gets:
  L0 host        `hosts` taken in turn, in their order, passing those that are full (`capacity`
                 students each; 0: no limit): an added student moves no one
  VMIDs          first_vmid + 10 * (k + 1) + n       node n = 1, 2, 3
  bridges        vmbr{first_bridge + 2k} (link0: management, corosync link 0, SSH)
                 vmbr{first_bridge + 2k + 1} (link1: corosync link 1)
  addresses      the k-th pair of /24s of `network`: link0 .{10 + n}, the L0 host at .1 (gateway);
                 link1 the same host number in the next /24 (the first-boot hook's rule, first-boot.sh)
  MACs           BC:24:11 (Proxmox's prefix) : VMID high byte : VMID low byte : NIC index
  names          pve{n}.{student}.{domain}
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pvelab.nested import answer, vm
from pvelab.nested.vm import VmShape, create_params

NODES = 3
OS_DISK_INDEX = "1"  # in answer.planned_machine, the OS disk probed after the OSD disk


class PlanError(ValueError):
    """A class that cannot be planned on this L0 host: the message says what to change."""


@dataclass(frozen=True)
class L0Host:
    """An L0 host (a PVE node of the L0 cluster) and how many students' labs it takes (0: no limit)."""
    node: str
    capacity: int = 0

    @classmethod
    def of(cls, node: Any, capacity: Any) -> L0Host:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            raise PlanError(f"L0 host {node}: its capacity is a number of students (0: no limit), not {capacity!r}")
        return cls(str(node), capacity)


@dataclass(frozen=True)
class NestedClass:
    students: tuple[str, ...]
    root_password_hashed: str
    installer_iso: str  # volume ID of PVE's ISO on the L0 host (or the twin's tiny ISO standing in)
    ssh_keys: tuple[str, ...] = ()
    network: str = "10.99.0.0/16"  # split into two /24s per student
    domain: str = "lab"
    first_vmid: int = 4000
    first_bridge: int = 4000
    storage: str = "local-lvm"
    iso_storage: str = "local"
    memory_mib: int = 8192
    cores: int = 2
    os_disk_gib: int = 32
    osd_disk_gib: int = 32
    cpu: str = "host"
    tags: tuple[str, ...] = ("pvelab",)
    require_kvm: bool = True  # refuse an L0 host without nested virtualization
    installer_version: str = ""  # proxmox-installer of the ISO (e.g. 9.1.0): answers it cannot read are refused
    first_boot_hook: bool = True  # the ISO carries pvelab's first-boot hook (prepare-iso --on-first-boot): link1
    hosts: tuple[L0Host, ...] = ()  # the L0 cluster's nodes the class is spread over, in order (none: one)

    @classmethod
    def of(cls, settings: dict[str, Any]) -> NestedClass:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise PlanError(f"unknown nested lab settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        missing = [k for k in ("students", "root_password_hashed", "installer_iso") if not settings.get(k)]
        if missing:
            raise PlanError(f"the nested lab needs {', '.join(missing)}")
        values: dict[str, Any] = {k: tuple(str(i) for i in v) if isinstance(v, list) else v
                                  for k, v in settings.items() if k != "hosts"}
        hosts = settings.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise PlanError("hosts maps each L0 host's node name to the students it takes (0: no limit)")
        return cls(**values, hosts=tuple(L0Host.of(node, capacity) for node, capacity in hosts.items()))


@dataclass(frozen=True)
class NestedNode:
    student: str
    name: str  # pve1..pve3
    vmid: int
    address: str  # link0, no prefix
    link1_address: str
    bridges: tuple[str, str]
    gateway: str
    plan: answer.NodePlan
    shape: VmShape
    l0_node: str | None = None  # the L0 host it runs on (None: the only one)

    @property
    def answer(self) -> str:
        return answer.render(self.plan)

    @property
    def disc_name(self) -> str:
        return f"pvelab-ais-{self.vmid}.iso"

    def create_params(self) -> dict[str, object]:
        return create_params(self.plan, self.shape)


def student_networks(klass: NestedClass, index: int) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    nets = list(ipaddress.IPv4Network(klass.network).subnets(new_prefix=24))
    if len(nets) < 2 * (index + 1):
        raise PlanError(f"{klass.network} has {len(nets)} /24s: room for {len(nets) // 2} students, not "
                        f"{index + 1}; give a larger network")
    return nets[2 * index], nets[2 * index + 1]


def placement(klass: NestedClass) -> list[str | None]:
    """Each student's L0 host, in class order: the hosts in turn, a full one passed."""
    if not klass.hosts:
        return [None] * len(klass.students)
    room = [h.capacity or len(klass.students) for h in klass.hosts]
    if sum(room) < len(klass.students):
        given = ", ".join(f"{h.node} {h.capacity}" for h in klass.hosts)
        raise PlanError(f"the class has {len(klass.students)} students and its L0 hosts take {sum(room)} ({given}: "
                        "their nested_capacity): add a host or raise a capacity")
    out: list[str | None] = []
    turn = 0
    for _student in klass.students:  # round the hosts, passing full ones: a later student moves no earlier one
        while room[turn % len(room)] == 0:
            turn += 1
        room[turn % len(room)] -= 1
        out.append(klass.hosts[turn % len(room)].node)
        turn += 1
    return out


def mac(vmid: int, nic: int) -> str:
    return f"BC:24:11:{vmid >> 8:02X}:{vmid & 0xFF:02X}:{nic:02X}"


def plan_class(klass: NestedClass) -> list[NestedNode]:
    """Every node of the class, student by student."""
    if len(set(klass.students)) != len(klass.students):
        raise PlanError("a student is listed twice")
    last_vmid = klass.first_vmid + 10 * len(klass.students) + NODES
    if klass.first_vmid < 100 or last_vmid > 0xFFFF:  # the fixed MACs carry the VMID in two bytes
        raise PlanError(f"VMIDs {klass.first_vmid + 11}..{last_vmid} are outside 100..65535 (PVE's lowest VMID, "
                        "and the most the nodes' fixed MACs can carry): choose another first_vmid")
    nodes = []
    hosts = placement(klass)
    for k, student in enumerate(klass.students):
        link0, link1 = student_networks(klass, k)
        bridges = (f"vmbr{klass.first_bridge + 2 * k}", f"vmbr{klass.first_bridge + 2 * k + 1}")
        gateway = str(link0.network_address + 1)
        for n in range(1, NODES + 1):
            vmid = klass.first_vmid + 10 * (k + 1) + n
            address = str(link0.network_address + 10 + n)
            plan = answer.NodePlan(
                hostname=f"pve{n}", domain=f"{student}.{klass.domain}", cidr=f"{address}/24", gateway=gateway,
                dns=gateway, mac=mac(vmid, 0), root_password_hashed=klass.root_password_hashed,
                ssh_keys=klass.ssh_keys, os_disk_gib=klass.os_disk_gib, os_disk_serial=vm.os_serial(vmid),
                extra_macs=(mac(vmid, 1),), first_boot_hook=klass.first_boot_hook)
            shape = VmShape(vmid=vmid, storage=klass.storage, bridges=bridges, installer_iso=klass.installer_iso,
                            answer_iso=f"{klass.iso_storage}:iso/pvelab-ais-{vmid}.iso", memory_mib=klass.memory_mib,
                            cores=klass.cores, osd_disk_gib=klass.osd_disk_gib, cpu=klass.cpu,
                            tags=(*klass.tags, student))
            nodes.append(NestedNode(student, f"pve{n}", vmid, address, str(link1.network_address + 10 + n),
                                    bridges, gateway, plan, shape, hosts[k]))
    for node in nodes:  # before any VM is made: each answer is one its VM's installer accepts, on the OS disk
        machine = answer.planned_machine(node.plan, klass.osd_disk_gib, vm.osd_serial(node.vmid))
        try:
            checked = answer.check(node.answer, machine)
        except answer.AnswerError as exc:
            raise PlanError(f"{node.student}/{node.name}: {exc}") from exc
        if answer.select_disks(checked["disk-setup"], machine) != [OS_DISK_INDEX]:
            raise PlanError(f"{node.student}/{node.name}: the answer would install onto the OSD disk")
        if klass.installer_version:
            try:
                answer.check_installer(node.answer, klass.installer_version)
            except answer.AnswerError as exc:
                raise PlanError(str(exc)) from exc
    return nodes
