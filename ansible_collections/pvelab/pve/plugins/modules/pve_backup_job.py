#!/usr/bin/python
"""Ansible module: a scheduled vzdump backup job of a PVE cluster (/etc/pve/jobs.cfg)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_backup_job
short_description: A scheduled Proxmox VE backup job (Datacenter - Backup)
description:
  - Makes backup job O(id) exist with the given options, or not exist, through the API of the node at
    O(api_host) (C(/cluster/backup)). C(pvescheduler) on each node runs it at O(schedule) for that node's guests.
  - Only the options given are compared and changed.
  - The storage must exist and hold backups (content C(backup)); checked before anything changes.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  id:
    description: The job's id.
    type: str
    required: true
  state:
    description: Whether the job should exist.
    type: str
    choices: [present, absent]
    default: present
  schedule:
    description: When it runs, as a PVE calendar event (C(21:00), C(mon..fri 02:30), C(*/15)); needed to create.
    type: str
  vmids:
    description: The guests it backs up.
    type: list
    elements: int
  all_guests:
    description: Back up every guest instead of O(vmids).
    type: bool
  storage:
    description: Where the archives go.
    type: str
  mode:
    description: vzdump mode.
    type: str
    choices: [snapshot, suspend, stop]
  compress:
    description: Compression (V(0) for none).
    type: str
    choices: ["0", gzip, lzo, zstd]
  node:
    description: Only run on this node.
    type: str
  enabled:
    description: Whether the job runs.
    type: bool
  comment:
    description: Free text.
    type: str
  mailto:
    description: Where the report goes.
    type: str
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
  - pvelab.pve.backup_retention
notes:
  - Runs on the controller (delegate to localhost).
seealso:
  - module: pvelab.pve.pve_backup
"""

EXAMPLES = r"""
- name: Back the web guests up every evening
  pvelab.pve.pve_backup_job:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    id: nightly-web
    schedule: "21:00"
    vmids: [110, 111]
    storage: labshare
    mode: snapshot
    compress: zstd
  delegate_to: localhost
"""

RETURN = r"""
id:
  description: The job's id.
  returned: always
  type: str
config:
  description: The job's options after the run, as jobs.cfg spells them.
  returned: when state is present
  type: dict
  sample: {"schedule": "21:00", "vmid": "110,111", "storage": "labshare", "mode": "snapshot"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_backup_ops import RETENTION_ARGUMENT_SPEC, ensure_job
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    **RETENTION_ARGUMENT_SPEC,
    id={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    schedule={"type": "str"},
    vmids={"type": "list", "elements": "int"},
    all_guests={"type": "bool"},
    storage={"type": "str"},
    mode={"type": "str", "choices": ["snapshot", "suspend", "stop"]},
    compress={"type": "str", "choices": ["0", "gzip", "lzo", "zstd"]},
    node={"type": "str"},
    enabled={"type": "bool"},
    comment={"type": "str"},
    mailto={"type": "str"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF,
                           mutually_exclusive=[("vmids", "all_guests")])
    run_module(module, ensure_job)


if __name__ == "__main__":
    main()
