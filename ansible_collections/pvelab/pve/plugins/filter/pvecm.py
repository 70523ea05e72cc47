"""Jinja filters over pvecm output, using the same parsers as the modules and the verify suite:
  {{ out.stdout | pvelab.pve.pvecm_status }}, {{ out.stdout | pvelab.pve.pvecm_nodes }},
  {{ out.stdout | pvelab.pve.corosync_links }}"""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pvecm_output import (
    parse_cfgtool_status,
    parse_nodes,
    parse_status,
)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pvecm_status": parse_status, "pvecm_nodes": parse_nodes, "corosync_links": parse_cfgtool_status}
