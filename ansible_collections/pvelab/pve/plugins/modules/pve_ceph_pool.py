"""Ansible module: A Ceph pool of a Proxmox VE cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ceph_pool
short_description: A Ceph pool of a Proxmox VE cluster, and its RBD storage (pveceph pool create/set/destroy)
description:
  - Makes pool O(name) exist with the settings given (C(POST /nodes/{node}/ceph/pool), C(PUT) for changes) and
    waits until every placement group is active+clean; or removes it.
  - Only the settings given are compared and changed. With O(add_storages), creating the pool also adds an
    C(rbd) storage of the same name (C(pveceph pool create --add_storages)); removing the pool removes it too.
  - O(min_size) larger than O(size) is refused before anything changes.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  node:
    description: The PVE node (as the cluster names it) the action runs on; the API at O(api_host) passes it on.
    type: str
    required: true
  name:
    description: Pool name (also the storage's id with O(add_storages)).
    type: str
    required: true
  size:
    description: Number of copies of each object (PVE's default 3).
    type: int
  min_size:
    description: Copies an object needs for I/O to go on (PVE's default 2).
    type: int
  pg_num:
    description: Placement groups (PVE's default 128; 32 suits a 3-OSD lab).
    type: int
  pg_autoscale_mode:
    description: What the PG autoscaler does (PVE's default V(warn)).
    type: str
    choices: ["on", "off", warn]
  application:
    description: The pool's application (PVE's default V(rbd)).
    type: str
    choices: [rbd, cephfs, rgw]
  add_storages:
    description: Add (and with O(state=absent) remove) the pool's C(rbd) storage.
    type: bool
    default: false
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  wait_timeout:
    description: Seconds to wait for the task and for the result it promises (every placement group active+clean).
    type: int
    default: 300
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Three copies of every guest disk, and the storage for them
  pvelab.pve.pve_ceph_pool:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    node: pve1
    name: vmpool
    size: 3
    min_size: 2
    pg_num: 32
    add_storages: true
  delegate_to: localhost
"""

RETURN = r"""
pool:
  description: The pool's settings after the run.
  returned: when the pool existed before
  type: dict
  sample: {"size": 3, "min_size": 2, "pg_num": 32, "pg_autoscale_mode": "warn", "application": "rbd"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ceph_ops import ensure_pool
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    node={"type": "str", "required": True},
    name={"type": "str", "required": True},
    size={"type": "int"},
    min_size={"type": "int"},
    pg_num={"type": "int"},
    pg_autoscale_mode={"type": "str", "choices": ["on", "off", "warn"]},
    application={"type": "str", "choices": ["rbd", "cephfs", "rgw"]},
    add_storages={"type": "bool", "default": False},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    wait_timeout={"type": "int", "default": 300},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_pool)


if __name__ == "__main__":
    main()
