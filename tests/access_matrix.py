"""The permission matrix's expectations, derived from the API schema's `permissions` objects alone
(not from pvelab's own checker): which callers PVE lets through to each method. Shared by the unit
test (the Guard, every served endpoint) and the lab test (the same over HTTP on real nodes)."""

from __future__ import annotations

from typing import Any

# PVEAuditor as pve-access-control defines it (PVE 9 adds VM.GuestAgent.Audit)
AUDITOR_PRIVS = {
    "9": frozenset({"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit",
                    "VM.GuestAgent.Audit"}),
    "8": frozenset({"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit"}),
}


def passes(check: list[Any], privs: frozenset[str]) -> bool:
    """A check expression for a caller holding `privs` on every path, and no rights over other users."""
    test = check[0]
    if test == "and":
        return all(passes(c, privs) for c in check[1:])
    if test == "or":
        return any(passes(c, privs) for c in check[1:])
    if test == "perm":
        wanted, any_of = check[2], "any" in check[3:]
        return any(p in privs for p in wanted) if any_of else all(p in privs for p in wanted)
    if test == "userid-group":  # any of the privileges on /access/groups lets every user through
        return any(p in privs for p in check[1])
    return False  # userid-param (self, Realm.AllocateUser) and perm-modify: never an auditor's


def expected_allowed(permissions: dict[str, Any] | None, privs: frozenset[str] | None) -> bool:
    """Whether the API lets the call through to its handler (privs None: root@pam)."""
    permissions = permissions or {}
    if privs is None or permissions.get("user") in ("all", "world"):
        return True  # `user: all`: the handler filters or checks for itself
    if not permissions.get("check"):
        return False  # no permissions object: root@pam only
    return passes(permissions["check"], privs)
