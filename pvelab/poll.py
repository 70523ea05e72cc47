"""The one wait loop of pvelab (twin, tests, bench) and of the modules (plugins/module_utils/pve_poll.py
links here; it imports nothing of pvelab, so Ansible can ship it): ask again until there is an answer
or the time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T | None:
    """Call `probe` until it returns something other than None, or `timeout` seconds pass (then None)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer is not None:
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> float:
    """Wait until predicate() holds; return the seconds it took, or raise TimeoutError naming `what`."""
    started = time.monotonic()
    if poll(lambda: True if predicate() else None, timeout, interval) is None:
        raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
    return time.monotonic() - started
