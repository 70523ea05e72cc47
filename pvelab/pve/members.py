"""pmxcfs's view of the cluster: quorum and which nodes are online (.members), where each guest is (.vmlist)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MEMBERS = Path("/etc/pve/.members")
VMLIST = Path("/etc/pve/.vmlist")


def read() -> dict[str, Any]:
    try:
        data = json.loads(MEMBERS.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def quorate() -> bool:
    """PVE's check_cfs_quorum: a standalone node is always quorate."""
    members = read()
    if not members:
        return False
    cluster = members.get("cluster")
    return not cluster or bool(cluster.get("quorate"))


def node_info(local: str) -> dict[str, bool]:
    """Every cluster node -> online (in the corosync membership); the local node is always up."""
    nodes = {name: bool(info.get("online")) for name, info in (read().get("nodelist") or {}).items()}
    nodes[local] = True
    return nodes


def vmlist(path: Path | None = None) -> dict[int, dict[str, Any]]:
    """{vmid: {node, type, version}} for every guest of the cluster, as pmxcfs lists them."""
    try:
        return {int(k): v for k, v in json.loads((path or VMLIST).read_text()).get("ids", {}).items()}
    except (OSError, ValueError):
        return {}
