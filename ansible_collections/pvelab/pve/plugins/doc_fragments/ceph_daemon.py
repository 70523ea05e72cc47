"""The options of the modules that make or remove one Ceph daemon on a node (monitor, manager, OSD)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  node:
    description: The PVE node (as the cluster names it) the action runs on; the API at O(api_host) passes it on.
    type: str
    required: true
  state:
    description: Whether it should exist.
    type: str
    choices: [present, absent]
    default: present
"""
