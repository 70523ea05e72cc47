#!/usr/bin/python
"""Ansible module: a role (a set of privileges) of a PVE cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_role
short_description: A role of Proxmox VE privileges
description:
  - Makes role O(roleid) exist with exactly the privileges O(privs), or not exist (C(/access/roles)).
  - PVE's built-in roles (C(Administrator), C(PVEAuditor), C(PVEVMUser), ...) cannot be changed; names
    starting with C(PVE) are refused. Unknown privileges are refused with the list this PVE version knows.
version_added: "0.5.0"
author: pvelab developers (!UNKNOWN)
options:
  roleid:
    description: Role ID.
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  privs:
    description: Privileges, as C(VM.PowerMgmt).
    type: list
    elements: str
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost). C(user.cfg) is cluster-wide, so one node is enough.
"""

EXAMPLES = r"""
- name: Power buttons only
  pvelab.pve.pve_role:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    roleid: PowerOnly
    privs: [VM.Audit, VM.PowerMgmt]
  delegate_to: localhost
"""

RETURN = r"""
roleid:
  description: The role ID.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_access_ops import ensure_role
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    roleid={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    privs={"type": "list", "elements": "str"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_role)


if __name__ == "__main__":
    main()
