"""The refusal every subsystem of the PVE layer raises (kept import-free: the HA daemons load it and
must stay small); the API turns it into PVE's answer (routes.refusing)."""

from __future__ import annotations


class Refusal(Exception):
    """A subsystem's refusal with PVE's text: HTTP `status`, or a 400 parameter error naming `param`."""

    def __init__(self, message: str, param: str | None = None, status: int = 500) -> None:
        super().__init__(message)
        self.param, self.status = param, status
