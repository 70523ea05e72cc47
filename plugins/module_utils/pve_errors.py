"""The one error type module_utils raise; only a module's main() turns it into fail_json."""

from __future__ import annotations


class PveError(Exception):
    """`str(error)` is the whole message: what failed, why, and what to do."""
