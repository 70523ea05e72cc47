#!/usr/bin/python
"""Ansible module: corosync links, link priorities and totem options of a PVE cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_corosync
short_description: Corosync link addresses, link priorities and totem options of a Proxmox VE cluster
description:
  - Reads C(/etc/pve/corosync.conf) on the node at O(api_host) over SSH, applies the asked link addresses,
    link priorities and totem options, and changes nothing when they already hold.
  - Follows PVE's documented safe edit - writes C(corosync.conf.new) with C(config_version) increased,
    keeps C(corosync.conf.bak), moves the new file into place - then waits until corosync runs the new
    version and the node is still quorate.
  - Refuses while the node is not quorate (C(/etc/pve) is read-only then), refuses to change every link
    address of a node at once (the node would drop out), and refuses to add or remove links.
version_added: "0.1.0"
author: pvelab developers (!UNKNOWN)
options:
  api_host:
    description: Address of a cluster member to edit the configuration on (over SSH).
    type: str
    required: true
  links:
    description: Per node, its link addresses, link0 first - as many as the cluster has links.
    type: dict
  link_priorities:
    description:
      - Per link number, its C(knet_link_priority). In knet's passive mode the link with the highest
        priority value carries the traffic.
    type: dict
  totem:
    description: Totem options to set (e.g. C(token), C(token_coefficient)); a null value removes the option.
    type: dict
  verify_timeout:
    description: Seconds to wait for corosync to run the new configuration.
    type: int
    default: 60
extends_documentation_fragment:
  - pvelab.pve.ssh
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Prefer link1, and give a slow network more time
  pvelab.pve.pve_corosync:
    api_host: 198.18.0.11
    link_priorities: {0: 10, 1: 20}
    totem: {token: 5000}
    ssh_key_file: ~/.ssh/id_ed25519
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
config_version:
  description:
    - C(config_version) of corosync.conf after the run (the one it would have, in check mode).
    - Also returned when the module fails after corosync.conf was replaced (then with C(changed=true)).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_corosync_ops import ensure
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SSH_ARGUMENT_SPEC

ARGUMENT_SPEC = dict(SSH_ARGUMENT_SPEC, api_host={"type": "str", "required": True}, links={"type": "dict"},
                     link_priorities={"type": "dict"}, totem={"type": "dict"},
                     verify_timeout={"type": "int", "default": 60})


def main() -> None:
    run_module(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), ensure)


if __name__ == "__main__":
    main()
