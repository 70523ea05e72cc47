"""`pveceph pool create|set`: PVE's defaults and how it applies a pool's settings (PVE::Ceph::Tools::set_pool).

Settings go one by one, `size` first (Ceph resets min_size when size changes), then the rest in
name order; one equal to the pool's current value is skipped (`skipping 'size', did not change`),
others are applied (`pool NAME: applying KEY = VALUE`) and Ceph's refusal, if any, is printed as it
comes; the task then fails naming every setting that did not take (`Could not set: ...`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CREATE_DEFAULTS = {"size": 3, "min_size": 2, "pg_num": 128, "application": "rbd", "pg_autoscale_mode": "warn"}


class PoolError(Exception):
    pass


def create_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The settings `pool create` applies: PVE's defaults for what is not given."""
    return {**CREATE_DEFAULTS, **{k: v for k, v in params.items() if v is not None}}


def apply_settings(pool: str, settings: dict[str, Any], current: dict[str, Any],
                   set_one: Callable[[str, str], str | None], say: Callable[[str], None]) -> None:
    """Apply `settings` to `pool` whose present values are `current` (Ceph's `osd pool get all`);
    set_one(key, value) returns Ceph's error text, or None when it took."""
    keys = (["size"] if "size" in settings else []) + sorted(k for k in settings if k != "size")
    failed = []
    for key in keys:
        value = str(settings[key])
        if key in current and str(current[key]) == value:
            say(f"skipping '{key}', did not change")
            continue
        say(f"pool {pool}: applying {key} = {value}")
        error = set_one(key, value)
        if error:
            say(error.rstrip("\n"))
            failed.append(key)
    if failed:
        raise PoolError(f"Could not set: {', '.join(sorted(failed))}")
