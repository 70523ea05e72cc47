"""A minimal PVE API client for node-to-node calls (join), pinned to a certificate fingerprint."""

from __future__ import annotations

import functools
import http.client
import json
import ssl
import urllib.parse
from typing import Any

from pvelab.pve.certs import fingerprint_of_der


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status


@functools.cache
def unverified_tls() -> ssl.SSLContext:
    """One TLS context for every connection: trust comes from the pinned fingerprint, so no CA store is
    loaded (ssl.create_default_context loads it each time: ~46 ms of CPU per request, measured)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class PinnedClient:
    def __init__(self, host: str, fingerprint: str | None, port: int = 8006, timeout: float = 30) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.fingerprint = fingerprint.upper() if fingerprint else None
        self.ticket: str | None = None
        self.csrf: str | None = None
        self.token: str | None = None  # USER@REALM!TOKENID=SECRET, sent as PVE's API token header

    def _connect(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self.host, self.port, context=unverified_tls(), timeout=self.timeout)
        try:
            conn.connect()
        except OSError as exc:
            raise ApiError(595, f"Connection refused or host unreachable: {self.host}:{self.port} ({exc})") from exc
        assert isinstance(conn.sock, ssl.SSLSocket)
        der = conn.sock.getpeercert(binary_form=True) or b""
        actual = fingerprint_of_der(der)
        if self.fingerprint is not None and actual != self.fingerprint:
            conn.close()
            raise ApiError(596, f"certificate fingerprint mismatch for '{self.host}': expected "
                                f"{self.fingerprint}, got {actual}")
        self.seen_fingerprint = actual
        return conn

    def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        conn = self._connect()
        body = urllib.parse.urlencode(params or {})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.token:
            headers["Authorization"] = f"PVEAPIToken={self.token}"
        elif self.ticket:
            headers["Cookie"] = f"PVEAuthCookie={self.ticket}"
            if method != "GET" and self.csrf:
                headers["CSRFPreventionToken"] = self.csrf
        url = f"/api2/json{path}"
        if method == "GET" and body:
            url, body = f"{url}?{body}", ""
        conn.request(method, url, body=body or None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        if resp.status != 200:
            raise ApiError(resp.status, resp.reason)
        return json.loads(raw)["data"]

    def login(self, user: str, password: str) -> None:
        data = self.request("POST", "/access/ticket", {"username": user, "password": password})
        self.ticket, self.csrf = data["ticket"], data["CSRFPreventionToken"]
