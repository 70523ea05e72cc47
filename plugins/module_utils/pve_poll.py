"""The one wait loop of the modules: ask again until there is an answer or the time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(probe: Callable[[], T | None], timeout: float, interval: float) -> T | None:
    """Call `probe` until it returns something other than None, or `timeout` seconds pass (then None)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer is not None:
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
