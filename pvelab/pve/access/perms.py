"""Who may do what, as PVE decides it (pve-access-control's roles() and RPCEnvironment):
roles along an ACL path (a deeper level replaces, a user hides its groups, NoAccess wins),
pool membership, privilege-separated tokens, and the API schema's `permissions` objects."""

from __future__ import annotations

import re
from typing import Any

from pvelab.pve.access.usercfg import UserConfig, normalize_path, split_tokenid, valid_userid

ROOT = "root@pam"


class PermissionDenied(Exception):
    """PVE's 403 `Permission check failed (...)`."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(f"Permission check failed ({detail})" if detail else "Permission check failed")


class NoSuchUser(Exception):
    """A plain error (500), as PVE's `die` in check_user_exist."""


def roles(cfg: UserConfig, who: str, path: str | None) -> dict[str, int]:
    """{role: propagate} of a user or token on `path`, without pools (AccessControl::roles)."""
    if who == ROOT:
        return {"Administrator": 1}
    if path is None:
        return {}
    if split_tokenid(who):
        token = cfg.token(who)
        if token is None:
            return {}
        if not token.get("privsep"):
            return roles(cfg, split_tokenid(who)[0], path)  # type: ignore[index]
    found: dict[str, int] = {}
    parts = [""] if path == "/" else path.split("/")
    while parts and parts[-1] == "" and path != "/":  # Perl's split drops trailing empty fields
        parts.pop()
    node = cfg.acl
    missing = False
    for index, part in enumerate(parts):
        final = index == len(parts) - 1
        if part:
            child = None if missing else node.children.get(part)
            if child is None:
                missing = True
                continue
            node = child
        if missing:
            continue
        new = applicable(node.tokens.get(who, {}), final)
        if new:
            found = new
            continue
        new = applicable(node.users.get(who, {}), final)
        if new:
            found = new  # a user's own entries hide its groups' on the same node
            continue
        new = {}
        for group, entries in node.groups.items():
            if who in cfg.groups.get(group, {}).get("users", ()):
                new.update(applicable(entries, final))
        if new:
            found = new
    if "NoAccess" in found:
        return {"NoAccess": found["NoAccess"]}
    return found


def applicable(entries: dict[str, int], final: bool) -> dict[str, int]:
    return {role: flag for role, flag in entries.items() if final or flag}


class Permissions:
    """One caller's view of one user.cfg, with the per-request caches PVE's RPCEnvironment keeps."""

    def __init__(self, cfg: UserConfig) -> None:
        self.cfg = cfg
        self.pool_roles: dict[str, dict[str, dict[str, int]]] = {}
        self.privs_cache: dict[tuple[str, str], dict[str, int]] = {}

    def permissions(self, who: str, path: str | None) -> dict[str, int]:
        """{privilege: propagate} of `who` on `path` (RPCEnvironment::permissions)."""
        if who == ROOT:
            return dict.fromkeys(self.cfg.roles["Administrator"], 1)
        if path is None:
            return {}
        owner = None
        parts = split_tokenid(who)
        if parts:
            token = self.cfg.token(who)
            if token is None:
                return {}
            owner_privs = self.permissions(parts[0], path)
            if not token.get("privsep"):
                return owner_privs
            owner = parts[0]
        elif valid_userid(who) is None:
            return {}
        cached = self.privs_cache.get((who, path))
        if cached is not None:
            return cached
        privs = self.compile(who, path, owner)
        self.privs_cache[(who, path)] = privs
        return privs

    def compile(self, who: str, path: str, owner: str | None) -> dict[str, int]:
        pool_roles = self.pool_roles_of(who)
        found = roles(self.cfg, who, path)
        if path in pool_roles and "NoAccess" not in found:
            if "NoAccess" in pool_roles[path]:
                found = {"NoAccess": 0}  # a pool's NoAccess trumps a direct grant
            else:
                for role in pool_roles[path]:
                    found.setdefault(role, 0)  # pool-derived roles never propagate
        privs: dict[str, int] = {}
        for role, flag in found.items():
            for priv in self.cfg.roles.get(role, ()):
                privs[priv] = privs.get(priv, 0) or flag
        if owner and owner != ROOT:  # a privilege-separated token: the intersection with its owner
            mine = self.permissions(owner, path)
            privs = {p: (1 if mine[p] and flag else 0) for p, flag in privs.items() if p in mine}
        return privs

    def pool_roles_of(self, who: str) -> dict[str, dict[str, int]]:
        if who not in self.pool_roles:
            found: dict[str, dict[str, int]] = {}
            for pool, data in self.cfg.pools.items():
                granted = roles(self.cfg, who, f"/pool/{pool}")
                if not granted:
                    continue
                for vmid in data["vms"]:
                    found.setdefault(f"/vms/{vmid}", {}).update(dict.fromkeys(granted, 1))
                for storage in data["storage"]:
                    found.setdefault(f"/storage/{storage}", {}).update(dict.fromkeys(granted, 1))
            self.pool_roles[who] = found
        return self.pool_roles[who]

    # -- check helpers (RPCEnvironment::check, check_any, check_full) ---------------------------
    def check(self, who: str, path: str, privs: list[str], any_of: bool = False, noerr: bool = False) -> bool:
        held = self.permissions(who, path)
        for priv in privs:
            if priv not in self.cfg.roles["Administrator"]:
                raise ValueError(f"invalid privilege '{priv}'")
        ok = any(p in held for p in privs) if any_of else all(p in held for p in privs)
        if ok or noerr:
            return ok
        if any_of:
            raise PermissionDenied(f"{path}, {'|'.join(privs)}")
        raise PermissionDenied(f"{path}, {next(p for p in privs if p not in held)}")

    def check_vm(self, who: str, vmid: int, privs: list[str], any_of: bool = False, noerr: bool = False,
                 pool: str | None = None) -> bool:
        """check_vm_perm: the given (or the VM's) pool first, then /vms/VMID."""
        pool = pool or self.cfg.vms.get(int(vmid))
        if pool and self.check(who, f"/pool/{pool}", privs, any_of, noerr=True):
            return True
        return self.check(who, f"/vms/{vmid}", privs, any_of, noerr)

    def check_perm_modify(self, who: str, path: str | None, noerr: bool = False) -> bool:
        if not path:
            return self.check(who, "/access", ["Permissions.Modify"], noerr=noerr)
        tests = ["Permissions.Modify"]
        for prefix, extra in (("/storage/", "Datastore.Allocate"), ("/vms/", "VM.Allocate"),
                              ("/pool/", "Pool.Allocate")):
            if path.startswith(prefix) and len(path) > len(prefix):
                tests.append(extra)
        return self.check(who, path, tests, any_of=True, noerr=noerr)

    def user_exists(self, userid: str | None, noerr: bool) -> bool:
        if userid and valid_userid(userid) and userid in self.cfg.users:
            return True
        if noerr:
            return False
        raise NoSuchUser(f"no such user ('{userid}')")

    def allowed_groups(self, who: str, privs: list[str]) -> set[str]:
        return {g for g in self.cfg.groups if self.check(who, f"/access/groups/{g}", privs, True, noerr=True)}

    # -- the API schema's permissions objects (check_api2_permissions) ---------------------------
    def check_api(self, permissions: dict[str, Any] | None, who: str | None, params: dict[str, Any]) -> None:
        if permissions and permissions.get("user") == "world":
            return  # the login box's calls: PVE's server does not even authenticate them
        if who is None:
            raise PermissionDenied("user != null")
        if who == ROOT:
            return
        if not permissions:
            raise PermissionDenied("user != root@pam")
        if permissions.get("user") == "all":
            return
        if permissions.get("check"):
            self.exec_check(permissions["check"], who, params)
            return
        raise PermissionDenied()

    def exec_check(self, check: list[Any], who: str, params: dict[str, Any], noerr: bool = False) -> bool:
        test = check[0]
        if test == "and":
            for sub in check[1:]:
                self.exec_check(sub, who, params)
            return True
        if test == "or":
            if any(self.exec_check(sub, who, params, noerr=True) for sub in check[1:]):
                return True
            if noerr:
                return False
            raise PermissionDenied()
        if test == "perm":
            template, privs, options = check[1], check[2], options_of(check[3:])
            required = options.get("require_param") or options.get("require-param")
            if required and params.get(required) is None:
                if noerr:
                    return False
                raise PermissionDenied()
            path = normalize_path(template_replace(template, params)) or template
            return self.check(who, path, privs, bool(options.get("any")), noerr)
        if test == "userid-group":
            return self.userid_group(check, who, params, noerr)
        if test == "userid-param":
            userid = str(params.get("userid") or "")
            if check[1] == "self":
                if not self.user_exists(userid, noerr):
                    return False
                if who == userid:
                    return True
                if noerr:
                    return False
                raise PermissionDenied()
            if check[1] == "Realm.AllocateUser":
                realm = (valid_userid(userid) or ("", ""))[1]
                return self.check(who, f"/access/realm/{realm}", ["Realm.AllocateUser"], noerr=noerr)
            raise ValueError("unknown userid-param test")
        if test == "perm-modify":
            path = normalize_path(template_replace(check[1], params))
            return False if path is None else self.check_perm_modify(who, path, noerr)
        raise ValueError("unknown permission test")

    def userid_group(self, check: list[Any], who: str, params: dict[str, Any], noerr: bool) -> bool:
        privs, options = check[1], options_of(check[2:])
        userid = params.get("userid")
        existing = options.get("groups_param") != "create"
        if existing and not self.user_exists(userid, noerr):
            return False
        if self.check(who, "/access/groups", privs, any_of=True, noerr=True):
            return True
        groups = self.allowed_groups(who, privs)
        if options.get("groups_param"):
            wanted = [g for g in re.split(r"[;,\s]+", str(params.get("groups") or "")) if g]
            if not wanted:
                raise PermissionDenied(f"/access/groups, {'|'.join(privs)}")
            for group in wanted:
                if group not in groups:
                    raise PermissionDenied(f"/access/groups/{group}, {'|'.join(privs)}")
        if existing and not any(userid in self.cfg.groups[g]["users"] for g in groups):
            if noerr:
                return False
            raise PermissionDenied()
        return True


def options_of(rest: list[Any]) -> dict[str, Any]:
    """The key/value pairs after a check's fixed arguments (`"any", 1`)."""
    return {rest[i]: rest[i + 1] for i in range(0, len(rest) - 1, 2)}


def template_replace(template: str, params: dict[str, Any]) -> str:
    """PVE::Tools::template_replace: `{name}` by the parameter's value, or `-` when missing or empty."""
    return re.sub(r"\{(\w+)\}", lambda m: str(params[m.group(1)]) if params.get(m.group(1)) not in (None, "")
                  else "-", template)
