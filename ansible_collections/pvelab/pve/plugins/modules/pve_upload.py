#!/usr/bin/python
"""Ansible module: a file (an ISO image, a container template) in a PVE node's storage, uploaded from the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_upload
short_description: An ISO image or container template in a Proxmox VE storage, uploaded from the controller
description:
  - Makes file O(filename) exist in storage O(storage) of node O(node) (volume C(STORAGE:iso/NAME) for an ISO), uploaded
    from O(src) on the controller as the GUI's Upload does (C(POST /nodes/{node}/storage/{storage}/upload), PVE's
    C(imgcopy) task, waited for), with its SHA-256 checked by PVE; or not exist.
  - A file already there with the size of O(src) is left alone (PVE lists no checksums of stored files); give a new
    O(filename) for new content of the same size.
version_added: "0.7.0"
author: pvelab developers (!UNKNOWN)
options:
  node:
    description: The node whose storage it is.
    type: str
    required: true
  storage:
    description: The storage (one that holds O(content), e.g. C(local)).
    type: str
    required: true
  src:
    description: The file on the controller; needed for O(state=present).
    type: path
  filename:
    description: Its name in the storage (the name of O(src) when not given).
    type: str
  content:
    description: What it is.
    type: str
    choices: [iso, vztmpl, import]
    default: iso
  state:
    description: Whether it should be there.
    type: str
    choices: [present, absent]
    default: present
  task_timeout:
    description: Seconds to wait for the upload or removal task.
    type: int
    default: 600
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost). The API timeout (O(api_timeout)) must cover the transfer.
"""

EXAMPLES = r"""
- name: A nested node's answer disc beside the installer ISO
  pvelab.pve.pve_upload:
    api_host: 203.0.113.10
    api_password: "{{ l0_root_password }}"
    node: l0
    storage: local
    src: build/pvelab-ais-4011.iso
  delegate_to: localhost
"""

RETURN = r"""
volid:
  description: The file's volume ID (C(local:iso/NAME.iso)).
  returned: always
  type: str
size:
  description: Its size in bytes.
  returned: when state is present
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_upload_ops import ensure_upload

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    node={"type": "str", "required": True},
    storage={"type": "str", "required": True},
    src={"type": "path"},
    filename={"type": "str"},
    content={"type": "str", "default": "iso", "choices": ["iso", "vztmpl", "import"]},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    task_timeout={"type": "int", "default": 600},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF,
                           required_if=[("state", "present", ["src"])])
    run_module(module, ensure_upload)


if __name__ == "__main__":
    main()
