"""Access control's API (/access: tickets, users, tokens, groups, roles, ACLs, realms, passwords,
effective permissions) with pve-access-control's answers and texts. Registers the Guard the API
server asks on every call."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pvelab.pve import members
from pvelab.pve.access import store
from pvelab.pve.access.guard import AccessGuard, capabilities, enabled_problem
from pvelab.pve.access.perms import ROOT, PermissionDenied, Permissions
from pvelab.pve.access.store import AccessError
from pvelab.pve.access.usercfg import (
    POOL_RE,
    UserConfig,
    normalize_path,
    split_list,
    split_tokenid,
    valid_userid,
)
from pvelab.pve.api import auth
from pvelab.pve.api.routes import ApiException, Context, route, set_guard
from pvelab.pve.cluster import clusterlog

set_guard(AccessGuard())
T = TypeVar("T")
ACL_PATH_PATTERNS = (
    r"/", r"/access", r"/access/groups", r"/access/groups/[A-Za-z0-9.\-_]+", r"/access/realm",
    r"/access/realm/[A-Za-z0-9.\-_]+", r"/nodes", r"/nodes/[A-Za-z0-9.\-_]+", r"/pool",
    r"/pool/[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}", r"/sdn", r"/sdn/controllers",
    r"/sdn/controllers/[A-Za-z0-9_\-]+",
    r"/sdn/dns", r"/sdn/dns/[A-Za-z0-9]+", r"/sdn/ipams", r"/sdn/ipams/[A-Za-z0-9]+", r"/sdn/zones",
    r"/sdn/zones/[A-Za-z0-9.\-_]+", r"/sdn/zones/[A-Za-z0-9.\-_]+/[A-Za-z0-9.\-_]+",
    r"/sdn/zones/[A-Za-z0-9.\-_]+/[A-Za-z0-9.\-_]+/[1-9][0-9]{0,3}", r"/storage", r"/storage/[A-Za-z0-9.\-_]+",
    r"/vms", r"/vms/[1-9][0-9]{2,}", r"/mapping", r"/mapping/[A-Za-z0-9.\-_]+",
    r"/mapping/[A-Za-z0-9.\-_]+/[A-Za-z0-9.\-_]+")
ACL_PATHS_9 = (r"/sdn/fabrics", r"/sdn/fabrics/[A-Za-z0-9]+", r"/sdn/prefix-lists", r"/sdn/prefix-lists/[A-Za-z0-9]+",
               r"/sdn/route-maps", r"/sdn/route-maps/[A-Za-z0-9]+")


def check_path(path: str, major: str) -> bool:
    """AccessControl::check_path: the paths an ACL may be set on (PVE 9 adds the SDN fabrics and lists)."""
    patterns = ACL_PATH_PATTERNS + (ACL_PATHS_9 if major != "8" else ())
    return any(re.fullmatch(p, path) for p in patterns)


def failing(prefix: str, fn: Callable[[], T]) -> T:
    """A change under lock_user_config: its die text prefixed as PVE's (`create user failed: ...`)."""
    try:
        return fn()
    except AccessError as exc:
        if exc.param:
            raise ApiException(400, "Parameter verification failed.", {exc.param: str(exc)}) from exc
        raise ApiException(500, f"{prefix}: {exc}" if prefix else str(exc)) from exc
    except ValueError as exc:
        raise ApiException(500, f"{prefix}: {exc}" if prefix else str(exc)) from exc


def checker() -> Permissions:
    return Permissions(store.read())


def flag(value: Any) -> int:
    return 1 if value not in (None, False, 0, "0", "") else 0


# -- index, tickets, password --------------------------------------------------------------------
@route("GET /access")
def access_index(ctx: Context, params: dict[str, Any]) -> Any:
    return [{"subdir": s} for s in ("users", "groups", "roles", "acl", "domains", "openid", "tfa", "ticket",
                                    "password", "permissions")]


@route("GET /access/ticket")
def ticket_form(ctx: Context, params: dict[str, Any]) -> Any:
    return None  # the login form's check that the API answers


@route("POST /access/ticket")
def login(ctx: Context, params: dict[str, Any]) -> Any:
    username = params["username"]
    if "@" not in username and params.get("realm"):
        username = f"{username}@{params['realm']}"
    try:
        user = AccessGuard().login(username, params["password"])
    except auth.AuthError as exc:
        raise ApiException(401, "authentication failure") from exc  # answered 3 s late, as pveproxy does
    if params.get("path") and params.get("privs"):  # verify mode: may this user do that there?
        path = normalize_path(params["path"])
        if path is None or not checker().check(user, path, split_list(params["privs"]), noerr=True):
            raise ApiException(500, f"no permission ({params['path']}, {params['privs']})")
        return {"username": user}
    cfg = store.read()
    data = {"username": user, "ticket": auth.make_ticket(user), "CSRFPreventionToken": auth.make_csrf(user),
            "cap": capabilities(cfg, user)}
    name = members.read().get("cluster", {}).get("name")
    if name and Permissions(cfg).check(user, "/", ["Sys.Audit"], noerr=True):
        data["clustername"] = name
    clusterlog.log_msg("info", ROOT, f"successful auth for user '{user}'")
    return data


@route("PUT /access/password")
def change_password(ctx: Context, params: dict[str, Any]) -> Any:
    caller, userid = ctx.caller.name, params["userid"]
    name, realm = valid_userid(userid) or ("", "")
    if caller != ROOT:
        if caller == userid:
            problem = enabled_problem(store.read(), userid)
            if problem:
                raise ApiException(500, problem)
        elif userid == ROOT or realm == "pam":  # only root changes root's, and nobody else a system user's
            raise ApiException(403, str(PermissionDenied()))
    kind = store.read_domains().get(realm, {}).get("type")
    if kind is None:
        raise ApiException(500, f"auth domain '{realm}' does not exist")
    if kind == "pam":
        failing("", lambda: store.set_pam_password(name, params["password"]))
    else:
        failing("", lambda: store.set_pve_password(name, params["password"]))
    return None


# -- users ------------------------------------------------------------------------------------------
def user_entry(cfg: UserConfig, userid: str, full: bool) -> dict[str, Any]:
    data = cfg.users[userid]
    realm = userid.rsplit("@", 1)[1]
    entry: dict[str, Any] = {"userid": userid, "enable": data.get("enable", 0), "expire": data.get("expire", 0)}
    for key in ("firstname", "lastname", "email", "comment", "keys"):
        if data.get(key):
            entry[key] = data[key]
    kind = store.read_domains().get(realm, {}).get("type")
    if kind:
        entry["realm-type"] = kind
    if full:
        entry["groups"] = ",".join(sorted(data.get("groups", ())))
        entry["tokens"] = [token_entry(data, name, with_id=True) for name in sorted(data.get("tokens", {}))]
    return entry


@route("GET /access/users")
def user_index(ctx: Context, params: dict[str, Any]) -> Any:
    cfg = store.read()
    check, caller = Permissions(cfg), ctx.caller.user
    everyone = check.check(caller, "/access/groups", ["User.Modify", "Sys.Audit"], any_of=True, noerr=True)
    visible = set(cfg.users) if everyone else {caller} | {
        u for g in check.allowed_groups(caller, ["User.Modify", "Sys.Audit"]) for u in cfg.groups[g]["users"]}
    found = []
    for userid in sorted(visible & set(cfg.users)):
        if params.get("enabled") is not None and flag(params["enabled"]) != cfg.users[userid].get("enable", 0):
            continue
        found.append(user_entry(cfg, userid, bool(params.get("full"))))
    return found


@route("POST /access/users")
def user_create(ctx: Context, params: dict[str, Any]) -> Any:
    userid = params["userid"]
    name, realm = valid_userid(userid) or ("", "")

    def create(cfg: UserConfig) -> None:
        if userid in cfg.users:
            raise AccessError(f"user '{userid}' already exists")
        realms = store.read_domains()
        if realm not in realms:
            raise AccessError(f"auth domain '{realm}' does not exist")
        if realms[realm]["type"] == "pam" and not store.linux_user_exists(name):
            # PVE's pam realm authenticates against the node's own accounts: the user must exist there
            raise AccessError(f"user '{name}' does not exist on this node (pam realm users are the node's "
                              f"Linux accounts - create it with useradd first, or use the pve realm)")
        groups = split_list(params.get("groups"))
        for group in groups:
            if group not in cfg.groups:
                raise AccessError(f"no such group '{group}'")
        if params.get("password") is not None:
            if realms[realm]["type"] == "pam":
                store.set_pam_password(name, params["password"])
            else:
                store.set_pve_password(name, params["password"])
        entry: dict[str, Any] = {"enable": flag(params.get("enable", 1)), "expire": int(params.get("expire") or 0)}
        for key in ("firstname", "lastname", "email", "comment", "keys"):
            if params.get(key):
                entry[key] = params[key]
        cfg.users[userid] = entry
        for group in groups:
            entry.setdefault("groups", set()).add(group)
            cfg.groups[group]["users"].add(userid)

    failing("create user failed", lambda: store.update(create))
    return None


@route("GET /access/users/{userid}")
def user_read(ctx: Context, params: dict[str, Any]) -> Any:
    cfg = store.read()
    if params["userid"] not in cfg.users:
        raise ApiException(500, f"no such user ('{params['userid']}')")
    entry = user_entry(cfg, params["userid"], False)
    del entry["userid"]
    entry.pop("realm-type", None)
    data = cfg.users[params["userid"]]
    entry["groups"] = sorted(data.get("groups", ()))
    entry["tokens"] = {name: token_entry(data, name) for name in sorted(data.get("tokens", {}))}
    return entry


@route("PUT /access/users/{userid}")
def user_update(ctx: Context, params: dict[str, Any]) -> Any:
    userid = params["userid"]
    if params.get("append") and params.get("groups") is None:
        raise ApiException(400, "Parameter verification failed.", {"append": "missing groups"})

    def update(cfg: UserConfig) -> None:
        user = cfg.users.get(userid)
        if user is None:
            raise AccessError(f"no such user ('{userid}')")
        if params.get("enable") is not None:
            user["enable"] = flag(params["enable"])
        if params.get("expire") is not None:
            user["expire"] = int(params["expire"])
        if params.get("groups") is not None:
            wanted = split_list(params["groups"])
            for group in wanted:
                if group not in cfg.groups:
                    raise AccessError(f"no such group '{group}'")
            if not params.get("append"):
                for group in user.get("groups", set()):
                    cfg.groups[group]["users"].discard(userid)
                user["groups"] = set()
            for group in wanted:
                user.setdefault("groups", set()).add(group)
                cfg.groups[group]["users"].add(userid)
        for key in ("firstname", "lastname", "email", "comment", "keys"):
            if params.get(key) is not None:
                user[key] = params[key]

    failing("update user failed", lambda: store.update(update))
    return None


@route("DELETE /access/users/{userid}")
def user_delete(ctx: Context, params: dict[str, Any]) -> Any:
    userid = params["userid"]
    name, realm = valid_userid(userid) or ("", "")

    def delete(cfg: UserConfig) -> None:
        cfg.users.pop(userid, None)
        for group in cfg.groups.values():
            group["users"].discard(userid)
        for _, node in cfg.acl.walk():
            node.users.pop(userid, None)
            for tokenid in [t for t in node.tokens if t.startswith(f"{userid}!")]:
                del node.tokens[tokenid]
        if store.read_domains().get(realm, {}).get("type") == "pve":
            store.delete_pve_password(name)

    failing("delete user failed", lambda: store.update(delete))
    store.change_token_secrets(lambda secrets: drop_tokens_of(secrets, userid))
    return None


def drop_tokens_of(secrets: dict[str, str], userid: str) -> None:
    for full in [k for k in secrets if k.startswith(f"{userid}!")]:
        del secrets[full]


def drop_token(secrets: dict[str, str], full: str) -> None:
    secrets.pop(full, None)


# -- tokens -----------------------------------------------------------------------------------------
def token_entry(user: dict[str, Any], name: str, with_id: bool = False) -> dict[str, Any]:
    token = user["tokens"][name]
    entry: dict[str, Any] = {"expire": token.get("expire", 0), "privsep": token.get("privsep", 0)}
    if token.get("comment"):
        entry["comment"] = token["comment"]
    return {"tokenid": name, **entry} if with_id else entry


def owner_of(cfg: UserConfig, userid: str) -> dict[str, Any]:
    user = cfg.users.get(userid)
    if user is None:
        raise AccessError(f"no such user ('{userid}')")
    return user


@route("GET /access/users/{userid}/token")
def token_index(ctx: Context, params: dict[str, Any]) -> Any:
    user = failing("", lambda: owner_of(store.read(), params["userid"]))
    return [token_entry(user, name, with_id=True) for name in sorted(user.get("tokens", {}))]


@route("GET /access/users/{userid}/token/{tokenid}")
def token_read(ctx: Context, params: dict[str, Any]) -> Any:
    user = failing("", lambda: owner_of(store.read(), params["userid"]))
    if params["tokenid"] not in user.get("tokens", {}):
        raise ApiException(500, f"no such token '{params['tokenid']}' for user '{params['userid']}'")
    return token_entry(user, params["tokenid"])


@route("POST /access/users/{userid}/token/{tokenid}")
def token_create(ctx: Context, params: dict[str, Any]) -> Any:
    userid, name = params["userid"], params["tokenid"]
    full = f"{userid}!{name}"
    if split_tokenid(full) is None:
        raise ApiException(400, "Parameter verification failed.", {"tokenid": "invalid format"})
    secret = str(uuid.uuid4())

    def create(cfg: UserConfig) -> dict[str, Any]:
        user = owner_of(cfg, userid)
        if name in user.get("tokens", {}):
            raise AccessError("Token already exists.", param="tokenid")
        token: dict[str, Any] = {"privsep": flag(params.get("privsep", 1)), "expire": int(params.get("expire") or 0)}
        if params.get("comment"):
            token["comment"] = params["comment"]
        user.setdefault("tokens", {})[name] = token
        store.change_token_secrets(lambda secrets: secrets.__setitem__(full, secret))
        return token_entry(user, name)

    info = failing("", lambda: store.update(create))
    return {"full-tokenid": full, "info": info, "value": secret}


@route("PUT /access/users/{userid}/token/{tokenid}")
def token_update(ctx: Context, params: dict[str, Any]) -> Any:
    userid, name = params["userid"], params["tokenid"]

    def update(cfg: UserConfig) -> dict[str, Any]:
        user = owner_of(cfg, userid)
        token = user.get("tokens", {}).get(name)
        if token is None:
            raise AccessError(f"no such token '{name}' for user '{userid}'")
        for key in ("privsep", "expire"):
            if params.get(key) is not None:
                token[key] = flag(params[key]) if key == "privsep" else int(params[key])
        if params.get("comment") is not None:
            token["comment"] = params["comment"]
        for key in split_list(params.get("delete")):
            if key != "comment":
                raise AccessError(f"unknown option '{key}'", param="delete")
            token.pop("comment", None)
        return token_entry(user, name)

    return failing("", lambda: store.update(update))


@route("DELETE /access/users/{userid}/token/{tokenid}")
def token_delete(ctx: Context, params: dict[str, Any]) -> Any:
    userid, name = params["userid"], params["tokenid"]
    full = f"{userid}!{name}"

    def delete(cfg: UserConfig) -> None:
        user = owner_of(cfg, userid)
        if name not in user.get("tokens", {}):
            raise AccessError(f"no such token '{name}' for user '{userid}'")
        del user["tokens"][name]
        for _, node in cfg.acl.walk():
            node.tokens.pop(full, None)
        store.change_token_secrets(lambda secrets: drop_token(secrets, full))

    failing("", lambda: store.update(delete))
    return None


# -- groups -----------------------------------------------------------------------------------------
@route("GET /access/groups")
def group_index(ctx: Context, params: dict[str, Any]) -> Any:
    cfg = store.read()
    check = Permissions(cfg)
    found = []
    for group in sorted(cfg.groups):
        if not check.check(ctx.caller.name, f"/access/groups/{group}", ["User.Modify", "Sys.Audit", "Group.Allocate"],
                           any_of=True, noerr=True):
            continue
        entry: dict[str, Any] = {"groupid": group, "users": ",".join(sorted(cfg.groups[group]["users"]))}
        if cfg.groups[group].get("comment"):
            entry["comment"] = cfg.groups[group]["comment"]
        found.append(entry)
    return found


@route("POST /access/groups")
def group_create(ctx: Context, params: dict[str, Any]) -> Any:
    group = params["groupid"]

    def create(cfg: UserConfig) -> None:
        if group in cfg.groups:
            raise AccessError(f"group '{group}' already exists")
        cfg.groups[group] = {"users": set(), **({"comment": params["comment"]} if params.get("comment") else {})}

    failing("create group failed", lambda: store.update(create))
    return None


@route("GET /access/groups/{groupid}")
def group_read(ctx: Context, params: dict[str, Any]) -> Any:
    group = store.read().groups.get(params["groupid"])
    if group is None:
        raise ApiException(500, f"group '{params['groupid']}' does not exist")
    return {"members": sorted(group["users"]), **({"comment": group["comment"]} if group.get("comment") else {})}


@route("PUT /access/groups/{groupid}")
def group_update(ctx: Context, params: dict[str, Any]) -> Any:
    def update(cfg: UserConfig) -> None:
        group = cfg.groups.get(params["groupid"])
        if group is None:
            raise AccessError(f"group '{params['groupid']}' does not exist")
        if params.get("comment") is not None:
            group["comment"] = params["comment"]

    failing("update group failed", lambda: store.update(update))
    return None


@route("DELETE /access/groups/{groupid}")
def group_delete(ctx: Context, params: dict[str, Any]) -> Any:
    name = params["groupid"]

    def delete(cfg: UserConfig) -> None:
        if name not in cfg.groups:
            raise AccessError(f"group '{name}' does not exist")
        del cfg.groups[name]
        for user in cfg.users.values():
            user.get("groups", set()).discard(name)
        for _, node in cfg.acl.walk():
            node.groups.pop(name, None)

    failing("delete group failed", lambda: store.update(delete))
    return None


# -- roles ------------------------------------------------------------------------------------------
@route("GET /access/roles")
def role_index(ctx: Context, params: dict[str, Any]) -> Any:
    cfg = store.read()
    return [{"roleid": role, "privs": ",".join(sorted(cfg.roles[role])), "special": int(cfg.is_special_role(role))}
            for role in sorted(cfg.roles)]


@route("GET /access/roles/{roleid}")
def role_read(ctx: Context, params: dict[str, Any]) -> Any:
    privs = store.read().roles.get(params["roleid"])
    if privs is None:
        raise ApiException(500, f"role '{params['roleid']}' does not exist")
    return dict.fromkeys(sorted(privs), 1)


def add_privileges(cfg: UserConfig, role: str, privs: str | None) -> None:
    for priv in split_list(privs):
        if priv not in cfg.roles["Administrator"]:
            raise AccessError(f"invalid privilege '{priv}'")
        cfg.roles[role].add(priv)


@route("POST /access/roles")
def role_create(ctx: Context, params: dict[str, Any]) -> Any:
    role = params["roleid"]
    if role.upper().startswith("PVE"):
        raise ApiException(400, "Parameter verification failed.", {
            "roleid": "cannot use role ID starting with the (case-insensitive) 'PVE' namespace"})

    def create(cfg: UserConfig) -> None:
        if role in cfg.roles:
            raise AccessError(f"role '{role}' already exists")
        cfg.roles[role] = set()
        add_privileges(cfg, role, params.get("privs"))

    failing("create role failed", lambda: store.update(create))
    return None


@route("PUT /access/roles/{roleid}")
def role_update(ctx: Context, params: dict[str, Any]) -> Any:
    role = params["roleid"]
    if store.read().is_special_role(role):
        raise ApiException(500, f"auto-generated role '{role}' cannot be modified")
    if params.get("append") and params.get("privs") is None:
        raise ApiException(400, "Parameter verification failed.", {"append": "missing privs"})

    def update(cfg: UserConfig) -> None:
        if role not in cfg.roles:
            raise AccessError(f"role '{role}' does not exist")
        if not params.get("append"):
            cfg.roles[role] = set()
        add_privileges(cfg, role, params.get("privs"))

    failing("update role failed", lambda: store.update(update))
    return None


@route("DELETE /access/roles/{roleid}")
def role_delete(ctx: Context, params: dict[str, Any]) -> Any:
    role = params["roleid"]
    if store.read().is_special_role(role):
        raise ApiException(500, f"auto-generated role '{role}' cannot be deleted")

    def delete(cfg: UserConfig) -> None:
        if role not in cfg.roles:
            raise AccessError(f"role '{role}' does not exist")
        del cfg.roles[role]
        for _, node in cfg.acl.walk():
            for entries in (node.users, node.groups, node.tokens):
                for roles in entries.values():
                    roles.pop(role, None)

    failing("delete role failed", lambda: store.update(delete))
    return None


# -- ACLs -------------------------------------------------------------------------------------------
@route("GET /access/acl")
def acl_index(ctx: Context, params: dict[str, Any]) -> Any:
    cfg = store.read()
    check = Permissions(cfg)
    audit = check.check(ctx.caller.name, "/access", ["Sys.Audit"], noerr=True)
    found = []
    for path, node in cfg.acl.walk():
        if not audit and not check.check_perm_modify(ctx.caller.name, path, noerr=True):
            continue
        for kind, entries, prefix in (("group", node.groups, ""), ("user", node.users, ""),
                                      ("token", node.tokens, "")):
            for ugid in sorted(entries):
                for role in sorted(entries[ugid]):
                    found.append({"path": path, "type": kind, "ugid": f"{prefix}{ugid}", "roleid": role,
                                  "propagate": entries[ugid][role]})
    return found


@route("PUT /access/acl")
def acl_update(ctx: Context, params: dict[str, Any]) -> Any:
    if not (params.get("users") or params.get("groups") or params.get("tokens")):
        required = "either 'users', 'groups' or 'tokens' is required."
        raise ApiException(400, "Parameter verification failed.",
                           dict.fromkeys(("users", "groups", "tokens"), required))
    path = normalize_path(params["path"])
    cfg_now = store.read()
    if path is None or (not flag(params.get("delete")) and not check_path(path, cfg_now.major)):
        raise ApiException(400, "Parameter verification failed.", {"path": f"invalid ACL path '{params['path']}'"})
    delete = bool(flag(params.get("delete")))
    propagate = flag(params.get("propagate", 1))
    caller = ctx.caller.name

    def update(cfg: UserConfig) -> None:
        held = Permissions(cfg).permissions(caller, path)
        node = cfg.acl.find(path)
        assert node is not None
        verb = "remove" if delete else "add"
        for role in split_list(params["roles"]):
            if role not in cfg.roles:
                raise AccessError(f"role '{role}' does not exist")
            if "Permissions.Modify" not in held:  # hand out only what the caller holds there
                for priv in cfg.roles[role]:
                    if priv not in held:
                        raise AccessError(f"Cannot {verb} role '{role}' - requires 'Permissions.Modify' or "
                                          "superset of privileges.", param="role")
                    if propagate and held[priv] != propagate and not delete:
                        raise AccessError(f"Cannot {verb} role '{role}' with propagation - requires "
                                          "'Permissions.Modify' or propagated superset of privileges.", param="role")
                if role == "NoAccess":
                    raise AccessError(f"Cannot {verb} role '{role}' - requires 'Permissions.Modify'", param="role")
            for group in split_list(params.get("groups")):
                if group not in cfg.groups:
                    raise AccessError(f"group '{group}' does not exist")
                apply(node.groups, group, role, delete, propagate)
            for userid in split_list(params.get("users")):
                if valid_userid(userid) is None:
                    raise AccessError(f"value '{userid}' does not look like a valid user name")
                if userid not in cfg.users:
                    raise AccessError(f"user '{userid}' does not exist")
                apply(node.users, userid, role, delete, propagate)
            for tokenid in split_list(params.get("tokens")):
                parts = split_tokenid(tokenid)
                if parts is None:
                    raise AccessError(f"'{tokenid}' is not a valid token ID - not able to split into user and "
                                      "token parts")
                owner_of(cfg, parts[0])
                if cfg.token(tokenid) is None:
                    raise AccessError(f"no such token '{parts[1]}' for user '{parts[0]}'")
                apply(node.tokens, tokenid, role, delete, propagate)

    failing("ACL update failed", lambda: store.update(update))
    return None


def apply(entries: dict[str, dict[str, int]], member: str, role: str, delete: bool, propagate: int) -> None:
    if delete:
        entries.get(member, {}).pop(role, None)
        if member in entries and not entries[member]:
            del entries[member]
    else:
        entries.setdefault(member, {})[role] = propagate


# -- realms -----------------------------------------------------------------------------------------
@route("GET /access/domains")
def domain_index(ctx: Context, params: dict[str, Any]) -> Any:
    found = []
    for realm, options in sorted(store.read_domains().items()):
        entry = {"realm": realm, "type": options["type"], "comment": options.get("comment", "")}
        if options.get("tfa"):
            entry["tfa"] = options["tfa"]
        found.append(entry)
    return found


@route("GET /access/domains/{realm}")
def domain_read(ctx: Context, params: dict[str, Any]) -> Any:
    options = store.read_domains().get(params["realm"])
    if options is None:
        raise ApiException(500, f"domain '{params['realm']}' does not exist")
    return {**{k: (int(v) if k == "default" else v) for k, v in options.items()}, "digest": domains_digest()}


def domains_digest() -> str:
    try:
        return hashlib.sha1(store.DOMAINS_CFG.read_bytes()).hexdigest()
    except FileNotFoundError:
        return hashlib.sha1(b"").hexdigest()


@route("POST /access/domains")
def domain_create(ctx: Context, params: dict[str, Any]) -> Any:
    realm, kind = params["realm"], params["type"]

    def create() -> None:
        with store.domains_locked() as realms:
            if realm in realms:
                raise AccessError(f"domain '{realm}' already exists")
            if realm in ("pam", "pve"):
                raise AccessError(f"unable to use reserved name '{realm}'")
            if kind in ("pam", "pve"):
                raise AccessError(f"unable to create builtin type '{kind}'")
            # The lab has no directory or OpenID server to authenticate against (no address outside the
            # lab may be contacted): a realm of those types could never log anybody in.
            raise AccessError(f"realm type '{kind}' is not available in the lab twin (it has pam and pve)")

    failing("add auth server failed", create)
    return None


@route("PUT /access/domains/{realm}")
def domain_update(ctx: Context, params: dict[str, Any]) -> Any:
    realm = params["realm"]
    changes = {k: v for k, v in params.items() if k in ("comment", "default", "tfa")}

    def update() -> None:
        with store.domains_locked() as realms:
            if realm not in realms:
                raise AccessError(f"domain '{realm}' does not exist")
            if not changes and not params.get("delete"):
                raise AccessError("no options specified")
            for key in split_list(params.get("delete")):
                realms[realm].pop(key, None)
            if flag(changes.get("default")):
                for options in realms.values():
                    options.pop("default", None)
            for key, value in changes.items():
                if key == "default" and not flag(value):
                    realms[realm].pop("default", None)
                else:
                    realms[realm][key] = flag(value) if key == "default" else value

    failing("update auth server failed", update)
    return None


@route("DELETE /access/domains/{realm}")
def domain_delete(ctx: Context, params: dict[str, Any]) -> Any:
    realm = params["realm"]

    def delete() -> None:
        with store.domains_locked() as realms:
            if realm not in realms:
                raise AccessError(f"authentication domain '{realm}' does not exist")
            if realm in ("pam", "pve"):
                raise AccessError(f"unable to delete builtin realm '{realm}'")
            del realms[realm]

    failing("delete auth server failed", delete)
    return None


# -- effective permissions --------------------------------------------------------------------------
EFFECTIVE_PATHS = ("/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms")


def effective_permissions(cfg: UserConfig, who: str) -> dict[str, dict[str, int]]:
    """get_effective_permissions: every top path, ACL path and pool member path where `who` holds anything."""
    paths = set(EFFECTIVE_PATHS) | {path for path, _ in cfg.acl.walk()}
    for pool in cfg.pools.values():
        paths |= {f"/vms/{v}" for v in pool["vms"]} | {f"/storage/{s}" for s in pool["storage"]}
    check = Permissions(cfg)
    found = {path: check.permissions(who, path) for path in sorted(paths)}
    return {path: privs for path, privs in found.items() if privs}


def permissions_for(cfg: UserConfig, caller: str, userid: str | None, path: str | None) -> dict[str, Any]:
    """GET /access/permissions: yourself and your own tokens; others need Sys.Audit on /access."""
    target = userid or caller
    parts = split_tokenid(target)
    if target != caller and not (parts and parts[0] == caller):
        Permissions(cfg).check(caller, "/access", ["Sys.Audit"])
    if path:
        return {path: Permissions(cfg).permissions(target, path)}
    return effective_permissions(cfg, target)


@route("GET /access/permissions")
def permissions_index(ctx: Context, params: dict[str, Any]) -> Any:
    try:
        return permissions_for(store.read(), ctx.caller.name, params.get("userid"), params.get("path"))
    except PermissionDenied as exc:
        raise ApiException(403, str(exc)) from exc


# -- pools (pve-manager's /pools; user.cfg is their file) ------------------------------------------
def pool_name_ok(poolid: str) -> None:
    if len(poolid.split("/")) > 3:
        raise AccessError(f"pool name '{poolid}' nested too deeply (max levels = 3)", param="poolid")
    if not POOL_RE.match(poolid):
        raise AccessError(f"pool name '{poolid}' contains invalid characters", param="poolid")


def create_pool(poolid: str, comment: str | None) -> None:
    def create(cfg: UserConfig) -> None:
        pool_name_ok(poolid)
        if poolid in cfg.pools:
            raise AccessError(f"pool '{poolid}' already exists")
        leaf = poolid.rsplit("/", 1)[-1]
        if not leaf[:1].isalpha():
            raise AccessError(f"invalid pool ID '{poolid}' - must start with a letter", param="poolid")
        if "/" in poolid and poolid.rsplit("/", 1)[0] not in cfg.pools:
            raise AccessError(f"parent '{poolid.rsplit('/', 1)[0]}' does not exist")
        entry = cfg.new_pool(poolid)
        if "/" in poolid:
            entry["parent"] = poolid.rsplit("/", 1)[0]
            cfg.pools[entry["parent"]]["pools"].add(poolid)
        if comment:
            entry["comment"] = comment

    failing("create pool failed", lambda: store.update(create))


def update_pool(caller: str, params: dict[str, Any]) -> None:
    poolid = params["poolid"]

    def update(cfg: UserConfig) -> None:
        pool = cfg.pools.get(poolid)
        if pool is None:
            raise AccessError(f"pool '{poolid}' does not exist")
        check = Permissions(cfg)
        if params.get("comment") is not None:
            pool["comment"] = params["comment"]
        delete = flag(params.get("delete"))
        for text in split_list(params.get("vms")):
            vmid = int(text)
            check.check_perm_modify(caller, f"/vms/{vmid}")
            if delete:
                if vmid not in pool["vms"]:
                    raise AccessError(f"VM {vmid} is not a pool member")
                pool["vms"].discard(vmid)
                cfg.vms.pop(vmid, None)
                continue
            if vmid in pool["vms"]:
                raise AccessError(f"VM {vmid} is already a pool member")
            current = cfg.vms.get(vmid)
            if current is not None:
                if not flag(params.get("allow-move")):
                    raise AccessError(f"VM {vmid} belongs already to pool '{current}' and 'allow-move' is not set")
                if not check.check(caller, f"/pool/{current}", ["Pool.Allocate"], noerr=True):
                    raise PermissionDenied(f"/pool/{current}, Pool.Allocate")
                cfg.pools[current]["vms"].discard(vmid)
            pool["vms"].add(vmid)
            cfg.vms[vmid] = poolid
        for storage in split_list(params.get("storage")):
            check.check_perm_modify(caller, f"/storage/{storage}")
            if delete:
                if storage not in pool["storage"]:
                    raise AccessError(f"Storage '{storage}' is not a pool member")
                pool["storage"].discard(storage)
            else:
                if storage in pool["storage"]:
                    raise AccessError(f"Storage '{storage}' is already a pool member")
                pool["storage"].add(storage)

    try:
        failing("update pools failed", lambda: store.update(update))
    except PermissionDenied as exc:
        raise ApiException(403, str(exc)) from exc


def delete_pool(poolid: str, guests: set[int], storages: set[str]) -> None:
    """Only an empty pool (destroyed guests and removed storages do not count)."""
    def delete(cfg: UserConfig) -> None:
        pool = cfg.pools.get(poolid)
        if pool is None:
            raise AccessError(f"pool '{poolid}' does not exist")
        if pool["pools"]:
            raise AccessError(f"pool '{poolid}' is not empty (contains pool '{sorted(pool['pools'])[0]}')")
        for vmid in sorted(pool["vms"]):
            if vmid in guests:
                raise AccessError(f"pool '{poolid}' is not empty (contains VM {vmid})")
        for storage in sorted(pool["storage"]):
            if storage in storages:
                raise AccessError(f"pool '{poolid}' is not empty (contains storage '{storage}')")
        del cfg.pools[poolid]
        for vmid in pool["vms"]:
            cfg.vms.pop(vmid, None)
        if pool.get("parent") in cfg.pools:
            cfg.pools[pool["parent"]]["pools"].discard(poolid)
        parent = cfg.acl.find("/pool", create=False)
        if parent is not None:
            parent.children.pop(poolid, None)

    failing("delete pool failed", lambda: store.update(delete))

