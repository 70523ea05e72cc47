"""Jinja filters over pvecm output, using the same parsers as the modules and the verify suite:
  {{ (pvecm_status_cmd.stdout) | pvecm_status }}, {{ out.stdout | pvecm_nodes }},
  {{ out.stdout | corosync_links }}"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "module_utils"))

from pvecm_output import parse_cfgtool_status, parse_nodes, parse_status  # noqa: E402


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pvecm_status": parse_status, "pvecm_nodes": parse_nodes, "corosync_links": parse_cfgtool_status}
