#!/usr/bin/python
"""Ansible module: a PVE VM's disk, grown and moved."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_disk
short_description: A Proxmox VE VM's disk, grown to a size and moved to a storage
description:
  - Makes disk O(disk) of VM O(vmid) at least O(size) (C(PUT /nodes/{node}/qemu/{vmid}/resize)) and on storage
    O(storage) (C(POST .../move_disk)), through the API of the node at O(api_host), wherever the VM is in the
    cluster, waiting for each task.
  - Both work on a running VM. Growing is seen by the guest at once (it may need to rescan, then grow its
    partition and filesystem). A move copies the disk while the guest keeps writing (QEMU's mirror) and switches
    it over at the end.
  - O(size) is absolute, so a second run changes nothing; PVE cannot shrink a disk, so a smaller size fails.
version_added: "0.6.0"
author: pvelab developers (!UNKNOWN)
options:
  vmid:
    description: The VM.
    type: int
    required: true
  disk:
    description: The disk's config key (V(scsi0), V(virtio1), ...).
    type: str
    required: true
  size:
    description: The size the disk should have at least, as PVE writes sizes (V(128M), V(2G)).
    type: str
  storage:
    description: The storage the disk should be on.
    type: str
  format:
    description: The format of a moved disk, where the target storage has formats (a directory).
    type: str
    choices: [raw, qcow2, vmdk]
  delete_source:
    description: After a move, remove the old volume (V(false) keeps it as an C(unusedN) disk, as PVE does).
    type: bool
    default: false
  task_timeout:
    description: Seconds to wait for each task.
    type: int
    default: 600
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
seealso:
  - module: pvelab.pve.pve_guest
  - module: pvelab.pve.pve_snapshot
"""

EXAMPLES = r"""
- name: The web VM's disk onto Ceph, without stopping it, and at least 2 GiB
  pvelab.pve.pve_disk:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 110
    disk: scsi0
    size: 2G
    storage: vmpool
    delete_source: true
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The VM.
  returned: always
  type: int
node:
  description: The node holding the VM.
  returned: always
  type: str
size:
  description: The disk's size after the run (or what it would be, in check mode), as PVE writes it.
  returned: always
  type: str
  sample: 2G
storage:
  description: The disk's storage after the run (or what it would be, in check mode).
  returned: always
  type: str
task_log:
  description: The tasks' log lines.
  returned: when the disk was grown or moved
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_disk_ops import ensure_disk
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    vmid={"type": "int", "required": True},
    disk={"type": "str", "required": True},
    size={"type": "str"},
    storage={"type": "str"},
    format={"type": "str", "choices": ["raw", "qcow2", "vmdk"]},
    delete_source={"type": "bool", "default": False},
    task_timeout={"type": "int", "default": 600},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER,
                           required_one_of=[*API_REQUIRED_ONE_OF, ["size", "storage"]])
    run_module(module, ensure_disk)


if __name__ == "__main__":
    main()
