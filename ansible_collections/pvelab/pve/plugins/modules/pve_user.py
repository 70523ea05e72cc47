#!/usr/bin/python
"""Ansible module: a user of a PVE cluster (/etc/pve/user.cfg)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_user
short_description: A user of a Proxmox VE cluster
description:
  - Makes user O(userid) exist with the given properties and group memberships, or not exist
    (C(/access/users)). Only the properties given are compared and changed.
  - A C(pam) realm user is the node's Linux account, so it must exist on the node (C(useradd)) before it
    can be added. A C(pve) realm user's password lives in C(/etc/pve/priv/shadow.cfg).
  - Passwords cannot be read back, so O(password) is set when the user is created, and on every run
    only with O(update_password=always) (then the task always reports a change).
version_added: "0.5.0"
author: pvelab developers (!UNKNOWN)
options:
  userid:
    description: User ID with its realm, as C(student1@pve).
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  password:
    description: Password (at least 8 characters), for a new user or with O(update_password=always).
    type: str
  update_password:
    description: When to set O(password) - V(on_create) only, or V(always).
    type: str
    choices: [on_create, always]
    default: on_create
  groups:
    description: The groups the user belongs to, exactly (they must exist).
    type: list
    elements: str
  enable:
    description: Whether the user may log in.
    type: bool
  expire:
    description: Account expiry as seconds since the epoch; V(0) never expires.
    type: int
  firstname:
    description: First name.
    type: str
  lastname:
    description: Last name.
    type: str
  email:
    description: E-mail address.
    type: str
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
- name: A student's account in the class group
  pvelab.pve.pve_user:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    userid: student1@pve
    password: "{{ student_password }}"
    groups: [students]
  no_log: true
  delegate_to: localhost
"""

RETURN = r"""
userid:
  description: The user ID.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_access_ops import ensure_user
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    userid={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    password={"type": "str", "no_log": True},
    update_password={"type": "str", "default": "on_create", "choices": ["on_create", "always"], "no_log": False},
    groups={"type": "list", "elements": "str"},
    enable={"type": "bool"},
    expire={"type": "int"},
    firstname={"type": "str"},
    lastname={"type": "str"},
    email={"type": "str"},
    comment={"type": "str"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_user)


if __name__ == "__main__":
    main()
