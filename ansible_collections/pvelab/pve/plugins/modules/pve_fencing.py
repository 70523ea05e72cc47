#!/usr/bin/python
"""Ansible module: a PVE node's fencing - its watchdog module, and a check that its BMC answers."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_fencing
short_description: The fencing a Proxmox VE node has - watchdog module and a BMC check
description:
  - PVE's HA fences a node by letting its watchdog reset it (watchdog-mux feeds C(/dev/watchdog) while the
    node's LRM holds its lock). O(watchdog_module) sets the kernel module watchdog-mux loads when no
    C(/dev/watchdog) exists yet (C(WATCHDOG_MODULE) in C(/etc/default/pve-ha-manager), over SSH to O(host));
    V(softdog) (PVE's default) comments the line out. It takes effect at the next boot (reported as a warning).
  - With O(bmc_address) the module opens an IPMI session (lanplus) to the node's BMC from the controller and
    reads the chassis status, proving the address and credentials work and power control would; it never
    changes the power (see M(pvelab.pve.pve_bmc_power)).
  - PVE's C(fence.cfg) hardware fencing is parsed by PVE but not used by its HA manager, so this module does
    not write it.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  host:
    description: Address of the node, for SSH.
    type: str
    required: true
  watchdog_module:
    description: The watchdog module (V(softdog), V(ipmi_watchdog), V(iTCO_wdt), ...); unset leaves it alone.
    type: str
  bmc_address:
    description: Address of the node's BMC, to check it answers.
    type: str
extends_documentation_fragment:
  - pvelab.pve.ssh
  - pvelab.pve.bmc
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
seealso:
  - module: pvelab.pve.pve_bmc_power
"""

EXAMPLES = r"""
- name: Check pve1's BMC from the controller
  pvelab.pve.pve_fencing:
    host: 198.18.0.11
    ssh_key_file: ~/.ssh/id_ed25519
    bmc_address: 198.18.2.11
    bmc_password: "{{ bmc_password }}"
  delegate_to: localhost
"""

RETURN = r"""
bmc:
  description: The BMC checked, and whether the chassis is powered on.
  returned: when bmc_address is given
  type: dict
  sample: {"address": "198.18.2.11", "power_on": true}
watchdog_module:
  description: The watchdog module configured after the run.
  returned: when watchdog_module is given
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_fencing_ops import BMC_ARGUMENT_SPEC, ensure_fencing
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SSH_ARGUMENT_SPEC

ARGUMENT_SPEC = dict(
    SSH_ARGUMENT_SPEC,
    host={"type": "str", "required": True},
    watchdog_module={"type": "str"},
    **BMC_ARGUMENT_SPEC,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, ensure_fencing)


if __name__ == "__main__":
    main()
