#!/usr/bin/python
"""Ansible module: a PVE node's cluster membership (create, join, remove)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_cluster
short_description: Create a Proxmox VE cluster, join nodes to it, or remove a node
description:
  - With O(state=present) and no O(join_host), creates cluster O(cluster_name) on the node at O(api_host)
    (C(POST /cluster/config)), unless it is already in that cluster.
  - With O(state=present) and O(join_host), joins the node at O(api_host) to the cluster that O(join_host) belongs
    to, through the API (C(POST /cluster/config/join)) or by running C(pvecm add) over SSH (O(join_method=ssh)).
  - A node already in O(cluster_name) is left alone; a node in another cluster is an error.
  - With O(state=absent), removes O(node) from the cluster through the member at O(api_host)
    (C(pvecm delnode)); refused while O(node) is online unless O(force=true).
version_added: "0.1.0"
author: pvelab developers (!UNKNOWN)
options:
  cluster_name:
    description: Name of the cluster (at most 15 characters, letters, digits and dashes).
    type: str
    required: true
  state:
    description: Whether the node should be a member (V(present)) or O(node) should be removed (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  join_host:
    description: Address of an existing member to join through. Omit it on the node that creates the cluster.
    type: str
  join_password:
    description: Root password of O(join_host). Defaults to O(api_password).
    type: str
  join_fingerprint:
    description:
      - SHA-256 fingerprint of O(join_host)'s certificate (C(AA:BB:...)). Read from O(join_host)'s join
        information when omitted, which trusts that connection as far as O(validate_certs) does.
    type: str
  join_method:
    description: Join through the target's API (V(api)) or by running C(pvecm add) on it over SSH (V(ssh)).
    type: str
    choices: [api, ssh]
    default: api
  links:
    description:
      - Corosync link addresses of the node, link0 first (C([address=]IP[,priority=N])).
      - When omitted, PVE falls back to the address the node name resolves to (one link).
    type: list
    elements: str
  nodeid:
    description: Corosync node id; the lowest free one when omitted.
    type: int
  votes:
    description: Quorum votes of the node (PVE's default is 1).
    type: int
  node:
    description: With O(state=absent), the node to remove.
    type: str
  force:
    description: With O(state=absent), remove O(node) even though it is online.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the create or join task.
    type: int
    default: 600
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.ssh
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Create the cluster on the first node
  pvelab.pve.pve_cluster:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    cluster_name: edu-cloud
    links: [198.18.0.11, 198.18.1.11]
  delegate_to: localhost

- name: Join the second node through the first one
  pvelab.pve.pve_cluster:
    api_host: 198.18.0.12
    api_password: "{{ pve_root_password }}"
    cluster_name: edu-cloud
    join_host: 198.18.0.11
    links: [198.18.0.12, 198.18.1.12]
  delegate_to: localhost

- name: Remove a dead node (run against a remaining member)
  pvelab.pve.pve_cluster:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    cluster_name: edu-cloud
    node: pve3
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
action:
  description: What was done (or would be, in check mode).
  returned: always
  type: str
  sample: joined
membership:
  description:
    - The node's membership after the run (what it would be, in check mode) - C(node), C(cluster),
      C(nodes), C(online), C(quorate), C(config_version).
    - With O(state=absent), the membership seen from the member at O(api_host).
  returned: always
  type: dict
  sample: {"node": "pve2", "cluster": "edu-cloud", "nodes": ["pve1", "pve2"], "online": ["pve1", "pve2"],
           "quorate": true, "config_version": 2}
task_log:
  description: Log of the create or join task (empty in check mode).
  returned: when the node was created or joined
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_cluster_ops import ensure_membership
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ssh import SSH_ARGUMENT_SPEC

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC, **SSH_ARGUMENT_SPEC,
    cluster_name={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    join_host={"type": "str"},
    join_password={"type": "str", "no_log": True},
    join_fingerprint={"type": "str"},
    join_method={"type": "str", "default": "api", "choices": ["api", "ssh"]},
    links={"type": "list", "elements": "str"},
    nodeid={"type": "int"},
    votes={"type": "int"},
    node={"type": "str"},
    force={"type": "bool", "default": False},
    timeout={"type": "int", "default": 600},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF,
                           required_if=[("state", "absent", ["node"])])
    run_module(module, ensure_membership)


if __name__ == "__main__":
    main()
