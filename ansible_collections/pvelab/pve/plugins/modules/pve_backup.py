#!/usr/bin/python
"""Ansible module: back a PVE guest up now (vzdump)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_backup
short_description: Back a Proxmox VE guest up now (vzdump)
description:
  - Runs vzdump for guest O(vmid) on the node that holds it, through the API of the node at O(api_host),
    and waits for the task; a failed backup fails the module with the task's log.
  - Every run makes a new archive, so it reports a change (check mode says what it would do); with O(max_age), only
    when the storage holds no archive of the guest that young, so a playbook run twice makes one backup.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  vmid:
    description: The guest to back up.
    type: int
    required: true
  storage:
    description: Where the archive goes (a storage with content C(backup)).
    type: str
    required: true
  mode:
    description: V(snapshot) (the guest keeps running), V(suspend) (paused meanwhile) or V(stop).
    type: str
    choices: [snapshot, suspend, stop]
    default: snapshot
  compress:
    description: Compression (V(0) for none).
    type: str
    choices: ["0", gzip, lzo, zstd]
    default: zstd
  max_age:
    description:
      - Hours. Back up only when the storage holds no archive of the guest younger than this (no change otherwise).
      - Unset, every run backs up.
    type: int
  task_timeout:
    description: Seconds to wait for the backup.
    type: int
    default: 900
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
  - pvelab.pve.backup_retention
notes:
  - Runs on the controller (delegate to localhost).
seealso:
  - module: pvelab.pve.pve_backup_job
"""

EXAMPLES = r"""
- name: A backup of the web VM before the drill
  pvelab.pve.pve_backup:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    vmid: 110
    storage: labshare
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The guest.
  returned: always
  type: int
node:
  description: The node that ran the backup.
  returned: always
  type: str
archive:
  description: The archive written (its path on the storage), or with O(max_age) the young one found (its volid).
  returned: when not in check mode, or when a young archive was found
  type: str
  sample: /mnt/lab-shared/dump/vzdump-qemu-110-2026_11_27-21_00_02.vma.zst
task_log:
  description: The backup task's log.
  returned: when not in check mode
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_backup_ops import RETENTION_ARGUMENT_SPEC, run_backup
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    **RETENTION_ARGUMENT_SPEC,
    vmid={"type": "int", "required": True},
    storage={"type": "str", "required": True},
    mode={"type": "str", "default": "snapshot", "choices": ["snapshot", "suspend", "stop"]},
    compress={"type": "str", "default": "zstd", "choices": ["0", "gzip", "lzo", "zstd"]},
    max_age={"type": "int"},
    task_timeout={"type": "int", "default": 900},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, run_backup)


if __name__ == "__main__":
    main()
