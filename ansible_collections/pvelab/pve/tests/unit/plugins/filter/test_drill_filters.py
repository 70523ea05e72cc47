"""The filters the drills read their lab with: which guests fail back to a node, and the tiny guest's page."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.filter import drills


@pytest.fixture(scope="module")
def filters() -> dict[str, Any]:
    return drills.FilterModule().filters()  # type: ignore[no-any-return]


PLACEMENTS = [
    {"name": "prefer-pve1", "nodes": ["pve1:2", "pve2:1"], "resources": ["vm:110"]},
    {"name": "prefer-pve1-sticky", "nodes": ["pve1:2", "pve2:1"], "resources": ["vm:111"], "failback": False},
    {"name": "anywhere", "nodes": ["pve1", "pve3"], "resources": ["vm:120"]},
    {"name": "old", "nodes": ["pve1:5"], "resources": ["vm:130"], "state": "absent"},
]


@pytest.mark.parametrize("node,guests", [
    ("pve1", ["vm:110", "vm:120"]),  # sticky does not fail back; equal priorities (0) count as the top; absent: gone
    ("pve2", []),  # pve2 is never the top priority of a placement
    ("pve3", ["vm:120"]),
])
def test_guests_fail_back_to_the_top_priority_nodes_of_a_failback_placement(
        filters: dict[str, Any], node: str, guests: list[str]) -> None:
    assert filters["ha_failback_guests"](PLACEMENTS, node) == guests


def test_a_guest_page_reads_as_a_dict(filters: dict[str, Any]) -> None:
    page = "vmid: 110\nnode: pve2\nboot_id: 4f2\nheartbeats: 298\nnot a field\n"
    assert filters["guest_page"](page) == {"vmid": "110", "node": "pve2", "boot_id": "4f2", "heartbeats": "298"}
    assert filters["guest_page"](None) == {}
