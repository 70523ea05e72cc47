"""Jinja filters the roles use on their lists of definitions:
  {{ pve_storage_definitions | kept_entries }}   the entries not being removed (state unset or not absent)"""

from __future__ import annotations

from typing import Any


def kept_entries(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The entries that stay (no `state`, or any state but `absent`), in their order."""
    return [entry for entry in entries or [] if entry.get("state", "present") != "absent"]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kept_entries": kept_entries}
