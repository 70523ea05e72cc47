"""What the L0 hosts have that a class's plan must not run into, read before any VM is made: nested
virtualization, the guests and bridges already there (a VMID or bridge of the plan that is someone
else's is refused; the lab's own from an earlier run are its to keep, where the plan puts them), the
storages and the installer ISO on each host that gets students. The facts are what `pvesh` prints on
each L0 host; the playbook gathers them over SSH."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pvelab.nested.plan import NestedClass, NestedNode, PlanError

TAG = "pvelab"  # every nested node's VM carries it, with its student's id


@dataclass(frozen=True)
class HostFacts:
    """One L0 host (a node of the L0 cluster)."""
    nested: str  # /sys/module/kvm_{intel,amd}/parameters/nested ("Y", "1", "N", "0", "" for no KVM module)
    network: list[dict[str, Any]]  # pvesh get /nodes/{l0}/network
    storages: list[dict[str, Any]]  # pvesh get /nodes/{l0}/storage
    isos: list[dict[str, Any]]  # pvesh get /nodes/{l0}/storage/{iso_storage}/content --content iso

    @classmethod
    def of(cls, data: dict[str, Any]) -> HostFacts:
        return cls(str(data.get("nested", "")).strip(), list(data.get("network") or []),
                   list(data.get("storages") or []), list(data.get("isos") or []))


@dataclass(frozen=True)
class L0Facts:
    guests: list[dict[str, Any]]  # pvesh get /cluster/resources --type vm (the whole L0 cluster)
    hosts: dict[str, HostFacts]  # by PVE node name

    @classmethod
    def of(cls, data: dict[str, Any]) -> L0Facts:
        hosts = data.get("hosts") or {}
        if not isinstance(hosts, dict) or not hosts:
            raise PlanError("the L0 facts name no host ({\"guests\": [...], \"hosts\": {NODE: {...}}})")
        return cls(list(data.get("guests") or []), {str(k): HostFacts.of(v) for k, v in hosts.items()})

    def host(self, name: str | None) -> tuple[str, HostFacts | None]:
        """The named host's facts (None: the only host)."""
        if name is None:
            if len(self.hosts) != 1:
                raise PlanError(f"the plan names no L0 host and the facts have {len(self.hosts)}")
            name = next(iter(self.hosts))
        return name, self.hosts.get(name)


def bridge_comment(node: NestedNode, link: int) -> str:
    """The comment a lab's bridge carries: how a second run knows the bridge is the lab's own."""
    return f"pvelab nested {node.student} link{link}"


def is_ours(guest: dict[str, Any], node: NestedNode) -> bool:
    tags = set(str(guest.get("tags") or "").replace(",", ";").split(";"))
    return guest.get("type") == "qemu" and guest.get("name") == node.name and {TAG, node.student} <= tags


def refusals(klass: NestedClass, nodes: list[NestedNode], facts: L0Facts) -> list[str]:
    """Each reason the plan cannot be made on these L0 hosts, with what to do; [] when it can."""
    out: list[str] = []
    located = [(node, *facts.host(node.l0_node)) for node in nodes]  # each node with its host's name and facts
    used: dict[str, HostFacts] = {}
    for node, name, host in located:
        if host is not None:
            used[name] = host
        elif node.name == "pve1":  # once a student
            out.append(f"L0 host {name} ({node.student}) is not among the hosts read ({', '.join(facts.hosts)})")
    for name, host in used.items():
        if klass.require_kvm and host.nested not in ("Y", "y", "1"):
            have = f"nested={host.nested}" if host.nested else "no kvm_intel or kvm_amd module"
            out.append(f"the L0 host {name} has no nested virtualization ({have}): PVE in the VMs could not run its "
                       "guests with KVM. Enable it (options kvm-intel nested=Y, or kvm-amd nested=1, in "
                       "/etc/modprobe.d/, then reload the module with no VM running), or set require_kvm: false to "
                       "go on without")
    guests = {int(g["vmid"]): g for g in facts.guests if "vmid" in g}
    for node, where, _host in located:
        found = guests.get(node.vmid)
        if found is None:
            continue
        if not is_ours(found, node):
            out.append(f"VMID {node.vmid} ({node.student}/{node.name}) is in use by {found.get('type')} "
                       f"'{found.get('name', '')}' on {found.get('node')}: choose another first_vmid")
        elif found.get("node") != where:
            out.append(f"VMID {node.vmid} ({node.student}/{node.name}) is on {found.get('node')}, and the plan puts "
                       f"{node.student} on {where} (the L0 hosts or their capacities changed): list them as before, "
                       f"or migrate the student's VMs to {where}")
    for node, name, host in located:
        if node.name != "pve1" or host is None:
            continue
        interfaces = {i.get("iface"): i for i in host.network}
        for link, bridge in enumerate(node.bridges):
            found = interfaces.get(bridge)
            if found is not None and found.get("comments", "").strip() != bridge_comment(node, link):
                out.append(f"bridge {bridge} ({node.student} link{link}) exists on the L0 host {name} and is not this "
                           f"lab's (its comment: '{found.get('comments', '').strip()}'): choose another first_bridge")
    for name, host in used.items():
        storages = {s.get("storage"): s for s in host.storages}
        for sid, what in ((klass.storage, "images"), (klass.iso_storage, "iso")):
            store = storages.get(sid)
            setting = "storage" if what == "images" else "iso_storage"
            if store is None:
                out.append(f"storage '{sid}' is not on the L0 host {name}: set {setting} to one of "
                           f"{', '.join(sorted(str(s) for s in storages)) or 'its storages'}")
            elif what not in str(store.get("content", "")).split(","):
                out.append(f"storage '{sid}' on {name} does not hold {what} (content: {store.get('content')}): add "
                           f"it (pvesm set {sid} --content {store.get('content')},{what}) or choose another")
        if klass.installer_iso not in {i.get("volid") for i in host.isos}:
            out.append(f"the installer ISO {klass.installer_iso} is not on the L0 host {name}: upload PVE's ISO there "
                       "(prepared with proxmox-auto-install-assistant prepare-iso --fetch-from partition "
                       "--on-first-boot, docs/nested.md), or set installer_iso")
    return out
