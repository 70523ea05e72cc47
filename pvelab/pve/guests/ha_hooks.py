"""Where guest commands meet HA: qemu-server and pve-container hand start, stop, shutdown and migrate
of an HA-managed guest to HA, refuse to destroy it without `purge`, and show its `ha` state. The HA
package registers its answers here (pvelab.pve.ha.redirect), so guests never import HA; without HA
every guest is unmanaged."""

from __future__ import annotations

from typing import Any, Protocol

from pvelab.pve.api.routes import Context, handlers


class GuestHa(Protocol):
    """What guest commands ask of HA (pvelab.pve.ha.redirect answers it)."""

    def redirected(self, ctx: Context, sid: str) -> bool:
        """Whether this call must go through HA (a managed guest, and the caller is not HA's LRM)."""

    def guest_status(self, sid: str) -> dict[str, Any]: ...

    def start(self, ctx: Context, sid: str, vmid: int, what: str) -> str: ...

    def stop(self, ctx: Context, sid: str, vmid: int, what: str, timeout: int) -> str: ...

    def migrate(self, ctx: Context, sid: str, vmid: int, what: str, target: str) -> str: ...

    def check_destroy(self, sid: str, what: str, vmid: int, purge: bool) -> bool:
        """Refuse destroying a resource without purge; True when it is one (to be removed with the guest)."""

    def remove_resource(self, sid: str, what: str, vmid: int, log: Any) -> None: ...


class NoHa:
    """A guest as no HA stack sees it: never managed, so nothing is ever handed to HA."""

    def redirected(self, ctx: Context, sid: str) -> bool:
        return False

    def guest_status(self, sid: str) -> dict[str, Any]:
        return {"managed": 0}

    def start(self, ctx: Context, sid: str, vmid: int, what: str) -> str:
        raise NotImplementedError

    def stop(self, ctx: Context, sid: str, vmid: int, what: str, timeout: int) -> str:
        raise NotImplementedError

    def migrate(self, ctx: Context, sid: str, vmid: int, what: str, target: str) -> str:
        raise NotImplementedError

    def check_destroy(self, sid: str, what: str, vmid: int, purge: bool) -> bool:
        return False

    def remove_resource(self, sid: str, what: str, vmid: int, log: Any) -> None:
        return None


_REGISTERED: list[GuestHa] = []


def register(hooks: GuestHa) -> None:
    _REGISTERED[:] = [hooks]


def ha() -> GuestHa:
    """HA's hooks: every subsystem's API is loaded first, so HA has registered where it is installed."""
    if not _REGISTERED:
        handlers()
    return _REGISTERED[0] if _REGISTERED else NoHa()
