"""Ansible module: Ceph initialised on a Proxmox VE cluster (pveceph init)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ceph
short_description: Ceph's configuration for a Proxmox VE cluster (pveceph init)
description:
  - Makes C(/etc/pve/ceph.conf) exist (C(POST /nodes/{node}/ceph/init)) with the public and cluster networks asked
    for. It is cluster-wide (in C(/etc/pve)), so one node is enough; a second run changes nothing.
  - Ceph's packages must be installed on every node first (C(pveceph install); the twin's nodes have them).
  - When the file exists, only the networks are compared and set again, as C(pveceph init) does; fsid, auth and
    pool defaults stay.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  node:
    description: The PVE node (as the cluster names it) the action runs on; the API at O(api_host) passes it on.
    type: str
    required: true
  network:
    description: Ceph's public network (CIDR) - monitors, clients; also the cluster network unless O(cluster_network).
    type: str
  cluster_network:
    description: A separate network (CIDR) for OSD replication and heartbeats; needs O(network).
    type: str
  size:
    description: Default number of copies of new pools (only on the first init).
    type: int
  min_size:
    description: Default number of copies a new pool needs to serve I/O (only on the first init).
    type: int
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Ceph on the cluster network
  pvelab.pve.pve_ceph:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    node: pve1
    network: 198.18.0.0/24
  delegate_to: localhost
"""

RETURN = r"""
config:
  description: The [global] section of ceph.conf after the run (not in check mode).
  returned: when not in check mode
  type: dict
  sample: {"fsid": "38fd3ea0-a923-4c21-8adf-b71481a5db9c", "public_network": "198.18.0.0/24"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ceph_ops import ensure_init
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    node={"type": "str", "required": True},
    network={"type": "str"},
    cluster_network={"type": "str"},
    size={"type": "int"},
    min_size={"type": "int"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure_init)


if __name__ == "__main__":
    main()
