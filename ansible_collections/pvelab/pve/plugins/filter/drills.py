"""Jinja filters the drills use to read what they watch:
  {{ pve_ha_placements | ha_failback_guests('pve1') }}   guests whose placement brings them back to pve1
  {{ page.content | guest_page }}                        the tiny guest's status page as a dict"""

from __future__ import annotations

from typing import Any


def priorities(placement: dict[str, Any]) -> dict[str, int]:
    """{node: priority} of a placement's `nodes` (NODE or NODE:PRIORITY; 0 when not given)."""
    out: dict[str, int] = {}
    for entry in placement.get("nodes") or []:
        name, _sep, priority = str(entry).partition(":")
        out[name] = int(priority or 0)
    return out


def ha_failback_guests(placements: list[dict[str, Any]], node: str) -> list[str]:
    """The resources the HA manager moves back to `node` once it is online: their placement fails
    back (the default) and ranks `node` among its highest priorities."""
    guests: list[str] = []
    for placement in placements or []:
        ranks = priorities(placement)
        if placement.get("state") == "absent" or placement.get("failback") is False or node not in ranks:
            continue
        if ranks[node] == max(ranks.values()):
            guests.extend(placement.get("resources") or [])
    return guests


def guest_page(content: str) -> dict[str, str]:
    """`key: value` lines as a dict (the tiny guest's page: vmid, node, boot_id, heartbeats, ...)."""
    return dict(line.split(": ", 1) for line in (content or "").splitlines() if ": " in line)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ha_failback_guests": ha_failback_guests, "guest_page": guest_page}
