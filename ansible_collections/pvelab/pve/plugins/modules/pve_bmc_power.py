#!/usr/bin/python
"""Ansible module: a deliberate power action on a node through its BMC (IPMI), for drills."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_bmc_power
short_description: Power a Proxmox VE node on, off or reset through its BMC (drills)
description:
  - Reads or changes the chassis power of a node through its BMC over IPMI (lanplus), from the controller.
  - V(off), V(reset) and V(cycle) cut power without a shutdown, which is what a failover drill wants; they (and
    V(on)) are refused unless O(confirm=true).
  - V(on) and V(off) report no change when the power already is so.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  bmc_address:
    description: Address of the node's BMC.
    type: str
    required: true
  action:
    description: The power action.
    type: str
    choices: [status, "on", "off", reset, cycle]
    default: status
  confirm:
    description: Required for every action but V(status).
    type: bool
    default: false
extends_documentation_fragment:
  - pvelab.pve.bmc
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Pull pve1's plug (failover drill)
  pvelab.pve.pve_bmc_power:
    bmc_address: 198.18.2.11
    bmc_password: "{{ bmc_password }}"
    action: "off"
    confirm: true
  delegate_to: localhost
"""

RETURN = r"""
power_on:
  description: Whether the chassis is (or would be) powered on after the run.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_fencing_ops import BMC_ARGUMENT_SPEC, bmc_power
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    BMC_ARGUMENT_SPEC,
    bmc_address={"type": "str", "required": True},
    action={"type": "str", "default": "status", "choices": ["status", "on", "off", "reset", "cycle"]},
    confirm={"type": "bool", "default": False},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, bmc_power)


if __name__ == "__main__":
    main()
