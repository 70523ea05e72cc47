"""Ansible module: A Ceph manager on a Proxmox VE node."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ceph_mgr
short_description: A Ceph manager on a Proxmox VE node (pveceph mgr create/destroy)
description:
  - Makes manager O(id) on O(node) exist (C(POST /nodes/{node}/ceph/mgr/{id})) and waits until it is active or
    a standby; or removes it. One manager is active, the others stand by to take over.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  id:
    description: Manager id (default - the node's name).
    type: str
  wait_timeout:
    description: Seconds to wait for the task and for the result it promises (the manager active or standing by).
    type: int
    default: 120
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.ceph_daemon
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: A standby manager on pve2
  pvelab.pve.pve_ceph_mgr:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    node: pve2
  delegate_to: localhost
"""

RETURN = r"""
id:
  description: The manager's id.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ceph_ops import ensure_daemon
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    node={"type": "str", "required": True},
    id={"type": "str"},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    wait_timeout={"type": "int", "default": 120},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, lambda p, check: ensure_daemon(p, check, "mgr"))


if __name__ == "__main__":
    main()
