"""/etc/pve/user.cfg as pve-access-control reads and writes it: users and their tokens, groups,
pools, custom roles and the ACL tree, with PVE's parser rules (what it drops, with which warning)
and its writer's exact order, so a file written here is byte for byte what PVE writes."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from pvelab.pve.access.privileges import builtin_roles, valid_privileges

USER_RE = re.compile(r"^([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+)$")
TOKEN_RE = re.compile(r"^(([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+))!([A-Za-z][A-Za-z0-9.\-_]+)$")
GROUP_RE = re.compile(r"^[A-Za-z0-9.\-_]+$")
ROLE_RE = GROUP_RE
POOL_RE = re.compile(r"^[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}$")
STORAGE_RE = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
PATH_RE = re.compile(r"^[A-Za-z0-9.\-_/]+$")


def valid_userid(userid: str) -> tuple[str, str] | None:
    """(name, realm) of a valid `name@realm` (3..64 characters), else None."""
    found = USER_RE.match(userid or "")
    return (found.group(1), found.group(2)) if found and 3 <= len(userid) <= 64 else None


def verify_userid(userid: str) -> tuple[str, str]:
    """PVE::Auth::Plugin::verify_username's texts."""
    if len(userid or "") < 3:
        raise ValueError(f"user name '{userid}' is too short")
    if len(userid) > 64:
        raise ValueError(f"user name '{userid}' is too long ({len(userid)} > 64)")
    found = valid_userid(userid)
    if found is None:
        raise ValueError(f"value '{userid}' does not look like a valid user name")
    return found


def split_tokenid(tokenid: str) -> tuple[str, str] | None:
    """(userid, token name) of `user@realm!name`, else None."""
    found = TOKEN_RE.match(tokenid or "")
    return (found.group(1), found.group(4)) if found else None


def split_list(text: str | None) -> list[str]:
    """PVE::Tools::split_list: items separated by commas, semicolons or whitespace."""
    return [item for item in re.split(r"[;,\s]+", text or "") if item]


def normalize_path(path: str | None) -> str | None:
    """AccessControl::normalize_path: `//` collapsed, no trailing `/`, a leading `/`; None if invalid."""
    if not path:
        return None
    path = re.sub(r"/+", "/", path)
    path = path[:-1] if path.endswith("/") else path
    path = path or "/"
    path = path if path.startswith("/") else f"/{path}"
    return path if PATH_RE.match(path) else None


def encode_text(text: str) -> str:
    """PVE::Tools::encode_text: ':', '%', control and non-ASCII characters as %XX of their UTF-8 bytes."""
    return "".join(chr(b) if 0x20 <= b < 0x7f and b not in (0x25, 0x3a) else f"%{b:02X}" for b in text.encode())


def decode_text(text: str) -> str:
    return urllib.parse.unquote(text)


@dataclass
class AclNode:
    children: dict[str, AclNode] = field(default_factory=dict)
    users: dict[str, dict[str, int]] = field(default_factory=dict)  # member -> {role: propagate}
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)

    def find(self, path: str, create: bool = True) -> AclNode | None:
        """The node of a normalized path (made on the way if `create`)."""
        node: AclNode | None = self
        for part in (p for p in path.split("/") if p):
            assert node is not None
            if part not in node.children:
                if not create:
                    return None
                node.children[part] = AclNode()
            node = node.children[part]
        return node

    def walk(self, path: str = "/") -> list[tuple[str, AclNode]]:
        """Depth first, children sorted (iterate_acl_tree)."""
        found = [(path, self)]
        for name in sorted(self.children):
            found += self.children[name].walk(f"{'' if path == '/' else path}/{name}")
        return found


@dataclass
class UserConfig:
    major: str = "9"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"users": set, "comment"?}
    roles: dict[str, set[str]] = field(default_factory=dict)
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"vms", "storage", "pools", ...}
    vms: dict[int, str] = field(default_factory=dict)  # vmid -> its pool
    acl: AclNode = field(default_factory=AclNode)
    warnings: list[str] = field(default_factory=list)

    def force_defaults(self) -> None:
        for name, privs in builtin_roles(self.major).items():
            self.roles[name] = set(privs)
        self.users.setdefault("root@pam", {"enable": 1})

    def token(self, tokenid: str) -> dict[str, Any] | None:
        parts = split_tokenid(tokenid)
        if parts is None:
            return None
        return self.users.get(parts[0], {}).get("tokens", {}).get(parts[1])

    def is_special_role(self, role: str) -> bool:
        return role in builtin_roles(self.major)

    def new_pool(self, pool: str) -> dict[str, Any]:
        if pool not in self.pools:
            self.pools[pool] = {"vms": set(), "storage": set(), "pools": set()}
        return self.pools[pool]


def parse(text: str, major: str = "9") -> UserConfig:
    cfg = UserConfig(major=major)
    cfg.force_defaults()
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        data = [d.strip() for d in line.split(":")]
        while data and data[-1] == "":  # Perl's split drops trailing empty fields
            data.pop()
        kind, fields = data[0], data[1:] + [""] * 9
        reader = LINE_READERS.get(kind)
        if reader is None:
            cfg.warnings.append(f"user config - ignore config line: {line}")
        else:
            reader(cfg, fields)
    cfg.force_defaults()
    return cfg


def parsed_expire(cfg: UserConfig, what: str, value: str) -> int | None:
    """An expiry (empty is 0); a line whose expiry is not a number is dropped, with PVE's warning."""
    value = value or "0"
    if not value.isdigit():
        cfg.warnings.append(f"user config - ignore {what} - (illegal characters in expire '{value}')")
        return None
    return int(value)


def parse_user_line(cfg: UserConfig, data: list[str]) -> None:
    user, enable, expire, first, last, email, comment, keys = data[:8]
    if valid_userid(user) is None:
        cfg.warnings.append(f"user config - ignore user '{user}' - invalid user name")
        return
    seconds = parsed_expire(cfg, f"user '{user}'", expire)
    if seconds is None:
        return
    entry: dict[str, Any] = {"enable": 1 if enable and enable != "0" else 0, "email": email, "expire": seconds}
    for key, value in (("firstname", first), ("lastname", last), ("comment", comment)):
        if value:
            entry[key] = decode_text(value)
    if keys:
        entry["keys"] = keys
    cfg.users[user] = entry


def parse_group_line(cfg: UserConfig, data: list[str]) -> None:
    group, members, comment = data[:3]
    if not GROUP_RE.match(group):
        cfg.warnings.append(f"user config - ignore group '{group}' - invalid characters in group name")
        return
    found = cfg.groups.setdefault(group, {"users": set()})
    if comment:
        found["comment"] = decode_text(comment)
    for user in split_list(members):
        if valid_userid(user) is None:
            cfg.warnings.append(f"user config - ignore invalid group member '{user}'")
            continue
        if user in cfg.users:
            cfg.users[user].setdefault("groups", set()).add(group)
        else:
            cfg.warnings.append(f"user config - ignore invalid group member '{user}'")
        found["users"].add(user)  # kept all the same: roles() counts it


def parse_role_line(cfg: UserConfig, data: list[str]) -> None:
    role, privs = data[:2]
    if not ROLE_RE.match(role):
        cfg.warnings.append(f"user config - ignore role '{role}' - invalid characters in role name")
        return
    known = cfg.roles.setdefault(role, set())
    for priv in split_list(privs):
        if priv in valid_privileges(cfg.major):
            known.add(priv)
        else:
            cfg.warnings.append(f"user config - ignore invalid privilege '{priv}'")


def parse_token_line(cfg: UserConfig, data: list[str]) -> None:
    tokenid, expire, privsep, comment = data[:4]
    parts = split_tokenid(tokenid)
    if parts is None:
        cfg.warnings.append(f"user config - ignore invalid tokenid '{tokenid}'")
        return
    seconds = parsed_expire(cfg, f"token '{tokenid}'", expire)
    if seconds is None:
        return
    owner = cfg.users.get(parts[0])
    if owner is None:
        cfg.warnings.append(f"user config - ignore token '{tokenid}' - user does not exist")
        return
    token = owner.setdefault("tokens", {}).setdefault(parts[1], {})
    token.update(privsep=1 if privsep and privsep != "0" else 0, expire=seconds)
    if comment:
        token["comment"] = decode_text(comment)


def parse_acl_line(cfg: UserConfig, data: list[str]) -> None:
    propagate, path_text, members, role_list = data
    warn = cfg.warnings.append
    path = normalize_path(path_text)
    if path is None:
        warn(f"user config - ignore invalid path in acl '{path_text}'")
        return
    for role in split_list(role_list):
        if not ROLE_RE.match(role):
            warn(f"user config - ignore invalid role name '{role}' in acl")
            continue
        if role not in cfg.roles:
            warn(f"user config - ignore invalid acl role '{role}'")
            continue
        flag = 1 if propagate and propagate != "0" else 0
        for member in split_list(members):
            group = member[1:] if member.startswith("@") else None
            if group and GROUP_RE.match(group):
                if group not in cfg.groups:
                    warn(f"user config - ignore invalid acl group '{group}'")
                node = cfg.acl.find(path)
                assert node is not None
                node.groups.setdefault(group, {})[role] = flag
            elif valid_userid(member):
                if member not in cfg.users:
                    warn(f"user config - ignore invalid acl member '{member}'")
                node = cfg.acl.find(path)
                assert node is not None
                node.users.setdefault(member, {})[role] = flag
            elif split_tokenid(member):
                if cfg.token(member) is not None:
                    node = cfg.acl.find(path)
                    assert node is not None
                    node.tokens.setdefault(member, {})[role] = flag
                else:
                    warn(f"user config - ignore invalid acl token '{member}'")
            else:
                warn(f"user config - invalid user/group '{member}' in acl")


def parse_pool_line(cfg: UserConfig, data: list[str]) -> None:
    pool, comment, vm_list, storage_list = data
    warn = cfg.warnings.append
    if len(pool.split("/")) > 3 or not POOL_RE.match(pool):
        warn(f"user config - ignore pool '{pool}' - invalid characters in pool name")
        return
    entry = cfg.new_pool(pool)
    current = pool
    while "/" in current:  # nested pools know their parents and children
        parent = current.rsplit("/", 1)[0]
        cfg.pools[current]["parent"] = parent
        cfg.new_pool(parent)["pools"].add(current)
        current = parent
    if comment:
        entry["comment"] = decode_text(comment)
    for vmid_text in split_list(vm_list):
        if not vmid_text.isdigit():
            warn(f"user config - ignore invalid vmid '{vmid_text}' in pool '{pool}'")
            continue
        vmid = int(vmid_text)
        if vmid in cfg.vms:
            warn(f"user config - ignore duplicate vmid '{vmid}' in pool '{pool}'")
            continue
        entry["vms"].add(vmid)
        cfg.vms[vmid] = pool
    for storage in split_list(storage_list):
        if not STORAGE_RE.match(storage):
            warn(f"user config - ignore invalid storage '{storage}' in pool '{pool}'")
            continue
        entry["storage"].add(storage)


LINE_READERS = {"user": parse_user_line, "group": parse_group_line, "role": parse_role_line,
                "acl": lambda cfg, data: parse_acl_line(cfg, data[:4]),
                "pool": lambda cfg, data: parse_pool_line(cfg, data[:4]), "token": parse_token_line}


def write(cfg: UserConfig) -> str:
    out = []
    for user in sorted(cfg.users):
        d = cfg.users[user]
        text = [encode_text(d[k]) if d.get(k) else "" for k in ("firstname", "lastname")]
        comment = encode_text(d["comment"]) if d.get("comment") else ""
        out.append(f"user:{user}:{1 if d.get('enable') else 0}:{int(d.get('expire') or 0)}:{text[0]}:{text[1]}:"
                   f"{d.get('email') or ''}:{comment}:{d.get('keys') or ''}:\n")
        for name in sorted(d.get("tokens", {})):
            t = d["tokens"][name]
            comment = encode_text(t["comment"]) if t.get("comment") else ""
            out.append(f"token:{user}!{name}:{int(t.get('expire') or 0)}:{1 if t.get('privsep') else 0}:{comment}:\n")
    out.append("\n")
    for group in sorted(cfg.groups):
        g = cfg.groups[group]
        comment = encode_text(g["comment"]) if g.get("comment") else ""
        out.append(f"group:{group}:{','.join(sorted(g['users']))}:{comment}:\n")
    out.append("\n")
    for pool in sorted(cfg.pools):
        p = cfg.pools[pool]
        comment = encode_text(p["comment"]) if p.get("comment") else ""
        vms = ",".join(sorted(str(v) for v in p["vms"]))  # sorted as strings, as Perl's sort keys
        out.append(f"pool:{pool}:{comment}:{vms}:{','.join(sorted(p['storage']))}:\n")
    out.append("\n")
    for role in sorted(cfg.roles):
        if not cfg.is_special_role(role):
            out.append(f"role:{role}:{','.join(sorted(cfg.roles[role]))}:\n")
    out.append("\n")
    for path, node in cfg.acl.walk():
        lines: dict[int, dict[str, set[str]]] = {0: {}, 1: {}}
        for members, prefix, exclude in ((node.groups, "@", None), (node.users, "", "root@pam"),
                                         (node.tokens, "", None)):
            for member, roles in members.items():
                if member == exclude:
                    continue
                for flag in (0, 1):
                    chosen = ",".join(sorted(r for r, p in roles.items() if bool(p) == bool(flag)))
                    if chosen:
                        lines[flag].setdefault(chosen, set()).add(f"{prefix}{member}")
        for flag in (0, 1):
            for role_list in sorted(lines[flag]):
                out.append(f"acl:{flag}:{path}:{','.join(sorted(lines[flag][role_list]))}:{role_list}:\n")
    return "".join(out)
