#!/usr/bin/python
"""Ansible module: read-only view of a PVE cluster's HA stack."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ha_info
short_description: The HA state of a Proxmox VE cluster, as ha-manager status shows it
description:
  - Reads quorum, the CRM master, each node's LRM, each HA resource's state and node, the resources'
    options and the placement (HA rules on PVE 9, groups on PVE 8) through the API of the node at O(api_host).
  - Never changes anything.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options: {}
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes.info
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Where do the HA guests run?
  pvelab.pve.pve_ha_info:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
  delegate_to: localhost
  register: ha

- name: The web VM runs
  ansible.builtin.assert:
    that: ha.services['vm:110'].state == 'started'
"""

RETURN = r"""
quorate:
  description: Whether the node answering is in the quorate partition.
  returned: always
  type: bool
master:
  description: The node whose CRM is master (none while no resource is configured).
  returned: always
  type: str
lrm:
  description: Each node's LRM line, as C(ha-manager status) prints it after C(lrm).
  returned: always
  type: dict
  sample: {"pve1": "pve1 (active, watchdog active, Tue Jun 10 12:00:03 2025)"}
nodes:
  description:
    - Each node's state as the CRM master sees it - C(online), C(unknown) (lost, counting its fence delay),
      C(fence) (waiting for its agent lock), C(maintenance), C(gone) - from C(manager_status).
  returned: always
  type: dict
  sample: {"pve1": "fence", "pve2": "online", "pve3": "online"}
services:
  description: Each HA resource's node, displayed state, CRM state and requested state.
  returned: always
  type: dict
  sample: {"vm:110": {"node": "pve1", "state": "started", "crm_state": "started", "request_state": "started"}}
resources:
  description: Each HA resource's explicitly set options.
  returned: always
  type: dict
placement:
  description: The HA rules (PVE 9) or groups (PVE 8) as the API lists them.
  returned: always
  type: list
  elements: dict
status_lines:
  description: The lines of C(ha-manager status).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ha_ops import ha_info
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(API_ARGUMENT_SPEC)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ha_info)


if __name__ == "__main__":
    main()
