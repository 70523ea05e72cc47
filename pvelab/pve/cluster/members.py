"""pmxcfs's view of the cluster, from /etc/pve/.members: quorum and which nodes are online."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MEMBERS = Path("/etc/pve/.members")


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
