"""Ansible module: A Ceph OSD on a disk of a Proxmox VE node."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ceph_osd
short_description: A Ceph OSD on a disk of a Proxmox VE node (pveceph osd create/destroy)
description:
  - Makes an OSD on disk O(dev) of O(node) (C(POST /nodes/{node}/ceph/osd)) and waits until it is up and in; a
    disk that already holds an OSD is left as it is.
  - A disk in use for something else (a filesystem, partitions, LVM) is refused before anything changes - wipe it
    first if its data may go.
  - O(state=absent) takes the OSD out, stops it, destroys it and wipes the disk (C(--cleanup)); Ceph moves its data
    to the other OSDs when it can.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  dev:
    description: The disk, as C(/dev/sdb) or C(sdb).
    type: str
    required: true
  crush_device_class:
    description: Device class of the new OSD (C(hdd), C(ssd), C(nvme)); Ceph guesses it when not given.
    type: str
  wait_timeout:
    description: Seconds to wait for the task and for the result it promises (the OSD up and in).
    type: int
    default: 300
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.ceph_daemon
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: An OSD on each node's second disk
  pvelab.pve.pve_ceph_osd:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    node: "{{ inventory_hostname }}"
    dev: /dev/sdb
  delegate_to: localhost
"""

RETURN = r"""
osdid:
  description: The OSD's id (-1 when the disk holds none).
  returned: always
  type: int
dev:
  description: The disk's path.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ceph_ops import ensure_osd
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    node={"type": "str", "required": True},
    dev={"type": "str", "required": True},
    crush_device_class={"type": "str"},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    wait_timeout={"type": "int", "default": 300},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_osd)


if __name__ == "__main__":
    main()
