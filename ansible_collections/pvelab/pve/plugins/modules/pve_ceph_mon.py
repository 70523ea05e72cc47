"""Ansible module: A Ceph monitor on a Proxmox VE node."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ceph_mon
short_description: A Ceph monitor on a Proxmox VE node (pveceph mon create/destroy)
description:
  - Makes monitor O(id) on O(node) exist (C(POST /nodes/{node}/ceph/mon/{monid})) and waits until it is in the
    monitors' quorum; or removes it. The first monitor of a cluster also gets a manager, as PVE makes it.
  - Refuses to remove the last monitor (C(pveceph purge) removes Ceph).
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  id:
    description: Monitor id (default - the node's name, as PVE names it).
    type: str
  address:
    description: Address the monitor listens on, when the node has several in the public network.
    type: str
  wait_timeout:
    description: Seconds to wait for the task and for the result it promises (the monitor in the quorum).
    type: int
    default: 180
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.ceph_daemon
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: A monitor on every node
  pvelab.pve.pve_ceph_mon:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    node: "{{ inventory_hostname }}"
  delegate_to: localhost
  throttle: 1
"""

RETURN = r"""
id:
  description: The monitor's id.
  returned: always
  type: str
log:
  description: The task's log (when a task ran).
  returned: when changed and not in check mode
  type: list
  elements: str
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
    address={"type": "str"},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    wait_timeout={"type": "int", "default": 180},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, lambda p, check: ensure_daemon(p, check, "mon"))


if __name__ == "__main__":
    main()
