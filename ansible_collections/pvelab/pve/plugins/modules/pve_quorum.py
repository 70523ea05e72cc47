#!/usr/bin/python
"""Ansible module: emergency change of expected votes (pvecm expected)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_quorum
short_description: Set a Proxmox VE node's expected votes (pvecm expected) - emergencies only
description:
  - Runs C(pvecm expected N) on the node at O(api_host) over SSH, so that its partition counts as
    quorate with fewer votes - for example to bring up the last surviving node of a broken cluster.
  - This is how a split brain is made when the other side is still alive, so the module refuses unless
    O(accept_split_brain_risk=true), and always reports a warning when it acts.
  - No change when expected votes already equal O(expected).
version_added: "0.1.0"
author: pvelab developers (!UNKNOWN)
options:
  api_host:
    description: Address of the node to run C(pvecm expected) on (over SSH).
    type: str
    required: true
  expected:
    description: New expected votes.
    type: int
    required: true
  accept_split_brain_risk:
    description:
      - Must be V(true) - saying that the other nodes are down for good and that you accept that both
        sides of a partition could otherwise write and diverge.
    type: bool
    default: false
extends_documentation_fragment:
  - pvelab.pve.ssh
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Last node standing - let it work alone (emergency only)
  pvelab.pve.pve_quorum:
    api_host: 198.18.0.11
    expected: 1
    accept_split_brain_risk: true
    ssh_key_file: ~/.ssh/id_ed25519
  delegate_to: localhost
"""

RETURN = r"""
expected_votes:
  description: Expected votes after the run.
  returned: always
  type: int
quorate:
  description: Whether the node's partition is quorate after the run (would be, in check mode).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_quorum_ops import set_expected
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SSH_ARGUMENT_SPEC

ARGUMENT_SPEC = dict(SSH_ARGUMENT_SPEC, api_host={"type": "str", "required": True},
                     expected={"type": "int", "required": True},
                     accept_split_brain_risk={"type": "bool", "default": False})


def main() -> None:
    run_module(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), set_expected)


if __name__ == "__main__":
    main()
