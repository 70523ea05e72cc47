"""The filter the roles use to tell the definitions that stay from those being removed."""

from __future__ import annotations

from ansible_collections.pvelab.pve.plugins.filter import entries


def test_kept_entries_are_those_not_absent_in_their_order() -> None:
    kept = entries.FilterModule().filters()["kept_entries"]
    entries_given = [{"id": "a", "state": "absent"}, {"id": "b"}, {"id": "c", "state": "present"},
                     {"id": "d", "state": "absent"}, {"id": "e", "state": "started"}]
    assert [e["id"] for e in kept(entries_given)] == ["b", "c", "e"]
    assert kept(None) == [] and kept([]) == []
