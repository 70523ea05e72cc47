#!/usr/bin/python
"""Ansible module: an API token of a PVE user."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_token
short_description: An API token of a Proxmox VE user
description:
  - Makes token O(tokenid) of user O(userid) exist, or not exist (C(/access/users/{userid}/token)).
  - PVE shows a token's secret once, when it is made; this module returns it then as RV(secret) and
    never again. Keep it (and put C(no_log) on the task).
  - A privilege-separated token (O(privsep), the default) has only the rights of its own ACL entries,
    and never more than its user has.
version_added: "0.5.0"
author: pvelab developers (!UNKNOWN)
options:
  userid:
    description: The token's user.
    type: str
    required: true
  tokenid:
    description: Token name (the part after C(!)).
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  privsep:
    description: Privilege separation.
    type: bool
    default: true
  expire:
    description: Expiry as seconds since the epoch; V(0) never expires.
    type: int
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
- name: The grader's read-only token
  pvelab.pve.pve_token:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    userid: grader@pve
    tokenid: grade
  register: grader_token
  no_log: true
  delegate_to: localhost
"""

RETURN = r"""
full_tokenid:
  description: The full token ID, C(USER@REALM!TOKEN).
  returned: always
  type: str
secret:
  description: The token's secret, only when the token was just made.
  returned: when created
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_access_ops import ensure_token
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    userid={"type": "str", "required": True},
    tokenid={"type": "str", "required": True, "no_log": False},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    privsep={"type": "bool", "default": True},
    expire={"type": "int"},
    comment={"type": "str"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_token)


if __name__ == "__main__":
    main()
