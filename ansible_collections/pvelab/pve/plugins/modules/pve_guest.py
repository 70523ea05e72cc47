#!/usr/bin/python
"""Ansible module: a VM or container of a PVE cluster, present, absent, started or stopped."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_guest
short_description: A Proxmox VE VM or container - created, configured, started, stopped or destroyed
description:
  - Makes guest O(vmid) exist (or not) with the options a lab needs, through the API of the node at O(api_host);
    it finds the guest wherever it is in the cluster. Every task it starts (create, start, stop, destroy) is
    waited for, and a failed task fails the module with the task's log.
  - On an existing guest only O(name), O(memory), O(cores), O(onboot), O(description), O(ipconfig0) and
    O(config) are compared and changed, and O(delete) removed; disks and NICs are set when the guest is created.
  - "O(state=started) or V(stopped) starts or stops it; a guest managed by HA is refused, as HA starts and
    stops it (use M(pvelab.pve.pve_ha_resource))."
  - O(state=absent) stops a running guest and destroys it with its disks (and C(purge), so backup jobs and
    replication forget it).
  - O(template=true) makes a stopped guest a template (its disks become read-only base images that linked
    clones read, see M(pvelab.pve.pve_clone)); PVE has no way back, so O(template=false) on a template fails.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  vmid:
    description: The guest's id.
    type: int
    required: true
  kind:
    description: A V(vm) (QEMU) or a V(ct) (LXC container).
    type: str
    choices: [vm, ct]
    default: vm
  state:
    description: V(present) (as it is), V(started), V(stopped) or V(absent).
    type: str
    choices: [present, started, stopped, absent]
    default: present
  node:
    description:
      - The node to create the guest on. An existing guest on another node is refused (this module does not move
        guests), unless HA manages it, which places it.
    type: str
  name:
    description: The VM's name, or the container's hostname.
    type: str
  memory:
    description: Memory in MiB.
    type: int
  cores:
    description: CPU cores.
    type: int
  disk_storage:
    description: Storage of the first disk (VM C(scsi0), CT C(rootfs)); needed to create.
    type: str
  disk_size:
    description: Size of that disk in GiB (fractions allowed; 0.0625 is 64 MiB).
    type: float
  iso:
    description: A CD-ROM image for a VM (C(local:iso/NAME.iso)).
    type: str
  ostemplate:
    description: The template a container is made from (C(local:vztmpl/NAME.tar.gz)); needed to create a CT.
    type: str
  bridge:
    description: The bridge of the first NIC.
    type: str
    default: vmbr0
  ipconfig0:
    description: A VM's cloud-init address (C(ip=198.18.0.110/24[,gw=ADDR])); adds a cloud-init drive at creation.
    type: str
  ip:
    description: A container's address on its first NIC (C(198.18.0.120/24) or C(dhcp)).
    type: str
  cloudinit_storage:
    description: Storage of a VM's cloud-init drive (O(disk_storage) when not set).
    type: str
  password:
    description: A container's root password.
    type: str
  onboot:
    description: Start the guest when its node boots.
    type: bool
  template:
    description:
      - Make the guest a template (after creating it, if it is new). It must be stopped, and a template never
        runs, so O(state=started) is refused with it.
    type: bool
    version_added: "0.6.0"
  description:
    description: The guest's notes.
    type: str
  options:
    description: Further config options set at creation, as PVE names them (C(tablet), C(ostype), ...).
    type: dict
  config:
    description:
      - Config options as PVE names them (C(boot), C(machine), ...), set at creation and compared and changed on
        an existing guest (as its config spells them).
    type: dict
    version_added: "0.7.0"
  delete:
    description:
      - Config options to remove from an existing guest (its CDs, say - C(ide2) and C(ide3)), as C(qm set --delete)
        does; an option named here and in O(config) or O(options) is refused.
    type: list
    elements: str
    version_added: "0.7.0"
  task_timeout:
    description: Seconds to wait for each task.
    type: int
    default: 300
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
seealso:
  - module: pvelab.pve.pve_ha_resource
  - module: pvelab.pve.pve_clone
"""

EXAMPLES = r"""
- name: A small web VM on shared storage, running
  pvelab.pve.pve_guest:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 110
    node: pve1
    name: web110
    memory: 256
    disk_storage: labshare
    disk_size: 0.0625
    iso: labshare:iso/pvelab-tiny.iso
    ipconfig0: ip=198.18.0.110/24
    state: started
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The guest's id.
  returned: always
  type: int
node:
  description: The node the guest is on.
  returned: when the guest exists
  type: str
status:
  description: C(running) or C(stopped) after the run (what it would be, in check mode).
  returned: when state is not absent
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_guest_ops import ensure_guest
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    vmid={"type": "int", "required": True},
    kind={"type": "str", "default": "vm", "choices": ["vm", "ct"]},
    state={"type": "str", "default": "present", "choices": ["present", "started", "stopped", "absent"]},
    node={"type": "str"},
    name={"type": "str"},
    memory={"type": "int"},
    cores={"type": "int"},
    disk_storage={"type": "str"},
    disk_size={"type": "float"},
    iso={"type": "str"},
    ostemplate={"type": "str"},
    bridge={"type": "str", "default": "vmbr0"},
    ipconfig0={"type": "str"},
    ip={"type": "str"},
    cloudinit_storage={"type": "str"},
    password={"type": "str", "no_log": True},
    onboot={"type": "bool"},
    template={"type": "bool"},
    description={"type": "str"},
    options={"type": "dict"},
    config={"type": "dict"},
    delete={"type": "list", "elements": "str"},
    task_timeout={"type": "int", "default": 300},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_guest)


if __name__ == "__main__":
    main()
