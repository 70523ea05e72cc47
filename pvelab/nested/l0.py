"""What the L0 host has that a class's plan must not run into, read before any VM is made: nested
virtualization, the guests and bridges already there (a VMID or bridge of the plan that is someone
else's is refused; the lab's own from an earlier run are its to keep), the storages and the installer
ISO. The facts are what `pvesh` prints on the L0 host; the playbook gathers them over SSH."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pvelab.nested.plan import NestedClass, NestedNode

TAG = "pvelab"  # every nested node's VM carries it, with its student's id


@dataclass(frozen=True)
class L0Facts:
    nested: str  # /sys/module/kvm_{intel,amd}/parameters/nested ("Y", "1", "N", "0", "" for no KVM module)
    guests: list[dict[str, Any]]  # pvesh get /cluster/resources --type vm
    network: list[dict[str, Any]]  # pvesh get /nodes/{l0}/network
    storages: list[dict[str, Any]]  # pvesh get /nodes/{l0}/storage
    isos: list[dict[str, Any]]  # pvesh get /nodes/{l0}/storage/{iso_storage}/content --content iso

    @classmethod
    def of(cls, data: dict[str, Any]) -> L0Facts:
        return cls(str(data.get("nested", "")).strip(), list(data.get("guests") or []),
                   list(data.get("network") or []), list(data.get("storages") or []), list(data.get("isos") or []))


def bridge_comment(node: NestedNode, link: int) -> str:
    """The comment a lab's bridge carries: how a second run knows the bridge is the lab's own."""
    return f"pvelab nested {node.student} link{link}"


def is_ours(guest: dict[str, Any], node: NestedNode) -> bool:
    tags = set(str(guest.get("tags") or "").replace(",", ";").split(";"))
    return guest.get("type") == "qemu" and guest.get("name") == node.name and {TAG, node.student} <= tags


def refusals(klass: NestedClass, nodes: list[NestedNode], facts: L0Facts) -> list[str]:
    """Each reason the plan cannot be made on this L0 host, with what to do; [] when it can."""
    out: list[str] = []
    if klass.require_kvm and facts.nested not in ("Y", "y", "1"):
        have = f"nested={facts.nested}" if facts.nested else "no kvm_intel or kvm_amd module"
        out.append(f"the L0 host has no nested virtualization ({have}): PVE in the VMs could not run its guests with "
                   "KVM. Enable it (options kvm-intel nested=Y, or kvm-amd nested=1, in /etc/modprobe.d/, then "
                   "reload the module with no VM running), or set require_kvm: false to go on without")
    guests = {int(g["vmid"]): g for g in facts.guests if "vmid" in g}
    for node in nodes:
        found = guests.get(node.vmid)
        if found is not None and not is_ours(found, node):
            out.append(f"VMID {node.vmid} ({node.student}/{node.name}) is in use by {found.get('type')} "
                       f"'{found.get('name', '')}' on {found.get('node')}: choose another first_vmid")
    interfaces = {i.get("iface"): i for i in facts.network}
    for node in nodes:
        if node.name != "pve1":
            continue
        for link, bridge in enumerate(node.bridges):
            found = interfaces.get(bridge)
            if found is not None and found.get("comments", "").strip() != bridge_comment(node, link):
                out.append(f"bridge {bridge} ({node.student} link{link}) exists on the L0 host and is not this lab's "
                           f"(its comment: '{found.get('comments', '').strip()}'): choose another first_bridge")
    storages = {s.get("storage"): s for s in facts.storages}
    for sid, what in ((klass.storage, "images"), (klass.iso_storage, "iso")):
        store = storages.get(sid)
        if store is None:
            out.append(f"storage '{sid}' is not on the L0 host: set {'storage' if what == 'images' else 'iso_storage'} "
                       f"to one of {', '.join(sorted(str(s) for s in storages)) or 'its storages'}")
        elif what not in str(store.get("content", "")).split(","):
            out.append(f"storage '{sid}' does not hold {what} (content: {store.get('content')}): add it "
                       f"(pvesm set {sid} --content {store.get('content')},{what}) or choose another")
    if klass.installer_iso not in {i.get("volid") for i in facts.isos}:
        out.append(f"the installer ISO {klass.installer_iso} is not on the L0 host: upload PVE's ISO there (prepared "
                   "with proxmox-auto-install-assistant prepare-iso --fetch-from iso), or set installer_iso")
    return out
