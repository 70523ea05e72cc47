"""Users, groups, roles, ACLs, API tokens and pools of a PVE cluster, through its API (/access, /pools):
what the pve_user, pve_group, pve_role, pve_acl, pve_token and pve_pool modules compare, create,
change and remove. user.cfg is cluster-wide, so one node is enough. Every refusal comes before check
mode returns."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

USER_FIELDS = ("comment", "email", "firstname", "lastname", "enable", "expire")


def changed(name: str, what: str, before: dict[str, Any], after: dict[str, Any], check_mode: bool,
            apply: Any) -> dict[str, Any]:
    """The common end: nothing to do, or the diff, the message in check mode, the call otherwise."""
    if before == after:
        return {"changed": False, name: what}
    result = {"changed": True, name: what, "diff": {"before": before, "after": after}}
    if check_mode:
        return {**result, "msg": f"{name} '{what}' would be {'removed' if not after else 'changed'}"}
    apply()
    return result


def csv(values: list[Any] | None) -> str:
    return ",".join(str(v) for v in sorted(values or [], key=str))


# -- users --------------------------------------------------------------------------------------------
def user_state(entry: dict[str, Any]) -> dict[str, Any]:
    state = {k: entry[k] for k in USER_FIELDS if entry.get(k) not in (None, "")}
    state["enable"] = int(entry.get("enable", 1))
    state["expire"] = int(entry.get("expire", 0))
    state["groups"] = sorted(entry.get("groups") or [])
    return state


def ensure_user(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    userid = p["userid"]
    if "@" not in userid:
        raise PveError(f"userid '{userid}' needs its realm, as in '{userid}@pve' (pve realm) or '{userid}@pam'")
    users = {u["userid"]: u for u in api.get("/access/users", full=1)}
    entry = users.get(userid)
    if p["state"] == "absent":
        before = user_state({**entry, "groups": entry.get("groups", "").split(",") if entry.get("groups") else []}) \
            if entry else {}
        return changed("userid", userid, before, {}, check_mode, lambda: api.delete(f"/access/users/{userid}"))
    if p.get("groups"):
        known = {g["groupid"] for g in api.get("/access/groups")}
        missing = sorted(set(p["groups"]) - known)
        if missing:
            raise PveError(f"group {', '.join(missing)} does not exist: make it first (pvelab.pve.pve_group)")
    if entry is None:
        if userid.endswith("@pve") and not p.get("password"):
            pass  # a pve realm user without a password can use tokens only: allowed, as on PVE
        after = user_state({**{k: p[k] for k in USER_FIELDS if p.get(k) is not None},
                            "enable": int(p["enable"] if p.get("enable") is not None else 1),
                            "groups": p.get("groups") or []})
        params = {k: (int(v) if isinstance(v, bool) else v) for k, v in p.items() if k in USER_FIELDS and v is not None}
        if p.get("groups"):
            params["groups"] = csv(p["groups"])
        if p.get("password"):
            params["password"] = p["password"]
        return changed("userid", userid, {}, after, check_mode, lambda: api.post("/access/users", userid=userid,
                                                                                 **params))
    current = api.get(f"/access/users/{userid}")
    before = user_state(current)
    wanted = {k: (int(v) if isinstance(v, bool) else v) for k, v in p.items() if k in USER_FIELDS and v is not None}
    after = {**before, **wanted}
    if p.get("groups") is not None:
        after["groups"] = sorted(p["groups"])
    changes = {k: v for k, v in after.items() if before.get(k) != v}
    if "groups" in changes:
        changes["groups"] = csv(changes["groups"])
    result = changed("userid", userid, before, after, check_mode,
                     lambda: api.put(f"/access/users/{userid}", **changes))
    if p.get("password") and p.get("update_password") == "always" and not check_mode:
        api.put("/access/password", userid=userid, password=p["password"])
        result["changed"] = True
    elif p.get("password") and p.get("update_password") == "always":
        result["changed"] = True
    return result


# -- groups -------------------------------------------------------------------------------------------
def ensure_group(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    groupid = p["groupid"]
    entry = next((g for g in api.get("/access/groups") if g["groupid"] == groupid), None)
    before = {"comment": entry.get("comment", "")} if entry else {}
    if p["state"] == "absent":
        return changed("groupid", groupid, before, {}, check_mode, lambda: api.delete(f"/access/groups/{groupid}"))
    if entry is None:
        after = {"comment": p.get("comment") or ""}
        return changed("groupid", groupid, {}, after, check_mode,
                       lambda: api.post("/access/groups", groupid=groupid,
                                        **({"comment": p["comment"]} if p.get("comment") else {})))
    after = {"comment": p["comment"] if p.get("comment") is not None else before["comment"]}
    return changed("groupid", groupid, before, after, check_mode,
                   lambda: api.put(f"/access/groups/{groupid}", comment=after["comment"]))


# -- roles --------------------------------------------------------------------------------------------
def ensure_role(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    roleid = p["roleid"]
    roles = {r["roleid"]: r for r in api.get("/access/roles")}
    entry = roles.get(roleid)
    if entry and entry.get("special"):
        raise PveError(f"role '{roleid}' is one of PVE's built-in roles: it cannot be changed or removed; "
                       "make a role of your own (its name must not start with PVE)")
    if roleid.upper().startswith("PVE"):
        raise PveError(f"role '{roleid}': names starting with PVE are PVE's own; choose another name")
    valid = set(roles["Administrator"]["privs"].split(","))
    unknown = sorted(set(p.get("privs") or []) - valid)
    if unknown:
        raise PveError(f"unknown privilege {', '.join(unknown)}: this PVE version knows {', '.join(sorted(valid))}")
    before = {"privs": sorted(entry["privs"].split(",")) if entry and entry.get("privs") else []} if entry else {}
    if p["state"] == "absent":
        return changed("roleid", roleid, before, {}, check_mode, lambda: api.delete(f"/access/roles/{roleid}"))
    after = {"privs": sorted(p.get("privs") or [])}
    if entry is None:
        return changed("roleid", roleid, {}, after, check_mode,
                       lambda: api.post("/access/roles", roleid=roleid, privs=csv(after["privs"])))
    return changed("roleid", roleid, before, after, check_mode,
                   lambda: api.put(f"/access/roles/{roleid}", privs=csv(after["privs"])))


# -- ACLs ---------------------------------------------------------------------------------------------
def ensure_acl(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    path = p["path"]
    members = [("user", u) for u in p.get("users") or []] + [("group", g) for g in p.get("groups") or []] + \
        [("token", t) for t in p.get("tokens") or []]
    if not members:
        raise PveError("give at least one of users, groups or tokens to grant the roles to")
    known_roles = {r["roleid"] for r in api.get("/access/roles")}
    unknown = sorted(set(p["roles"]) - known_roles)
    if unknown:
        raise PveError(f"role {', '.join(unknown)} does not exist (pvelab.pve.pve_role makes roles of your own)")
    entries = {(e["type"], e["ugid"], e["roleid"]): int(e.get("propagate", 1))
               for e in api.get("/access/acl") if e["path"] == path}
    propagate = int(p["propagate"])
    wanted = {(kind, ugid, role) for kind, ugid in members for role in p["roles"]}
    if p["state"] == "absent":
        present = sorted(w for w in wanted if w in entries)
        before = {f"{k}:{u}:{r}": entries[(k, u, r)] for k, u, r in present}
        return changed("path", path, before, {}, check_mode, lambda: put_acl(api, path, present, 1, delete=True))
    missing = sorted(w for w in wanted if entries.get(w) != propagate)
    before = {f"{k}:{u}:{r}": entries[(k, u, r)] for k, u, r in sorted(wanted) if (k, u, r) in entries}
    after = {f"{k}:{u}:{r}": propagate for k, u, r in sorted(wanted)}
    if not missing:
        return {"changed": False, "path": path}
    return changed("path", path, before, after, check_mode, lambda: put_acl(api, path, missing, propagate))


def put_acl(api: PveApi, path: str, entries: list[tuple[str, str, str]], propagate: int, delete: bool = False) -> None:
    for kind, ugid, role in entries:
        key = {"user": "users", "group": "groups", "token": "tokens"}[kind]
        api.put("/access/acl", path=path, roles=role, propagate=propagate, **{key: ugid},
                **({"delete": 1} if delete else {}))


# -- API tokens ---------------------------------------------------------------------------------------
def ensure_token(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    userid, tokenid = p["userid"], p["tokenid"]
    users = {u["userid"] for u in api.get("/access/users")}
    if userid not in users:
        raise PveError(f"user '{userid}' does not exist: make it first (pvelab.pve.pve_user)")
    tokens = {t["tokenid"]: t for t in api.get(f"/access/users/{userid}/token")}
    entry = tokens.get(tokenid)
    full = f"{userid}!{tokenid}"
    before = {"privsep": int(entry.get("privsep", 0)), "expire": int(entry.get("expire", 0)),
              "comment": entry.get("comment", "")} if entry else {}
    if p["state"] == "absent":
        return changed("full_tokenid", full, before, {}, check_mode,
                       lambda: api.delete(f"/access/users/{userid}/token/{tokenid}"))
    after = {"privsep": int(p["privsep"]), "expire": int(p.get("expire") or 0), "comment": p.get("comment") or ""}
    if entry is None:
        made: dict[str, Any] = {}
        result = changed("full_tokenid", full, {}, after, check_mode, lambda: made.update(api.post(
            f"/access/users/{userid}/token/{tokenid}", privsep=after["privsep"], expire=after["expire"],
            **({"comment": after["comment"]} if after["comment"] else {}))))
        if made:
            result["secret"] = made["value"]  # shown once, as PVE shows it: keep it (no_log on the task)
        return result
    return changed("full_tokenid", full, before, after, check_mode,
                   lambda: api.put(f"/access/users/{userid}/token/{tokenid}", privsep=after["privsep"],
                                   expire=after["expire"], comment=after["comment"]))


# -- pools --------------------------------------------------------------------------------------------
def ensure_pool(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    poolid = p["poolid"]
    exists = any(e["poolid"] == poolid for e in api.get("/pools"))
    current = api.get(f"/pools/{poolid}") if exists else None
    before: dict[str, Any] = {}
    if current is not None:
        before = {"comment": current.get("comment", ""),
                  "vms": sorted(m["vmid"] for m in current["members"] if m["type"] in ("qemu", "lxc")),
                  "storage": sorted(m["storage"] for m in current["members"] if m["type"] == "storage")}
    if p["state"] == "absent":
        if before.get("vms") or before.get("storage"):
            raise PveError(f"pool '{poolid}' is not empty ({before}): PVE removes only empty pools - give vms: [] "
                           "and storage: [] first")
        return changed("poolid", poolid, before, {}, check_mode, lambda: api.delete(f"/pools/{poolid}"))
    after = {"comment": p["comment"] if p.get("comment") is not None else before.get("comment", ""),
             "vms": sorted(p["vms"]) if p.get("vms") is not None else before.get("vms", []),
             "storage": sorted(p["storage"]) if p.get("storage") is not None else before.get("storage", [])}

    def apply() -> None:
        if current is None:
            api.post("/pools", poolid=poolid, **({"comment": after["comment"]} if after["comment"] else {}))
        elif after["comment"] != before["comment"]:
            api.put(f"/pools/{poolid}", comment=after["comment"])
        gone_vms = sorted(set(before.get("vms", [])) - set(after["vms"]))
        gone_storage = sorted(set(before.get("storage", [])) - set(after["storage"]))
        if gone_vms or gone_storage:
            api.put(f"/pools/{poolid}", delete=1, **({"vms": csv(gone_vms)} if gone_vms else {}),
                    **({"storage": csv(gone_storage)} if gone_storage else {}))
        new_vms = sorted(set(after["vms"]) - set(before.get("vms", [])))
        new_storage = sorted(set(after["storage"]) - set(before.get("storage", [])))
        if new_vms or new_storage:
            api.put(f"/pools/{poolid}", **({"vms": csv(new_vms)} if new_vms else {}),
                    **({"storage": csv(new_storage)} if new_storage else {}),
                    **({"allow-move": 1} if p.get("allow_move") and new_vms else {}))

    return changed("poolid", poolid, before, after, check_mode, apply)
