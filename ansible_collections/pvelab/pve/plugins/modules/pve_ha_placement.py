#!/usr/bin/python
"""Ansible module: where HA guests may run - an HA rule on PVE 9, an HA group on PVE 8."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ha_placement
short_description: Where Proxmox VE HA guests may run (node-affinity rule on PVE 9, HA group on PVE 8)
description:
  - One placement for both PVE versions, chosen by the version the node at O(api_host) reports.
  - On PVE 9 it is a C(node-affinity) HA rule named O(name) (C(/cluster/ha/rules)) holding O(resources);
    O(strict) is the rule's C(strict); O(failback) is set on each of the O(resources) (it is a resource
    option on PVE 9).
  - On PVE 8 it is an HA group named O(name) (C(/cluster/ha/groups)), set as the C(group) of each of the
    O(resources) (and unset from resources no longer listed); O(strict) is the group's C(restricted),
    O(failback=false) its C(nofailback).
  - Nodes are C(NODE) or C(NODE:PRIORITY); guests run on the online nodes of the highest priority.
    Without O(strict) they may run elsewhere when none of these nodes is online.
  - The resources must be HA resources already (M(pvelab.pve.pve_ha_resource)).
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  name:
    description: Name of the rule (PVE 9) or group (PVE 8).
    type: str
    required: true
  state:
    description: Whether the placement should exist.
    type: str
    choices: [present, absent]
    default: present
  nodes:
    description: The nodes, as C(NODE) or C(NODE:PRIORITY) (higher first; default priority 0).
    type: list
    elements: str
  resources:
    description: The HA resources (C(vm:VMID), C(ct:VMID)) placed this way.
    type: list
    elements: str
  strict:
    description: Only ever run on these nodes (a guest waits in C(recovery) while none is online).
    type: bool
    default: false
  failback:
    description: Move guests back to a higher-priority node when it comes back.
    type: bool
  comment:
    description: Free text shown with the rule or group.
    type: str
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
seealso:
  - module: pvelab.pve.pve_ha_resource
"""

EXAMPLES = r"""
- name: Web guests prefer pve1, then pve2
  pvelab.pve.pve_ha_placement:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    name: prefer-pve1
    nodes: [pve1:2, pve2:1]
    resources: [vm:110, vm:111]
  delegate_to: localhost
"""

RETURN = r"""
name:
  description: The rule or group name.
  returned: always
  type: str
kind:
  description: C(rule) on PVE 9, C(group) on PVE 8.
  returned: always
  type: str
config:
  description: The placement after the run (nodes, resources, strict or restricted/nofailback, comment).
  returned: when state is present
  type: dict
  sample: {"nodes": "pve1:2,pve2:1", "resources": "vm:110,vm:111", "strict": "0"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ha_ops import ensure_placement
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    name={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    nodes={"type": "list", "elements": "str"},
    resources={"type": "list", "elements": "str"},
    strict={"type": "bool", "default": False},
    failback={"type": "bool"},
    comment={"type": "str"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_placement)


if __name__ == "__main__":
    main()
