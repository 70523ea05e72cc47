#!/usr/bin/python
"""Ansible module: a clone of a PVE VM or template."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_clone
short_description: A clone of a Proxmox VE VM or template, full or linked
description:
  - Makes VM O(newid) exist as a clone of VM O(vmid) (C(POST /nodes/{node}/qemu/{vmid}/clone)) through the API of
    the node at O(api_host), wherever the source is in the cluster, and waits for the task.
  - A B(linked) clone reads its template's base images and stores only what differs (a qcow2 over the base on a
    directory storage, an RBD clone on Ceph, a thin volume on LVM-thin); it needs a template as its source
    (M(pvelab.pve.pve_guest) with O(pvelab.pve.pve_guest#module:template=true)), and the template cannot be
    destroyed while a clone uses it. A B(full) clone is a copy that stands alone (QEMU's mirror when the source
    runs).
  - If VM O(newid) exists already, nothing is done (PVE keeps no record of where a VM came from, so it is not
    compared with the source).
version_added: "0.6.0"
author: pvelab developers (!UNKNOWN)
options:
  vmid:
    description: The VM or template cloned.
    type: int
    required: true
  newid:
    description: The clone's VMID.
    type: int
    required: true
  name:
    description: The clone's name (PVE's default is C(Copy-of-VM-NAME)).
    type: str
  description:
    description: The clone's notes.
    type: str
  full:
    description:
      - A full copy (V(true)) or a linked clone (V(false)). Default as PVE's - linked for a template, full for a VM.
    type: bool
  target_node:
    description: The node the clone belongs to (its disks must then be on shared storage). Default the source's node.
    type: str
  storage:
    description: Where a full clone's disks go (default their source storage).
    type: str
  format:
    description: The format of a full clone's disks, where the storage has formats (a directory).
    type: str
    choices: [raw, qcow2, vmdk]
  snapname:
    description: Clone the VM as it was in this snapshot.
    type: str
  pool:
    description: Add the clone to this resource pool.
    type: str
  task_timeout:
    description: Seconds to wait for the clone's task.
    type: int
    default: 600
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
seealso:
  - module: pvelab.pve.pve_guest
  - module: pvelab.pve.pve_disk
"""

EXAMPLES = r"""
- name: A student's VM, linked to the course template, on their node
  pvelab.pve.pve_clone:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 9000
    newid: 201
    name: student1
    target_node: pve2
  delegate_to: localhost

- name: A copy that stands alone, on Ceph
  pvelab.pve.pve_clone:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 9000
    newid: 202
    full: true
    storage: vmpool
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The clone's VMID.
  returned: always
  type: int
node:
  description: The node the clone belongs to.
  returned: always
  type: str
full:
  description: Whether the clone made (or that would be made) is a full copy.
  returned: when a clone was made, or would be in check mode
  type: bool
task_log:
  description: The clone task's log lines.
  returned: when a clone was made
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_clone_ops import ensure_clone
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    vmid={"type": "int", "required": True},
    newid={"type": "int", "required": True},
    name={"type": "str"},
    description={"type": "str"},
    full={"type": "bool"},
    target_node={"type": "str"},
    storage={"type": "str"},
    format={"type": "str", "choices": ["raw", "qcow2", "vmdk"]},
    snapname={"type": "str"},
    pool={"type": "str"},
    task_timeout={"type": "int", "default": 600},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_clone)


if __name__ == "__main__":
    main()
