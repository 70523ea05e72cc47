#!/usr/bin/python
"""Ansible module: a PVE cluster's QDevice (external vote from corosync-qnetd)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_qdevice
short_description: The QDevice of a Proxmox VE cluster (a third vote for two nodes)
description:
  - Sets up (C(pvecm qdevice setup)) or removes (C(pvecm qdevice remove)) the cluster's QDevice, over SSH on
    cluster node O(host), as PVE does it. The qnetd host must run C(corosync-qnetd) and accept root SSH from
    the node (C(ssh-copy-id)).
  - A QDevice is checked in C(pvecm status) and C(corosync.conf); one with another qnetd host is refused
    (remove it first). A cluster with an odd node count is refused unless O(force=true), as C(pvecm) does.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  host:
    description: Address of a cluster node, for SSH.
    type: str
    required: true
  state:
    description: Whether the cluster should have a QDevice.
    type: str
    choices: [present, absent]
    default: present
  qnetd_address:
    description: Address of the host running corosync-qnetd.
    type: str
  force:
    description: Set it up on a cluster with an odd node count too.
    type: bool
    default: false
extends_documentation_fragment:
  - pvelab.pve.ssh
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Two nodes and a qnetd host keep quorum when one node fails
  pvelab.pve.pve_qdevice:
    host: 198.18.0.11
    qnetd_address: 198.18.0.13
    ssh_key_file: ~/.ssh/id_ed25519
  delegate_to: localhost
"""

RETURN = r"""
qnetd:
  description: The qnetd host after the run (none when removed).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_qdevice_ops import ensure_qdevice
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SSH_ARGUMENT_SPEC

ARGUMENT_SPEC = dict(
    SSH_ARGUMENT_SPEC,
    host={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    qnetd_address={"type": "str"},
    force={"type": "bool", "default": False},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, ensure_qdevice)


if __name__ == "__main__":
    main()
