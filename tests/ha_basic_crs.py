"""For fake CRM environments of the unit tests: a cluster whose datacenter.cfg sets no `crs`, so the
Manager schedules in the 'basic' mode and asks for no node or service figures."""

from __future__ import annotations

from typing import Any


class BasicCrs:
    def crs_settings(self) -> dict[str, str]:
        return {}

    def node_stats(self, mode: str) -> dict[str, dict[str, Any]]:
        return {}

    def service_stats(self, mode: str) -> dict[str, dict[str, Any]]:
        return {}
