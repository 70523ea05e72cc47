"""The API server's TLS: each connection's handshake runs in its own thread, so a client that connects
and stalls holds up nobody else (it held up every caller when the accept loop did the handshake)."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pvelab.pve.api.server import ApiServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


class FixedCert:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def current(self) -> ssl.SSLContext:
        return self.context


class TlsServer(ApiServer):
    """The API server's TLS handling on a free port, with a test certificate and a trivial handler."""

    def __init__(self, context: ssl.SSLContext) -> None:  # not on port 8006: the base binds it
        self.certs = FixedCert(context)  # type: ignore[assignment]
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), Hello)


def test_a_stalled_client_does_not_hold_up_the_next_one(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = TlsServer(context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    stalled = socket.create_connection(("127.0.0.1", port))  # connects, never says hello
    try:
        time.sleep(0.2)  # the server has accepted it
        client = http.client.HTTPSConnection("127.0.0.1", port, timeout=5,
                                             context=ssl._create_unverified_context())  # noqa: S323 - test cert
        started = time.monotonic()
        client.request("GET", "/")
        answer = client.getresponse()
        assert (answer.status, answer.read()) == (200, b"ok")
        assert time.monotonic() - started < 3
    finally:
        stalled.close()
        server.shutdown()
        server.server_close()
