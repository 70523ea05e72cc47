#!/usr/bin/python
"""Ansible module: read-only facts about a PVE node's cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_cluster_info
short_description: Facts about a Proxmox VE cluster, seen from one node
description:
  - Reads the cluster name, config version, nodes (ids, votes, links, online), quorum and PVE version
    through the API of the node at O(api_host).
  - With SSH credentials it also reads what only the node's shell shows - expected and total votes,
    quorum flags (C(pvecm status)) and per-link status (C(corosync-cfgtool -s)) - and falls back to SSH
    entirely when the API cannot be reached.
  - Never changes anything.
version_added: "0.1.0"
author: pvelab developers (!UNKNOWN)
options: {}
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.ssh
  - pvelab.pve.attributes.info
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Read the cluster as pve1 sees it
  pvelab.pve.pve_cluster_info:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    ssh_key_file: ~/.ssh/id_ed25519
  delegate_to: localhost
  register: cluster

- name: Insist on quorum
  ansible.builtin.assert:
    that: cluster.quorate
    fail_msg: "{{ cluster.local_node }} is not quorate"
"""

RETURN = r"""
source:
  description: Where the facts came from (V(api), or V(ssh) when the API could not be reached).
  returned: always
  type: str
in_cluster:
  description: Whether the node is in a cluster.
  returned: always
  type: bool
cluster_name:
  description: Name of the cluster, or null.
  returned: always
  type: str
config_version:
  description: C(config_version) of corosync.conf.
  returned: in a cluster
  type: int
quorate:
  description: Whether the node's partition is quorate.
  returned: in a cluster
  type: bool
nodes:
  description: Cluster nodes with C(name), C(nodeid), C(votes), C(online), C(local), C(ip) and C(links).
  returned: always
  type: list
  elements: dict
expected_votes:
  description: Expected votes (votequorum).
  returned: with SSH, in a cluster
  type: int
total_votes:
  description: Votes present.
  returned: with SSH, in a cluster
  type: int
link_status:
  description: Per link, the local node's view of every node (C(localhost), C(connected), C(disconnected)).
  returned: with SSH, in a cluster
  type: dict
  sample: {"link0": {"1": "localhost", "2": "connected"}}
pve_version:
  description: PVE version of the node.
  returned: when the API answered
  type: str
pve_major:
  description: PVE major version (8 or 9).
  returned: when the API answered
  type: int
local_node:
  description: Name of the node at O(api_host).
  returned: when the API answered
  type: str
  sample: pve1
totem:
  description: The C(totem) section of corosync.conf (C(GET /cluster/config/totem)).
  returned: in a cluster, when the API answered
  type: dict
  sample: {"cluster_name": "edu-cloud", "config_version": "3", "ip_version": "ipv4-6", "version": "2"}
quorum:
  description: Votes needed for quorum (votequorum's C(Quorum:) line).
  returned: with SSH, in a cluster
  type: int
flags:
  description: votequorum flags of the node's partition (C(Quorate), C(Qdevice), ...).
  returned: with SSH, in a cluster
  type: list
  elements: str
  sample: ["Quorate"]
members:
  description:
    - The membership as votequorum sees it - C(nodeid), C(votes), C(qdevice_flags), C(name) (address, or
      C(Qdevice)) and C(local).
  returned: with SSH, in a cluster
  type: list
  elements: dict
  sample: [{"nodeid": 1, "votes": 1, "qdevice_flags": "", "name": "198.18.0.11", "local": true}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_cluster_facts import gather
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SSH_ARGUMENT_SPEC

ARGUMENT_SPEC = dict(API_ARGUMENT_SPEC, **SSH_ARGUMENT_SPEC)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, lambda params, _check_mode: {"changed": False, **gather(params)})


if __name__ == "__main__":
    main()
