#!/usr/bin/python
"""Ansible module: a network interface (a bridge, say) of a PVE node."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_network
short_description: A network interface of a Proxmox VE node (a bridge for a lab's network, say)
description:
  - Makes interface O(iface) on node O(node) exist with the settings given, or not exist
    (C(/nodes/{node}/network)), then applies the node's network configuration as PVE's
    "Apply Configuration" does (a C(srvreload) task), unless O(apply=false).
  - PVE keeps edits in C(/etc/network/interfaces.new) until they are applied; with O(apply=false)
    the change waits there (several interfaces, one reload at the end).
  - Settings not given are left as they are; O(bridge_ports=[]) makes a bridge without ports (a
    network of its own, as a nested lab's isolated networks are).
  - An interface's type cannot change; a bridge port must exist on the node and belong to no
    other bridge. These refusals come before check mode returns.
version_added: "0.7.0"
author: pvelab developers (!UNKNOWN)
options:
  node:
    description: The node whose interface it is.
    type: str
    required: true
  iface:
    description: Interface name (C(vmbr1), C(eth2), C(bond0), C(vmbr0.20)).
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
  type:
    description: Interface type.
    type: str
    choices: [bridge, bond, eth, vlan]
    default: bridge
  cidr:
    description: IPv4 address with prefix length (C(198.18.10.1/24)).
    type: str
  cidr6:
    description: IPv6 address with prefix length.
    type: str
  gateway:
    description: IPv4 default gateway (one interface of a node has it).
    type: str
  gateway6:
    description: IPv6 default gateway.
    type: str
  bridge_ports:
    description: The bridge's ports, exactly (C([]) for none).
    type: list
    elements: str
  bridge_vlan_aware:
    description: Whether the bridge is VLAN aware.
    type: bool
  bridge_vids:
    description: VLANs a VLAN-aware bridge carries (C(2-4094) by default).
    type: str
  mtu:
    description: MTU.
    type: int
  autostart:
    description: Start the interface at boot (and with each reload).
    type: bool
    default: true
  comments:
    description: Comment on the interface.
    type: str
  vlan_raw_device:
    description: The parent of a VLAN interface named otherwise than C(PARENT.VID).
    type: str
  vlan_id:
    description: The VLAN ID of such an interface.
    type: int
  slaves:
    description: A bond's members, exactly.
    type: list
    elements: str
  bond_mode:
    description: A bond's mode.
    type: str
    choices: [balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb]
  apply:
    description: Apply the node's network configuration after a change (and wait for it).
    type: bool
    default: true
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost) against the node's API, or any node of its cluster.
  - Applying applies every pending change of the node, also ones made by others.
"""

EXAMPLES = r"""
- name: An isolated network for student 1's nested lab (no ports, no address)
  pvelab.pve.pve_network:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    node: pve1
    iface: vmbr101
    bridge_ports: []
    comments: student1 link0
  delegate_to: localhost
"""

RETURN = r"""
iface:
  description: The interface.
  returned: always
  type: str
node:
  description: The node.
  returned: always
  type: str
reload_log:
  description: The reload task's log, when the module applied a change.
  returned: when applied
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_network_ops import ensure_network

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    node={"type": "str", "required": True},
    iface={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    type={"type": "str", "default": "bridge", "choices": ["bridge", "bond", "eth", "vlan"]},
    cidr={"type": "str"},
    cidr6={"type": "str"},
    gateway={"type": "str"},
    gateway6={"type": "str"},
    bridge_ports={"type": "list", "elements": "str"},
    bridge_vlan_aware={"type": "bool"},
    bridge_vids={"type": "str"},
    mtu={"type": "int"},
    autostart={"type": "bool", "default": True},
    comments={"type": "str"},
    vlan_raw_device={"type": "str"},
    vlan_id={"type": "int"},
    slaves={"type": "list", "elements": "str"},
    bond_mode={"type": "str", "choices": ["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
                                          "balance-tlb", "balance-alb"]},
    apply={"type": "bool", "default": True},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_network)


if __name__ == "__main__":
    main()
