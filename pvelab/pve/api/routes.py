"""The API's routing table: each subsystem's API module registers its handlers here with @route, and
the server (and pvesh) only look handlers up. A handler takes (ctx, params) and returns `data`."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pvelab.pve.api.auth import Caller
from pvelab.pve.refusal import Refusal


class ApiException(Exception):
    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or {}


def param_error(name: str, message: str) -> ApiException:
    """PVE's 400 for one parameter a handler refuses (raise_param_exc)."""
    return ApiException(400, "Parameter verification failed.", {name: message})


def refusing(fn: Callable[[], Any]) -> Any:
    """Run a handler's work; its refusals become PVE's API answers (no quorum: a read-only /etc/pve)."""
    try:
        return fn()
    except Refusal as exc:
        if exc.param:
            raise ApiException(400, "Parameter verification failed.", {exc.param: str(exc)}) from exc
        raise ApiException(exc.status, str(exc)) from exc
    except PermissionError as exc:
        raise ApiException(500, "cluster not ready - no quorum?") from exc


@dataclass(frozen=True)
class WithAttributes:
    """A handler's answer with result attributes beside `data` (PVE's set_result_attrib: a task log's
    `total`, the network's pending `changes`)."""
    data: Any
    attributes: dict[str, Any]


def answer_body(answer: Any) -> dict[str, Any]:
    """The JSON body of a handler's answer: {"data": ...} and any result attributes."""
    if isinstance(answer, WithAttributes):
        return {"data": answer.data, **answer.attributes}
    return {"data": answer}


@dataclass(frozen=True)
class Context:
    caller: Caller
    node: str  # this node's name
    ha: bool = False  # a call of the HA LRM (PVE's RPC environment 'ha'): never redirected to HA


class Guard(Protocol):
    """Who may call what: access control registers one (set_guard) when its API module loads; the
    server asks it on every request, so the framework names no subsystem."""

    def login(self, username: str, password: str) -> str:
        """The user id a password (or a ticket being renewed) proves; AuthError otherwise."""

    def token(self, value: str) -> Caller:
        """The caller an API token (`USER@REALM!NAME=SECRET`) proves; AuthError otherwise."""

    def still_valid(self, user: str) -> None:
        """AuthError if the user of a ticket is gone, disabled or expired (checked on every call)."""

    def check(self, caller: Caller, permissions: dict[str, Any] | None, params: dict[str, Any]) -> None:
        """ApiException(403) unless the schema's `permissions` object lets the caller make this call."""


GUARDS: list[Guard] = []


def set_guard(guard: Guard) -> None:
    GUARDS[:] = [guard]


def guard() -> Guard | None:
    load_apis()
    return GUARDS[0] if GUARDS else None


Handler = Callable[[Context, dict[str, Any]], Any]
HANDLERS: dict[str, Handler] = {}


def route(key: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[key] = fn
        return fn
    return register


def handlers() -> dict[str, Handler]:
    """Every registered handler, by "METHOD /template"."""
    load_apis()
    return HANDLERS


@functools.cache  # once per process: handlers() is on every request's path
def load_apis() -> None:
    """Import the API modules every package of the PVE layer names in its API_MODULES, so their @route
    handlers register: the framework finds its subsystems and names none of them."""
    import pvelab.pve as layer

    for found in pkgutil.iter_modules(layer.__path__):
        if found.ispkg and found.name != "api":
            package = importlib.import_module(f"{layer.__name__}.{found.name}")
            for module in getattr(package, "API_MODULES", ()):
                importlib.import_module(f"{package.__name__}.{module}")


def handler_for(method: str, template: str, path: str) -> Handler:
    """The handler of an endpoint the schema knows; 501 as PVE answers when the twin lacks it."""
    handler = handlers().get(f"{method} {template}")
    if handler is None:
        raise ApiException(501, f"Method '{method} {path}' not implemented")
    return handler
