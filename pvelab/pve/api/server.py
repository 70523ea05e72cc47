"""The API server on port 8006 (pveproxy's job): HTTPS, PVE's envelope and error shapes,
ticket and token auth, schema-checked parameters, proxying to the node a path names."""

from __future__ import annotations

import email.parser
import email.policy
import http.client
import json
import os
import secrets
import ssl
import sys
import syslog
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pvelab.poll import poll
from pvelab.procfs import nodename
from pvelab.pve import certs, remote, version
from pvelab.pve.api import auth, routes, schema
from pvelab.pve.api.routes import ApiException, Context, handler_for

PORT = 8006
AUTH_FAILURE_DELAY = 3.0  # pveproxy answers 401 late, to slow down guessing
PREFIX = "/api2/json"


class CertReloader:
    """A TLS context that follows the node certificate in /etc/pve (it changes when a node joins)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: bytes = b""
        self.context: ssl.SSLContext | None = None

    def current(self) -> ssl.SSLContext:
        node = nodename()
        try:
            pem, key = certs.node_cert(node).read_bytes(), certs.node_key(node).read_bytes()
        except OSError:
            pem, key = b"", b""
        with self.lock:
            if pem and pem != self.loaded:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                cache = "/run/pvelab-proxy"
                os.makedirs(cache, mode=0o700, exist_ok=True)
                with open(f"{cache}/pve-ssl.pem", "wb") as fh:
                    fh.write(pem)
                with open(f"{cache}/pve-ssl.key", "wb") as fh:
                    fh.write(key)
                context.load_cert_chain(f"{cache}/pve-ssl.pem", f"{cache}/pve-ssl.key")
                self.context, self.loaded = context, pem
            if self.context is None:
                raise ssl.SSLError(f"no node certificate in {certs.node_cert(node)}")
            return self.context


class Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        syslog.syslog(syslog.LOG_INFO, format % args)

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    # -- reply ---------------------------------------------------------------------------------
    def reply(self, status: int, body: bytes, reason: str | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status, reason)
        self.send_header("Content-Type", f"{content_type};charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        self.end_headers()
        self.wfile.write(body)

    def reply_data(self, answer: Any) -> None:
        self.reply(200, json.dumps(routes.answer_body(answer)).encode())

    def reply_error(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        if status == 401:
            time.sleep(AUTH_FAILURE_DELAY)
            self.reply(401, b"", message.splitlines()[0])
            return
        body: dict[str, Any] = {"data": None, "message": message.rstrip("\n") + "\n"}
        if errors:
            body["errors"] = errors
        self.reply(status, json.dumps(body).encode(), message.splitlines()[0] if message else None)

    # -- request -------------------------------------------------------------------------------
    def read_params(self) -> tuple[dict[str, Any], bool, bytes]:
        url = urllib.parse.urlsplit(self.path)
        params: dict[str, Any] = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = True
        if raw:
            kind = self.headers.get("Content-Type") or ""
            if kind.startswith("application/json"):
                params.update(json.loads(raw))
                form = False
            elif kind.startswith("multipart/form-data"):
                params.update(upload_fields(kind, raw))
            else:
                params.update(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        return params, form, raw

    def authenticate(self, method: str, endpoint: schema.Endpoint, path: str) -> auth.Caller:
        """The caller a ticket (cookie or header, CSRF token on writes) or an API token proves: PVE's
        401s ("No ticket", "Authentication failed!", the CSRF text), answered 3 s late."""
        guard = routes.guard()
        if guard is None:
            raise auth.AuthError("Authentication failed!")
        header = self.headers.get("Authorization") or ""
        ticket = None
        for part in (self.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == "PVEAuthCookie":
                ticket = urllib.parse.unquote(value)
        if ticket is None and header.startswith("PVEAuthCookie="):
            ticket = header[len("PVEAuthCookie="):]
        if ticket is None and header.startswith("PVEAPIToken"):  # a ticket, if there is one, wins
            caller = guard.token(header[len("PVEAPIToken") + 1:])
            if not endpoint.allowtoken:
                raise ApiException(403, f"Permission check failed (URI '{path}' not available with API token, "
                                        "need proper ticket.)")
            return caller
        if not ticket:
            raise auth.AuthError("No ticket")
        try:
            user = auth.verify_ticket(ticket)
        except auth.AuthError:
            raise auth.AuthError("Authentication failed!") from None
        guard.still_valid(user)
        if method != "GET" and not auth.verify_csrf(self.headers.get("CSRFPreventionToken") or "", user):
            raise auth.AuthError("Permission denied - invalid csrf token")
        return auth.Caller(user)

    def dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith(PREFIX + "/"):
            self.reply_error(501, f"Method '{method} {url.path}' not implemented")
            return
        path = "/" + url.path[len(PREFIX):].strip("/")
        found = schema.match(version.major(), method, path)
        try:
            params, form, raw = self.read_params()
            if found is None:
                raise ApiException(501, f"Method '{method} {path}' not implemented")
            endpoint, path_values = found
            params.update(path_values)
            # the login box's calls (`user: world`) need no credentials: the caller is nobody
            world = (endpoint.permissions or {}).get("user") == "world"
            caller = auth.Caller("") if world else self.authenticate(method, endpoint, path)
            if endpoint.proxyto == "node" and params.get("node") not in (None, nodename()):
                self.proxy(method, str(params["node"]), raw)
                return
            if not world:  # before the parameters are verified, as PVE's API server checks
                guard = routes.guard()
                assert guard is not None
                guard.check(caller, endpoint.permissions, params)
            typed = schema.verify(endpoint, params, form)
            handler = handler_for(method, endpoint.template, path)
            self.reply_data(handler(Context(caller, nodename()), typed))
        except schema.ParamError as exc:
            self.reply_error(400, "Parameter verification failed.", exc.errors)
        except auth.AuthError as exc:
            self.reply_error(401, str(exc))
        except ApiException as exc:
            self.reply_error(exc.status, str(exc), exc.errors)
        except Exception as exc:  # noqa: BLE001 - a plain failure is a 500 with its text, as PVE answers
            self.reply_error(500, str(exc) or type(exc).__name__)

    def proxy(self, method: str, node: str, raw: bytes) -> None:
        """Forward to the named node (its API trusts the same tickets); 595 if it cannot be reached."""
        try:
            target = remote.remote_node_ip(node)
        except remote.LookupFailed as exc:
            raise ApiException(500, str(exc)) from exc
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # node-to-node inside the cluster
        conn = http.client.HTTPSConnection(target, PORT, context=context, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() in (
            "cookie", "authorization", "csrfpreventiontoken", "content-type")}
        try:
            conn.request(method, self.path, body=raw or None, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            self.reply(595, b"", f"Connection refused or no route to host ({exc})")
            return
        finally:
            conn.close()
        self.reply(resp.status, body, resp.reason)


HANDSHAKE_TIMEOUT = 30.0


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.certs = CertReloader()
        super().__init__(("0.0.0.0", PORT), Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS for one connection, in its own thread: a handshake in the accept loop (and the certificate
        read from /etc/pve it needs) let one slow or stalled client hold up every other caller."""
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.certs.current().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client went away or spoke no TLS; the raw socket is closed after this
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            self.shutdown_request(tls)


PREPARE_TIMEOUT = 300.0


UPLOAD_DIR = Path("/var/tmp")


def upload_fields(content_type: str, raw: bytes) -> dict[str, str]:
    """A multipart upload as pveproxy passes it on: the fields, and the file saved as
    /var/tmp/pveupload-HEX (`tmpfilename`) under its own name (`filename`)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if part.get_filename():
            target = UPLOAD_DIR / f"pveupload-{secrets.token_hex(16)}"
            target.write_bytes(payload)
            fields.update(tmpfilename=str(target), filename=part.get_filename() or "")
        elif isinstance(name, str):
            fields[name] = payload.decode()
    return fields


def prepare() -> None:
    """Certificates and the ticket key, once /etc/pve is writable (a node alone without quorum
    keeps the ones it has). Without them the proxy cannot serve anything, so it says so and exits
    (systemd restarts it) rather than listen and fail every connection."""
    last_error: list[OSError] = []

    def ready() -> bool | None:
        try:
            certs.ensure_node_cert(nodename())
            certs.ensure_auth_key()
            return True
        except OSError as exc:
            last_error[:] = [exc]
            return None

    if poll(ready, PREPARE_TIMEOUT, 1.0) is None:
        message = (f"cannot get the node certificate and ticket key within {PREPARE_TIMEOUT:.0f} s: "
                   f"{last_error[0] if last_error else 'unknown error'} - is /etc/pve mounted and writable?")
        syslog.syslog(syslog.LOG_ERR, message)
        raise SystemExit(f"pveproxy: {message}")


def main() -> int:
    syslog.openlog("pveproxy", syslog.LOG_PID, syslog.LOG_DAEMON)
    prepare()
    server = ApiServer()
    syslog.syslog(syslog.LOG_NOTICE, f"listening on port {PORT}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
