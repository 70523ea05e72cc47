#!/usr/bin/python
"""Ansible module: a group of users of a PVE cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_group
short_description: A group of Proxmox VE users
description:
  - Makes group O(groupid) exist with O(comment), or not exist (C(/access/groups)). Members are set
    on the users (M(pvelab.pve.pve_user) O(pvelab.pve.pve_user#module:groups)), as PVE keeps them.
version_added: "0.5.0"
author: pvelab developers (!UNKNOWN)
options:
  groupid:
    description: Group ID.
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
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost). C(user.cfg) is cluster-wide, so one node is enough.
"""

EXAMPLES = r"""
- name: The class
  pvelab.pve.pve_group:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    groupid: students
    comment: Course PVE-101
  delegate_to: localhost
"""

RETURN = r"""
groupid:
  description: The group ID.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_access_ops import ensure_group
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    groupid={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    comment={"type": "str"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_group)


if __name__ == "__main__":
    main()
