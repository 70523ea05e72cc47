#!/usr/bin/python
"""Ansible module: an HA resource of a PVE cluster (/etc/pve/ha/resources.cfg) and its requested state."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ha_resource
short_description: A guest under Proxmox VE HA, with its requested state
description:
  - Makes guest O(sid) an HA resource with the given options, or not one, through the API of the node at
    O(api_host) (C(/cluster/ha/resources)). The HA stack then starts, stops and recovers the guest.
  - Only the options given are compared and changed; PVE's defaults count as set (C(state started),
    C(max_restart 1), C(max_relocate 1), C(failback 1)).
  - With O(wait) (the default) the module waits until the HA manager shows the requested state
    (C(started) means the guest runs), as C(ha-manager status) shows it; a guest that fails to start
    everywhere ends in C(error), which the module reports.
  - A resource in the C(error) state only accepts O(resource_state=disabled) (PVE refuses anything else).
  - Removing the resource (O(state=absent)) leaves the guest as it is, running or not.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  sid:
    description: The resource id, C(vm:VMID) or C(ct:VMID).
    type: str
    required: true
  state:
    description: Whether the guest should be an HA resource.
    type: str
    choices: [present, absent]
    default: present
  resource_state:
    description:
      - The requested state. V(started) keeps the guest running (and recovers it on node failure);
        V(stopped) keeps it stopped but still moves it off a failed node; V(disabled) keeps it stopped and is
        the way out of C(error); V(ignored) takes it out of HA's hands without removing it.
    type: str
    choices: [started, stopped, disabled, ignored]
  max_restart:
    description: Restarts on the same node after a failed start.
    type: int
  max_relocate:
    description: Moves to another node after the restarts failed.
    type: int
  failback:
    description:
      - Move the guest back to a higher-priority node of its placement when that node returns (PVE 9).
        On PVE 8 this belongs to the HA group; use M(pvelab.pve.pve_ha_placement) with
        O(pvelab.pve.pve_ha_placement#module:failback).
    type: bool
  comment:
    description: Free text shown with the resource.
    type: str
  wait:
    description: Wait until the HA manager shows the requested state.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 180
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
  - The HA daemons act on their own 10 s rounds, so a start takes 10-20 s to show.
seealso:
  - module: pvelab.pve.pve_ha_placement
  - module: pvelab.pve.pve_ha_info
"""

EXAMPLES = r"""
- name: Keep the web VM running, anywhere
  pvelab.pve.pve_ha_resource:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    sid: vm:110
    resource_state: started
  delegate_to: localhost

- name: Clear an error state
  pvelab.pve.pve_ha_resource:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    sid: vm:112
    resource_state: disabled
  delegate_to: localhost
"""

RETURN = r"""
sid:
  description: The resource id.
  returned: always
  type: str
config:
  description: The options set explicitly on the resource after the run (what they would be, in check mode).
  returned: when state is present
  type: dict
  sample: {"state": "started", "max_restart": "2"}
status:
  description: The state the HA manager shows for the resource at the end (C(started), C(stopped), ...).
  returned: when state is present and not in check mode
  type: str
  sample: started
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ha_ops import ensure_resource
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    sid={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    resource_state={"type": "str", "choices": ["started", "stopped", "disabled", "ignored"]},
    max_restart={"type": "int"},
    max_relocate={"type": "int"},
    failback={"type": "bool"},
    comment={"type": "str"},
    wait={"type": "bool", "default": True},
    wait_timeout={"type": "int", "default": 180},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_resource)


if __name__ == "__main__":
    main()
