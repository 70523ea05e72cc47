"""Access control's side of every API call (the framework's Guard): logins for every realm user,
API tokens against user.cfg and priv/token.cfg, the ticket user still enabled, and the schema's
`permissions` object checked as PVE's check_api2_permissions does."""

from __future__ import annotations

import hmac
import syslog
import time
from collections.abc import Callable
from typing import Any

from pvelab.pve.access import store
from pvelab.pve.access.perms import ROOT, NoSuchUser, PermissionDenied, Permissions
from pvelab.pve.access.usercfg import UserConfig, split_tokenid, valid_userid
from pvelab.pve.api import auth
from pvelab.pve.api.routes import ApiException, Caller

LOGIN_FAILED = "authentication failure"


def enabled_problem(cfg: UserConfig, userid: str) -> str | None:
    """check_user_enabled's text, or None when the user may act."""
    user = cfg.users.get(userid)
    if user is None:
        return f"no such user ('{userid}')"
    if not user.get("enable"):
        return f"user '{userid}' is disabled"
    if user.get("expire") and user["expire"] < time.time():
        return f"user '{userid}' access expired"
    return None


class AccessGuard:
    def login(self, username: str, password: str) -> str:
        cfg = store.read()
        reason = enabled_problem(cfg, username) if valid_userid(username) else "invalid user name"
        if reason is None and password.startswith("PVE:"):  # a valid ticket of the same user renews it
            try:
                if auth.verify_ticket(password) == username:
                    return username
            except auth.AuthError:
                pass
            reason = "invalid ticket"
        elif reason is None:
            realms = store.read_domains()
            realm = username.rsplit("@", 1)[1]
            if realm not in realms:
                reason = f"auth domain '{realm}' does not exist"
            elif not store.password_matches(username, password, realms):
                reason = "invalid credentials"
        if reason is not None:
            syslog.syslog(syslog.LOG_WARNING, f"authentication failure; rhost=unknown user={username} msg={reason}")
            raise auth.AuthError(LOGIN_FAILED)
        return username

    def token(self, value: str) -> Caller:
        full, sep, secret = value.rpartition("=")
        parts = split_tokenid(full) if sep else None
        cfg = store.read()
        token = cfg.token(full) if parts else None
        if parts is None or token is None or enabled_problem(cfg, parts[0]) is not None \
                or (token.get("expire") and token["expire"] < time.time()):
            raise auth.AuthError("Authentication failed!")
        stored = store.read_token_secrets().get(full)
        if stored is None or not hmac.compare_digest(stored, secret.strip()):
            raise auth.AuthError("Authentication failed!")
        return Caller(parts[0], parts[1])

    def still_valid(self, user: str) -> None:
        if user != ROOT and enabled_problem(store.read(), user) is not None:
            raise auth.AuthError("Authentication failed!")

    def check(self, caller: Caller, permissions: dict[str, Any] | None, params: dict[str, Any]) -> None:
        if caller.name == ROOT:
            return  # root@pam may do everything: no need to read user.cfg (root's tokens are checked)
        try:
            Permissions(store.read()).check_api(permissions, caller.name or None, params)
        except PermissionDenied as exc:
            raise ApiException(403, str(exc)) from exc
        except NoSuchUser as exc:
            raise ApiException(500, str(exc)) from exc


def permissions() -> Permissions:
    """The cluster's permissions as user.cfg holds them now, for a check of many parts."""
    return Permissions(store.read())


def allowed(who: str, path: str, privs: list[str], any_of: bool = True) -> bool:
    """For the list endpoints that filter what a caller sees (`user: all` with a check in the handler)."""
    return who == ROOT or permissions().check(who, path, privs, any_of, noerr=True)


def require(who: str, path: str, privs: list[str], any_of: bool = False) -> None:
    """A handler's own check (where the schema says `user: all` and a description): PVE's 403."""
    if who == ROOT:
        return
    try:
        Permissions(store.read()).check(who, path, privs, any_of)
    except PermissionDenied as exc:
        raise ApiException(403, str(exc)) from exc


def require_vm(who: str, vmid: int, privs: list[str], pool: str | None = None) -> None:
    """check_vm_perm: the given (or the VM's) pool first, then /vms/VMID."""
    if who == ROOT:
        return
    try:
        Permissions(store.read()).check_vm(who, vmid, privs, pool=pool)
    except PermissionDenied as exc:
        raise ApiException(403, str(exc)) from exc


def require_guest_create(who: str, vmid: int, pool: str | None, privs: list[str] | None = None) -> None:
    """Creating (or restoring) a guest: VM.Allocate on the pool it goes into or on /vms/VMID; a pool
    that does not exist is a 403 (check_pool_exist)."""
    if pool and pool not in store.read().pools:
        raise ApiException(403, str(PermissionDenied(f"pool '{pool}' does not exist")))
    require_vm(who, vmid, privs or ["VM.Allocate"], pool)


def checker_for(who: str) -> Callable[[str, list[str]], bool]:
    """allowed() for many paths at once: one user.cfg read, one cache."""
    if who == ROOT:
        return lambda path, privs: True
    check = Permissions(store.read())
    return lambda path, privs: check.check(who, path, privs, any_of=True, noerr=True)


# The login answer's `cap`: what the GUI may show, per bucket (compute_api_permission).
CAP_PATHS = ("/", "/nodes", "/access/groups", "/vms", "/storage", "/sdn", "/mapping")
CAP_PREFIXES = {"vms": ("VM.",), "access": ("User.", "Group."), "storage": ("Datastore.",), "nodes": ("Sys.",),
                "sdn": ("SDN.",), "mapping": ("Mapping.",)}


def capabilities(cfg: UserConfig, who: str) -> dict[str, dict[str, int]]:
    checker = Permissions(cfg)
    cap: dict[str, dict[str, int]] = {k: {} for k in ("vms", "access", "storage", "nodes", "sdn", "dc", "mapping")}
    paths = set(CAP_PATHS) | {path for path, _ in cfg.acl.walk()}
    for path in paths:
        privs = checker.permissions(who, path)
        first = path.strip("/").split("/")[0]
        if first == "pool":
            for priv in privs:
                if priv.startswith("VM.") or priv == "Permissions.Modify":
                    cap["vms"][priv] = 1
                if priv.startswith("Datastore.") or priv == "Permissions.Modify":
                    cap["storage"][priv] = 1
            continue
        bucket = "dc" if path == "/" else first
        if bucket not in cap:
            continue
        for priv in privs:
            if bucket == "dc":
                keep = priv in ("Sys.Audit", "Sys.Modify") or priv.startswith("SDN.")
            else:
                keep = priv.startswith(CAP_PREFIXES[bucket]) or priv == "Permissions.Modify"
            if keep:
                cap[bucket][priv] = 1
    return cap
