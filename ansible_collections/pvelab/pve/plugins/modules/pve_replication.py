#!/usr/bin/python
"""Ansible module: a storage replication job of a PVE guest (/etc/pve/replication.cfg, pvesr)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_replication
short_description: A Proxmox VE storage replication job (pvesr)
description:
  - Makes the replication job of guest O(vmid) to node O(target) exist with the given options, or not
    exist, through the API of the node at O(api_host) (C(/cluster/replication)). The guest's node runs
    it on O(schedule) (C(pvescheduler)); each run sends what changed since the last one.
  - A job is found by its guest and target; only the options given are compared and changed.
  - The guest's disks must be on C(zfspool) storages (the one type PVE replicates); PVE refuses the job
    otherwise (V(No replicatable volumes found)).
  - With O(wait_for_sync), waits for the job's first successful sync and fails with the job's error if it
    does not come.
version_added: "0.11.0"
author: pvelab developers (!UNKNOWN)
options:
  vmid:
    description: The guest.
    type: int
    required: true
  target:
    description: The node that keeps the replica.
    type: str
    required: true
  jobnum:
    description: The job's number (its id is C(VMID-JOBNUM)); the lowest free one when not given.
    type: int
  state:
    description: Whether the job should exist.
    type: str
    choices: [present, absent]
    default: present
  schedule:
    description: When it runs, as a PVE calendar event (C(*/15), PVE's default; C(*/1) every minute).
    type: str
  rate:
    description: Bandwidth limit in MB/s.
    type: float
  comment:
    description: Free text.
    type: str
  enabled:
    description: Whether the job runs.
    type: bool
  keep_replica:
    description: With O(state=absent), keep the copy on O(target) (PVE's C(keep)); otherwise it is removed with the job.
    type: bool
    default: false
  wait_for_sync:
    description: Wait until the job has synced once.
    type: bool
    default: false
  sync_timeout:
    description: Seconds to wait for that sync.
    type: int
    default: 300
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
  - HA recovers a replicated guest on its target with the data of the last sync; what it wrote since is lost.
    Keep such a guest to the nodes that hold its replica (pve_ha_placement).
seealso:
  - module: pvelab.pve.pve_storage
  - module: pvelab.pve.pve_ha_resource
"""

EXAMPLES = r"""
- name: Replicate the database VM to pve2 every minute
  pvelab.pve.pve_replication:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 150
    target: pve2
    schedule: "*/1"
    wait_for_sync: true
  delegate_to: localhost
"""

RETURN = r"""
id:
  description: The job's id (C(VMID-JOBNUM)); null when absent and there was none.
  returned: always
  type: str
  sample: 150-0
config:
  description: The job's options after the run, as replication.cfg spells them.
  returned: when state is present
  type: dict
  sample: {"schedule": "*/1", "disable": "0"}
last_sync:
  description: When the job last synced (epoch seconds).
  returned: when wait_for_sync is true
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_replication_ops import ensure_replication

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    vmid={"type": "int", "required": True},
    target={"type": "str", "required": True},
    jobnum={"type": "int"},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    schedule={"type": "str"},
    rate={"type": "float"},
    comment={"type": "str"},
    enabled={"type": "bool"},
    keep_replica={"type": "bool", "default": False},
    wait_for_sync={"type": "bool", "default": False},
    sync_timeout={"type": "int", "default": 300},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_replication)


if __name__ == "__main__":
    main()
