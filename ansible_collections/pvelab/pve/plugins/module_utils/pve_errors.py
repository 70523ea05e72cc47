"""The one error type module_utils raise; only a module's main() turns it into fail_json."""

from __future__ import annotations

from typing import Any


class PveError(Exception):
    """`str(error)` is the whole message: what failed, why, and what to do. `result` carries what was
    already done when the failure came (e.g. `changed: True` and the new config version), so Ansible
    reports the partial change instead of "failed, unchanged"."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result: dict[str, Any] = dict(result or {})
