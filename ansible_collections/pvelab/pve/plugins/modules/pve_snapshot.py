#!/usr/bin/python
"""Ansible module: a snapshot of a PVE guest (made, removed, rolled back to)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_snapshot
short_description: A snapshot of a Proxmox VE guest, taken, removed or rolled back to
description:
  - Makes snapshot O(name) of guest O(vmid) exist (with O(vmstate), the RAM of a running VM too, so a rollback
    resumes it where it was), or not exist, or rolls the guest back to it, through the API of the node at
    O(api_host) (C(/nodes/{node}/qemu/{vmid}/snapshot), or C(lxc) for a container), on whichever node holds the
    guest. Every task is waited for.
  - An existing snapshot is not taken again; only its O(description) is kept in step (its RAM cannot be added
    afterwards).
  - A rollback always reports a change. It stops the guest first, as PVE does; with O(vmstate) saved the guest
    then runs from that RAM, otherwise it stays stopped unless O(start) is set.
  - A snapshot is not a backup - it lives on the guest's own storage and is lost with it.
version_added: "0.6.0"
author: pvelab developers (!UNKNOWN)
options:
  vmid:
    description: The guest.
    type: int
    required: true
  name:
    description: The snapshot's name (PVE's rules; V(current) is reserved, and V(pending) for a VM, V(vzdump) for a
      container).
    type: str
    required: true
  state:
    description: V(present) (taken), V(absent) (removed) or V(rollback) (the guest rolled back to it).
    type: str
    choices: [present, absent, rollback]
    default: present
  vmstate:
    description: Save the RAM of a running VM with the snapshot (needs storage room of twice its memory). Refused for a
      container (its snapshots hold no RAM; a running container is frozen while its volumes are snapshotted).
    type: bool
    default: false
  description:
    description: The snapshot's description.
    type: str
  force:
    description: With O(state=absent), remove it from the config even if removing a volume's snapshot fails.
    type: bool
    default: false
  start:
    description: With O(state=rollback), start the guest afterwards if the rollback left it stopped.
    type: bool
    default: false
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
  - module: pvelab.pve.pve_backup
"""

EXAMPLES = r"""
- name: A save point with the RAM before the drill
  pvelab.pve.pve_snapshot:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 110
    name: before-drill
    vmstate: true
    description: taken before breaking things
  delegate_to: localhost

- name: Back to it afterwards
  pvelab.pve.pve_snapshot:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 110
    name: before-drill
    state: rollback
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The guest.
  returned: always
  type: int
node:
  description: The node holding the guest.
  returned: always
  type: str
snapshots:
  description: The guest's snapshots after the run (or what they would be, in check mode), by name.
  returned: always
  type: list
  elements: str
  sample: ["before-drill"]
task_log:
  description: The task's log lines, when a task ran.
  returned: when a snapshot was taken, removed or rolled back to
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_snapshot_ops import ensure_snapshot

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    vmid={"type": "int", "required": True},
    name={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent", "rollback"]},
    vmstate={"type": "bool", "default": False},
    description={"type": "str"},
    force={"type": "bool", "default": False},
    start={"type": "bool", "default": False},
    task_timeout={"type": "int", "default": 300},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_snapshot)


if __name__ == "__main__":
    main()
