#!/usr/bin/python
"""Ansible module: a resource pool of a PVE cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_pool
short_description: A Proxmox VE resource pool
description:
  - Makes pool O(poolid) exist with exactly the guests O(vms) and storages O(storage) when given, or
    not exist (C(/pools)). An ACL on C(/pool/POOLID) grants its roles on every member.
  - A guest is in one pool at most, so moving one from another pool needs O(allow_move).
  - PVE removes only empty pools.
  - PVE lists only guests that exist as a pool's members, so give the VMIDs of existing guests (a
    VMID without a guest would be added again on every run).
version_added: "0.5.0"
author: pvelab developers (!UNKNOWN)
options:
  poolid:
    description: Pool ID (nested pools as C(parent/child), up to three levels).
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  comment:
    description: Comment.
    type: str
  vms:
    description: VMIDs of the pool's guests, exactly.
    type: list
    elements: int
  storage:
    description: Storage IDs of the pool, exactly.
    type: list
    elements: str
  allow_move:
    description: Move guests that are in another pool into this one.
    type: bool
    default: false
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost). C(user.cfg) is cluster-wide, so one node is enough.
"""

EXAMPLES = r"""
- name: Student 1's lab
  pvelab.pve.pve_pool:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    poolid: lab1
    vms: [110, 120]
  delegate_to: localhost
"""

RETURN = r"""
poolid:
  description: The pool ID.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_access_ops import ensure_pool
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    poolid={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    comment={"type": "str"},
    vms={"type": "list", "elements": "int"},
    storage={"type": "list", "elements": "str"},
    allow_move={"type": "bool", "default": False},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_pool)


if __name__ == "__main__":
    main()
