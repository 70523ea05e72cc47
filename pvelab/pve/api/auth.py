"""Who is calling: tickets (cookie PVEAuthCookie + CSRFPreventionToken) and API tokens.

Tickets and CSRF tokens are signed with the cluster-wide secret in /etc/pve/priv/authkey.key,
so a ticket from one node is good on every node of the cluster, as on PVE. Who may log in, and
with what, is access control's (pvelab.pve.access.guard, registered with routes.set_guard)."""

from __future__ import annotations

import base64
import ctypes
import functools
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass

from pvelab.pve import certs

TICKET_LIFETIME = 7200


class AuthError(Exception):
    pass


@dataclass(frozen=True)
class Caller:
    user: str
    token: str | None = None  # token id when authenticated by API token

    @property
    def name(self) -> str:
        return f"{self.user}!{self.token}" if self.token else self.user


_last_key: list[bytes] = []  # the key last read, like pveproxy keeps it in memory


def _key() -> bytes:
    """The ticket key, re-read on every use (a join replaces it) but remembered, so tickets keep
    working while /etc/pve is briefly away (pve-cluster restarts during create and join)."""
    try:
        key = certs.auth_key()
    except OSError:
        if not _last_key:
            raise AuthError("cluster not ready - no ticket key yet") from None
        return _last_key[0]
    _last_key[:] = [key]
    return key


def _sign(text: str) -> str:
    return base64.b64encode(hmac.new(_key(), text.encode(), hashlib.sha256).digest()).decode()


@functools.cache
def _libcrypt() -> ctypes.CDLL:
    lib = ctypes.CDLL("libcrypt.so.1")  # libxcrypt, as pam_unix uses; Python 3.13 has no crypt module
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    return lib


_CRYPT_LOCK = threading.Lock()


def shadow_crypt(password: str, setting: str) -> str:
    """crypt(3) of `password` with the method and salt of the shadow hash `setting` ("" if refused).
    crypt(3) returns a static buffer and ctypes lets go of the GIL during the call, so two logins at
    once in the API server's threads crashed it (SIGSEGV; PVE's pveproxy workers are processes): one
    at a time."""
    with _CRYPT_LOCK:
        hashed = _libcrypt().crypt(password.encode(), setting.encode())
        return hashed.decode() if hashed and not hashed.startswith(b"*") else ""


def make_ticket(user: str) -> str:
    plain = f"PVE:{user}:{int(time.time()):08X}"
    return f"{plain}::{_sign(plain)}"


def verify_ticket(ticket: str) -> str:
    try:
        plain, signature = ticket.rsplit("::", 1)
        _, user, stamp = plain.split(":", 2)
        issued = int(stamp, 16)
    except ValueError:
        raise AuthError("invalid PVE ticket") from None
    if not hmac.compare_digest(_sign(plain), signature):
        raise AuthError("invalid PVE ticket")
    if time.time() - issued > TICKET_LIFETIME:
        raise AuthError("permission denied - invalid PVE ticket")
    return user


def make_csrf(user: str) -> str:
    stamp = f"{int(time.time()):08X}"
    return f"{stamp}:{_sign(f'{stamp}:{user}')}"


def verify_csrf(token: str, user: str) -> bool:
    stamp, _, signature = token.partition(":")
    try:
        fresh = time.time() - int(stamp, 16) <= TICKET_LIFETIME
    except ValueError:
        return False
    return fresh and hmac.compare_digest(_sign(f"{stamp}:{user}"), signature)
