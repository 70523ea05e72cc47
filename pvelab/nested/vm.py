"""A nested PVE node's VM on the L0 host, in the shape the research recommends (docs/nested.md): the
parameters of `POST /nodes/{node}/qemu` that make it (installer ISO and answer disc attached, booting
the installer), and the change that turns it into a node booting its own disk once the install has
powered it off."""

from __future__ import annotations

from dataclasses import dataclass

from pvelab.nested.answer import NodePlan


@dataclass(frozen=True)
class VmShape:
    """Where and how big: the L0 side's choices for one nested node."""
    vmid: int
    storage: str  # for the OS and OSD disks (e.g. local-lvm)
    bridges: tuple[str, ...]  # net0 (management, corosync link 0), net1 (link 1), ...: the student's bridges
    installer_iso: str  # volume ID of the PVE ISO (e.g. local:iso/proxmox-ve_9.1-1.iso)
    answer_iso: str  # volume ID of this node's `proxmox-ais` disc
    memory_mib: int = 8192  # PVE plus a Ceph OSD (4 GiB by default)
    cores: int = 2
    osd_disk_gib: int = 32
    cpu: str = "host"  # nested virtualization needs the host's VT-x/AMD-V in the VM
    tags: tuple[str, ...] = ("pvelab",)


def os_serial(vmid: int) -> str:
    """The OS disk's serial: the answer file picks the disk to install onto by it."""
    return f"os-{vmid}"


def osd_serial(vmid: int) -> str:
    """The OSD disk's serial: a stable id for Ceph."""
    return f"osd-{vmid}"


def create_params(plan: NodePlan, shape: VmShape) -> dict[str, object]:
    """POST /nodes/{node}/qemu: q35, virtio-scsi-single, OS disk scsi0 and OSD disk scsi1 (with serials:
    the installer picks the OS disk by its own, Ceph sees a stable id), the installer on ide2 and the
    answer disc on ide3, NICs with the plan's fixed MACs and no firewall (its MAC filter would drop
    the nested guests' frames), the i6300esb watchdog (fencing lessons), no balloon, no agent (the
    installer has none)."""
    macs = (plan.mac, *plan.extra_macs)
    if len(shape.bridges) != len(macs):
        raise ValueError(f"node {plan.hostname}: {len(macs)} MACs for {len(shape.bridges)} bridges")
    disk = "iothread=1,discard=on,ssd=1"
    params: dict[str, object] = {
        "vmid": shape.vmid, "name": plan.hostname, "ostype": "l26", "machine": "q35", "cpu": shape.cpu,
        "sockets": 1, "cores": shape.cores, "memory": shape.memory_mib, "balloon": 0,
        "scsihw": "virtio-scsi-single",
        "scsi0": f"{shape.storage}:{plan.os_disk_gib},{disk}" + (f",serial={plan.os_disk_serial}"
                                                                 if plan.os_disk_serial else ""),
        "scsi1": f"{shape.storage}:{shape.osd_disk_gib},{disk},serial={osd_serial(shape.vmid)}",
        "ide2": f"{shape.installer_iso},media=cdrom", "ide3": f"{shape.answer_iso},media=cdrom",
        "boot": "order=ide2;scsi0", "watchdog": "model=i6300esb,action=reset", "agent": "0",
        "tags": ";".join(shape.tags), "onboot": 0,
    }
    for index, (bridge, mac) in enumerate(zip(shape.bridges, macs, strict=True)):
        params[f"net{index}"] = f"virtio={mac},bridge={bridge},firewall=0"
    return params


def after_install_params() -> dict[str, object]:
    """PUT /nodes/{node}/qemu/{vmid}/config once the installer powered the VM off: the CDs go, the
    disk boots (with the installer CD first, the next boot would install again)."""
    return {"delete": "ide2,ide3", "boot": "order=scsi0"}
