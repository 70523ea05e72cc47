"""The access files in the cluster filesystem, read and written as PVE does: user.cfg (under
cfs_lock_file('user.cfg'), refused without quorum), domains.cfg (realms), priv/shadow.cfg (the
pve realm's passwords, SHA-256 crypt) and priv/token.cfg (token secrets, `USERID!TOKEN SECRET`)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import string
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pvelab.pve import version
from pvelab.pve.access import usercfg
from pvelab.pve.access.usercfg import UserConfig
from pvelab.pve.api import auth
from pvelab.pve.cluster.locks import cfs_lock
from pvelab.pve.refusal import Refusal

PVE_DIR = Path("/etc/pve")
USER_CFG = PVE_DIR / "user.cfg"
DOMAINS_CFG = PVE_DIR / "domains.cfg"
SHADOW_CFG = PVE_DIR / "priv" / "shadow.cfg"
TOKEN_CFG = PVE_DIR / "priv" / "token.cfg"
LINUX_SHADOW = Path("/etc/shadow")
LINUX_PASSWD = Path("/etc/passwd")
BUILTIN_REALMS = {"pam": {"type": "pam", "comment": "Linux PAM standard authentication"},
                  "pve": {"type": "pve", "comment": "Proxmox VE authentication server"}}
T = TypeVar("T")


class AccessError(Refusal):
    """A refused access-control request, with PVE's text."""


# -- user.cfg ---------------------------------------------------------------------------------------
_parsed: dict[str, tuple[tuple[str, str], UserConfig]] = {}


def read() -> UserConfig:
    """user.cfg parsed, parsed again only when its content changed (every API call reads it; the
    file is read each time, so a change made on any node counts at once, whatever its mtime says)."""
    major = version.major()
    try:
        text = USER_CFG.read_text()
    except FileNotFoundError:
        text = ""
    key = (hashlib.sha1(text.encode()).hexdigest(), major)
    cached = _parsed.get("user.cfg")
    if cached and cached[0] == key:
        return cached[1]
    cfg = usercfg.parse(text, major)
    _parsed["user.cfg"] = (key, cfg)
    return cfg


def update(change: Callable[[UserConfig], T]) -> T:
    """Read, change and write user.cfg under its cluster-wide lock (a private copy is changed)."""
    with cfs_lock("file-user_cfg", error=AccessError):
        text = USER_CFG.read_text() if USER_CFG.exists() else ""
        cfg = usercfg.parse(text, version.major())
        result = change(cfg)
        write_file(USER_CFG, usercfg.write(cfg))
        return result


def write_file(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except PermissionError as exc:
        raise AccessError("cluster not ready - no quorum?") from exc


# -- domains.cfg --------------------------------------------------------------------------------------
def read_domains() -> dict[str, dict[str, Any]]:
    """Realms by id; `pam` and `pve` always exist (PVE's parser adds them)."""
    realms: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    with contextlib.suppress(FileNotFoundError):
        for line in DOMAINS_CFG.read_text().splitlines():
            if not line.strip():
                current = None
            elif not line[0].isspace() and ":" in line:
                kind, _, realm = line.partition(":")
                current = realms.setdefault(realm.strip(), {"type": kind.strip()})
            elif current is not None:
                key, _, value = line.strip().partition(" ")
                current[key] = value.strip()
    for realm, defaults in BUILTIN_REALMS.items():
        realms.setdefault(realm, dict(defaults))
        realms[realm].setdefault("comment", defaults["comment"])
    return realms


def write_domains(realms: dict[str, dict[str, Any]]) -> None:
    """SectionConfig's layout: `type: id`, then comment, then the other keys sorted."""
    out = []
    for realm, options in realms.items():
        out.append(f"{options['type']}: {realm}\n")
        if options.get("comment"):
            out.append(f"\tcomment {options['comment']}\n")
        for key in sorted(k for k in options if k not in ("type", "comment")):
            out.append(f"\t{key} {options[key]}\n")
        out.append("\n")
    write_file(DOMAINS_CFG, "".join(out))


@contextlib.contextmanager
def domains_locked() -> Iterator[dict[str, dict[str, Any]]]:
    with cfs_lock("file-domains_cfg", error=AccessError):
        realms = read_domains()
        yield realms
        write_domains(realms)


# -- passwords --------------------------------------------------------------------------------------
SALT_CHARS = string.ascii_letters + string.digits + "./"


def hash_password(password: str) -> str:
    """PVE::Tools::encrypt_pw: SHA-256 crypt with an 8-character salt."""
    salt = "".join(secrets.choice(SALT_CHARS) for _ in range(8))
    return auth.shadow_crypt(password, f"$5${salt}$")


def read_shadow() -> dict[str, str]:
    found = {}
    with contextlib.suppress(FileNotFoundError):
        for line in SHADOW_CFG.read_text().splitlines():
            name, sep, rest = line.partition(":")
            if sep and rest.endswith(":") and rest[:-1] and " " not in line:
                found[name] = rest[:-1]
    return found


def set_pve_password(name: str, password: str) -> None:
    """The pve realm's store_password: `name:crypt:` in priv/shadow.cfg (the bare name, no realm)."""
    with cfs_lock("file-priv_shadow_cfg", error=AccessError):
        shadow = read_shadow()
        shadow[name] = hash_password(password)
        write_file(SHADOW_CFG, "".join(f"{k}:{v}:\n" for k, v in shadow.items()))


def delete_pve_password(name: str) -> None:
    with cfs_lock("file-priv_shadow_cfg", error=AccessError):
        shadow = read_shadow()
        if shadow.pop(name, None) is not None:
            write_file(SHADOW_CFG, "".join(f"{k}:{v}:\n" for k, v in shadow.items()))


def linux_user_exists(name: str) -> bool:
    return any(line.split(":", 1)[0] == name for line in LINUX_PASSWD.read_text().splitlines())


def set_pam_password(name: str, password: str) -> None:
    """The pam realm's store_password: the node's own Linux account (this node only, as on PVE)."""
    done = subprocess.run(["chpasswd"], input=f"{name}:{password}\n", capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AccessError(f"change password failed: {done.stderr.strip()}")


def password_matches(userid: str, password: str, realms: dict[str, dict[str, Any]]) -> bool:
    """The realm's own check: pam reads the node's /etc/shadow, pve reads priv/shadow.cfg."""
    name, realm = userid.rsplit("@", 1)
    kind = realms.get(realm, {}).get("type")
    if kind == "pam":
        for line in LINUX_SHADOW.read_text().splitlines():
            user, hashed = line.split(":")[:2]
            if user == name:
                return bool(hashed) and hmac.compare_digest(auth.shadow_crypt(password, hashed), hashed)
        return False
    if kind == "pve":
        stored = read_shadow().get(name, "")
        return bool(stored) and hmac.compare_digest(auth.shadow_crypt(password, stored), stored)
    return False


# -- token secrets ----------------------------------------------------------------------------------
def read_token_secrets() -> dict[str, str]:
    found = {}
    with contextlib.suppress(FileNotFoundError):
        for line in TOKEN_CFG.read_text().splitlines():
            full, _, secret = line.partition(" ")
            if secret:
                found[full] = secret.strip()
    return found


def change_token_secrets(change: Callable[[dict[str, str]], None]) -> None:
    with cfs_lock("file-priv_token_cfg", error=AccessError):
        secrets_by_id = read_token_secrets()
        change(secrets_by_id)
        write_file(TOKEN_CFG, "".join(f"{k} {v}\n" for k, v in sorted(secrets_by_id.items())))


# -- guests' side of user.cfg -----------------------------------------------------------------------
def add_vm_to_pool(vmid: int, pool: str) -> None:
    """A new guest created with `--pool` joins it (AccessControl::add_vm_to_pool)."""
    def add(cfg: UserConfig) -> None:
        if pool in cfg.pools:
            cfg.pools[pool]["vms"].add(int(vmid))
            cfg.vms[int(vmid)] = pool

    update(add)


def remove_vm_access(vmid: int) -> None:
    """A destroyed guest leaves its pool and its /vms/VMID ACLs go (AccessControl::remove_vm_access)."""
    cfg = read()
    vms_node = cfg.acl.children.get("vms")
    if int(vmid) not in cfg.vms and not (vms_node and str(vmid) in vms_node.children):
        return

    def remove(cfg: UserConfig) -> None:
        node = cfg.acl.children.get("vms")
        if node is not None:
            node.children.pop(str(vmid), None)
        pool = cfg.vms.pop(int(vmid), None)
        if pool in cfg.pools:
            cfg.pools[pool]["vms"].discard(int(vmid))

    update(remove)
