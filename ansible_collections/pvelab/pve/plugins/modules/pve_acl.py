#!/usr/bin/python
"""Ansible module: access control list entries of a PVE cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_acl
short_description: Proxmox VE ACL entries
description:
  - Grants (or with O(state=absent) takes back) each role of O(roles) to each user, group and token
    given, on O(path) (C(PUT /access/acl)). Other entries on the path are left as they are.
  - Paths are PVE's ACL paths, as C(/), C(/vms/100), C(/pool/lab1), C(/storage/local).
version_added: "0.5.0"
author: pvelab developers (!UNKNOWN)
options:
  path:
    description: ACL path.
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  roles:
    description: Roles to grant.
    type: list
    elements: str
    required: true
  users:
    description: User IDs.
    type: list
    elements: str
  groups:
    description: Group IDs.
    type: list
    elements: str
  tokens:
    description: Full token IDs, as C(grader@pve!grade).
    type: list
    elements: str
  propagate:
    description: Whether the roles also apply below O(path).
    type: bool
    default: true
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost). C(user.cfg) is cluster-wide, so one node is enough.
"""

EXAMPLES = r"""
- name: The student runs the guests of their pool
  pvelab.pve.pve_acl:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    path: /pool/lab1
    roles: [PVEVMUser]
    users: [student1@pve]
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The ACL path.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_access_ops import ensure_acl
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    path={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    roles={"type": "list", "elements": "str", "required": True},
    users={"type": "list", "elements": "str"},
    groups={"type": "list", "elements": "str"},
    tokens={"type": "list", "elements": "str", "no_log": False},
    propagate={"type": "bool", "default": True},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_acl)


if __name__ == "__main__":
    main()
