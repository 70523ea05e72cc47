"""Ansible module: The state of a Proxmox VE cluster's Ceph."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_ceph_info
short_description: The state of a Proxmox VE cluster's Ceph - health, monitors, OSDs, pools, placement groups
description:
  - Reads C(/nodes/{node}/ceph/status), C(mon), C(osd) and C(pool) and returns them in a shape checks and drills
    compare against. Changes nothing.
  - Before C(pveceph init), or before the first monitor, returns C(health) null and says which.
version_added: "0.3.0"
author: pvelab developers (!UNKNOWN)
options:
  node:
    description: The PVE node (as the cluster names it) the action runs on; the API at O(api_host) passes it on.
    type: str
    required: true
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes.info
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: Ceph's state
  pvelab.pve.pve_ceph_info:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    node: pve1
  delegate_to: localhost
  register: ceph
"""

RETURN = r"""
initialised:
  description: Whether pveceph init has run.
  returned: always
  type: bool
health:
  description: HEALTH_OK, HEALTH_WARN or HEALTH_ERR (null before the first monitor).
  returned: always
  type: str
checks:
  description: The health checks that fire, by code, with Ceph's summary.
  returned: when initialised
  type: dict
  sample: {"OSD_DOWN": "1 osds down"}
mutes:
  description: Codes of muted health checks.
  returned: when initialised
  type: list
  elements: str
mons:
  description: Monitors, with whether each is in the quorum and its address.
  returned: when initialised
  type: dict
quorum:
  description: Monitors in the quorum.
  returned: when initialised
  type: list
  elements: str
osds:
  description: OSDs by name (osd.N), with host, up and in.
  returned: when initialised
  type: dict
  sample: {"osd.0": {"host": "pve1", "up": true, "in": true}}
pools:
  description: Pools with size, min_size and pg_num.
  returned: when initialised
  type: dict
pgs:
  description: Placement groups by state (e.g. active+clean, active+undersized+degraded).
  returned: when initialised
  type: dict
degraded_objects:
  description: Object copies missing (0 when healthy).
  returned: when initialised
  type: int
degraded_ratio:
  description: Share of object copies missing (0.0 to 1.0).
  returned: when initialised
  type: float
fsid:
  description: The Ceph cluster's id.
  returned: when initialised
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_ceph_ops import ceph_info
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    node={"type": "str", "required": True},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ceph_info)


if __name__ == "__main__":
    main()
