"""The filter the roles use to tell the definitions that stay from those being removed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "entries.py"


def test_kept_entries_are_those_not_absent_in_their_order() -> None:
    spec = importlib.util.spec_from_file_location("entry_filters", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kept = module.FilterModule().filters()["kept_entries"]
    entries = [{"id": "a", "state": "absent"}, {"id": "b"}, {"id": "c", "state": "present"},
               {"id": "d", "state": "absent"}, {"id": "e", "state": "started"}]
    assert [e["id"] for e in kept(entries)] == ["b", "c", "e"]
    assert kept(None) == [] and kept([]) == []
