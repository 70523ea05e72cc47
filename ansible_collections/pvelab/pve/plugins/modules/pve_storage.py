#!/usr/bin/python
"""Ansible module: a storage definition of a PVE cluster (/etc/pve/storage.cfg)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pve_storage
short_description: A storage definition of a Proxmox VE node or cluster (storage.cfg)
description:
  - Makes storage O(storage) exist with the given options, or not exist, through the API of the node
    at O(api_host) (C(/storage)). In a cluster, C(/etc/pve/storage.cfg) is shared, so one node is enough.
  - Only the options given are compared and changed; others are left as they are.
  - Options PVE fixes at creation (C(path) of a V(dir) storage, C(vgname) and C(thinpool) of an
    V(lvmthin), C(pool) of an V(rbd) or a V(zfspool), C(portal) and C(target) of an V(iscsidirect),
    C(server), C(export) and C(path) of an V(nfs)) cannot change; asking to is refused with the fix (remove, add again).
  - Adding an V(nfs) storage mounts it on the node that is asked (PVE's check that the server answers and the
    export mounts); a server that does not answer is refused with PVE's message and nothing is added.
  - Removing a storage removes its definition only, as C(pvesm remove) does; the volumes stay where they are.
version_added: "0.2.0"
author: pvelab developers (!UNKNOWN)
options:
  storage:
    description: Storage ID (as in C(local-lvm:vm-100-disk-0)).
    type: str
    required: true
  state:
    description: Whether the storage should exist.
    type: str
    choices: [present, absent]
    default: present
  type:
    description: Storage type; required to create one, checked against an existing one.
    type: str
    choices: [dir, lvmthin, rbd, iscsidirect, nfs, zfspool]
  path:
    description: Directory of a V(dir) storage; where an V(nfs) storage is mounted (PVE's C(/mnt/pve/<storage>) when
      not given).
    type: str
  content:
    description: Content types the storage holds (C(images), C(rootdir), C(iso), C(vztmpl), C(backup), C(snippets)).
    type: list
    elements: str
  shared:
    description: A V(dir) storage that every node sees with the same content (a shared mount).
    type: bool
  nodes:
    description: Nodes the storage exists on (all when not set).
    type: list
    elements: str
  disable:
    description: Keep the definition but switch the storage off.
    type: bool
  vgname:
    description: Volume group of an V(lvmthin) storage.
    type: str
  thinpool:
    description: Thin pool of an V(lvmthin) storage.
    type: str
  pool:
    description: Ceph pool of an V(rbd) storage; ZFS dataset (C(rpool/data)) of a V(zfspool) storage.
    type: str
  krbd:
    description: Map V(rbd) images with the kernel client instead of librbd.
    type: bool
  monhost:
    description: Monitors of an external Ceph cluster, for an V(rbd) storage.
    type: str
  portal:
    description: The iSCSI portal (address or name, optionally C(:port)) of an V(iscsidirect) storage.
    type: str
  target:
    description: The iSCSI target (its IQN) of an V(iscsidirect) storage; its LUNs are the storage's volumes.
    type: str
  server:
    description: The NFS server (address or name) of an V(nfs) storage.
    type: str
  export:
    description: The export path on the server of an V(nfs) storage (as C(pvesm scan nfs) lists it).
    type: str
  mount_options:
    description: NFS mount options of an V(nfs) storage (storage.cfg's C(options), for example C(vers=3,soft)).
    type: str
  sparse:
    description: Thin provisioning of a V(zfspool) storage's disks (PVE's C(sparse)).
    type: bool
extends_documentation_fragment:
  - pvelab.pve.api
  - pvelab.pve.attributes
notes:
  - Runs on the controller (delegate to localhost).
"""

EXAMPLES = r"""
- name: A backup and image store every node sees
  pvelab.pve.pve_storage:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    storage: labshare
    type: dir
    path: /mnt/lab-shared
    shared: true
    content: [images, backup]
  delegate_to: localhost

- name: The SAN's LUNs, for guests' disks (QEMU logs in to the target itself)
  pvelab.pve.pve_storage:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    storage: san
    type: iscsidirect
    portal: 198.18.0.5
    target: iqn.2026-12.test.pvelab:nas.store1
    content: [images]
  delegate_to: localhost

- name: The NAS's export, for ISOs and backups
  pvelab.pve.pve_storage:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    storage: nas
    type: nfs
    server: 198.18.0.5
    export: /vmstore
    content: [iso, backup, images]
  delegate_to: localhost

- name: No more ISOs on local
  pvelab.pve.pve_storage:
    api_host: 198.18.0.11
    api_password: "{{ pve_root_password }}"
    storage: local
    content: [vztmpl, backup]
  delegate_to: localhost
"""

RETURN = r"""
storage:
  description: The storage ID.
  returned: always
  type: str
config:
  description: The storage's options after the run (what they would be, in check mode), as storage.cfg spells them.
  returned: when state is present
  type: dict
  sample: {"type": "dir", "path": "/mnt/lab-shared", "content": "backup,images", "shared": "1"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import (
    API_ARGUMENT_SPEC,
    API_REQUIRED_ONE_OF,
    API_REQUIRED_TOGETHER,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.module_utils.pve_storage_ops import ensure

ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    storage={"type": "str", "required": True},
    state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    type={"type": "str", "choices": ["dir", "lvmthin", "rbd", "iscsidirect", "nfs", "zfspool"]},
    path={"type": "str"},
    content={"type": "list", "elements": "str"},
    shared={"type": "bool"},
    nodes={"type": "list", "elements": "str"},
    disable={"type": "bool"},
    vgname={"type": "str"},
    thinpool={"type": "str"},
    pool={"type": "str"},
    krbd={"type": "bool"},
    monhost={"type": "str"},
    portal={"type": "str"},
    target={"type": "str"},
    server={"type": "str"},
    export={"type": "str"},
    mount_options={"type": "str"},
    sparse={"type": "bool"},
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=API_REQUIRED_TOGETHER, required_one_of=API_REQUIRED_ONE_OF)
    run_module(module, ensure)


if __name__ == "__main__":
    main()
