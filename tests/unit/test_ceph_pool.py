"""`pveceph pool create`'s settings, applied as PVE applies them (order, skips, Ceph's refusals)."""

from __future__ import annotations

import pytest

from pvelab.pve.ceph.pool import PoolError, apply_settings, create_settings


def test_a_new_pool_gets_pves_defaults_in_pves_order() -> None:
    lines: list[str] = []
    applied: list[tuple[str, str]] = []
    fresh = {"size": 3, "min_size": 2, "pg_num": 128, "pg_autoscale_mode": "on"}  # Ceph's `osd pool get all`
    apply_settings("vmpool", create_settings({}), fresh, lambda k, v: applied.append((k, v)) or None, lines.append)
    assert lines == ["skipping 'size', did not change", "pool vmpool: applying application = rbd",
                     "skipping 'min_size', did not change", "pool vmpool: applying pg_autoscale_mode = warn",
                     "skipping 'pg_num', did not change"]
    assert applied == [("application", "rbd"), ("pg_autoscale_mode", "warn")]


def test_cephs_refusal_is_printed_and_the_task_fails_naming_the_setting() -> None:
    lines: list[str] = []

    def ceph(key: str, value: str) -> str | None:
        return "Error EINVAL: pool min_size must be between 1 and size, which is set to 3\n" if key == "min_size" \
            else None

    with pytest.raises(PoolError, match="^Could not set: min_size$"):
        apply_settings("vmpool", {"min_size": 4, "size": 3}, {"size": 3, "min_size": 2}, ceph, lines.append)
    assert lines == ["skipping 'size', did not change", "pool vmpool: applying min_size = 4",
                     "Error EINVAL: pool min_size must be between 1 and size, which is set to 3"]
