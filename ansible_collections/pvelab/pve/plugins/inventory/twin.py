"""Inventory plugin: the nodes of the running pvelab twin lab, from what `pvelab twin up` wrote."""

from __future__ import annotations

DOCUMENTATION = r"""
name: twin
short_description: Nodes of the running pvelab lab twin
version_added: "0.1.0"
author: pvelab developers (!UNKNOWN)
description:
  - Reads the inventory that C(pvelab twin up) writes (C(<state_dir>/inventory.yml)) - group C(pve_nodes)
    with node addresses, BMC addresses and credentials - so the playbooks follow the lab that is up.
options:
  plugin:
    description: Must be C(pvelab.pve.twin).
    required: true
    choices: [pvelab.pve.twin]
  state_dir:
    description: Where the twin keeps the default lab's files.
    type: path
    default: /var/lib/pvelab/lab
    env:
      - name: PVELAB_STATE_DIR
  lab:
    description:
      - A named lab (C(pvelab twin up --lab NAME)) instead of the default one; its files are in
        O(labs_dir)/NAME.
    type: str
    default: ""
    env:
      - name: PVELAB_LAB
  labs_dir:
    description: Where the twin keeps named labs' files.
    type: path
    default: /var/lib/pvelab/labs
    env:
      - name: PVELAB_LABS_DIR
"""

EXAMPLES = r"""
# inventory/twin/pvelab_twin.yml
plugin: pvelab.pve.twin

# The lab named s01 (or run with PVELAB_LAB=s01 in the environment): add
# lab: s01
"""

import os

import yaml
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.template import trust_as_template


def trusted(value):
    """The twin's own file is as trustworthy as a static inventory: mark its strings so."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


class InventoryModule(BaseInventoryPlugin):
    NAME = "pvelab.pve.twin"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("twin.yml", "twin.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        lab = self.get_option("lab")
        folder = os.path.join(self.get_option("labs_dir"), lab) if lab else self.get_option("state_dir")
        source = os.path.join(folder, "inventory.yml")
        try:
            with open(source) as fh:
                data = yaml.safe_load(fh)
        except FileNotFoundError:
            up = f"pvelab twin up --lab {lab}" if lab else "pvelab twin up"
            raise AnsibleParserError(f"no twin lab is up ({source} does not exist) — run: {up}") from None
        except PermissionError:
            raise AnsibleParserError(f"cannot read {source} — run as root (the lab's secrets are root's)") from None
        top = data["all"]
        for name, value in top.get("vars", {}).items():
            self.inventory.set_variable("all", name, trusted(value))
        for group, content in top.get("children", {}).items():
            self.inventory.add_group(group)
            for host, host_vars in (content.get("hosts") or {}).items():
                self.inventory.add_host(host, group=group)
                for name, value in (host_vars or {}).items():
                    self.inventory.set_variable(host, name, trusted(value))
