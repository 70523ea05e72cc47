"""The cluster CA and node certificates PVE keeps in /etc/pve (made with openssl, like pvecm
updatecerts does): pve-root-ca.pem + priv/pve-root-ca.key, nodes/<node>/pve-ssl.{pem,key}."""

from __future__ import annotations

import hashlib
import secrets
import socket
import ssl
import subprocess
import tempfile
import uuid
from pathlib import Path

PVE = Path("/etc/pve")
CA_CERT = PVE / "pve-root-ca.pem"
CA_KEY = PVE / "priv" / "pve-root-ca.key"
AUTH_KEY = PVE / "priv" / "authkey.key"  # the secret tickets and CSRF tokens are signed with


def node_cert(node: str) -> Path:
    return PVE / "nodes" / node / "pve-ssl.pem"


def node_key(node: str) -> Path:
    return PVE / "nodes" / node / "pve-ssl.key"


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def ensure_ca() -> None:
    if CA_CERT.exists() and CA_KEY.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", "3650", "-subj",
                 f"/CN=Proxmox Virtual Environment/OU={uuid.uuid4()}/O=PVE Cluster Manager CA", cwd=tmp)
        CA_KEY.write_bytes(Path(tmp, "ca.key").read_bytes())
        CA_CERT.write_bytes(Path(tmp, "ca.pem").read_bytes())


def ensure_auth_key() -> bytes:
    if not AUTH_KEY.exists():
        AUTH_KEY.write_text(secrets.token_hex(32) + "\n")
    return auth_key()


def auth_key() -> bytes:
    """The cluster's ticket secret; missing while a joining node waits for the cluster's copy."""
    return AUTH_KEY.read_bytes().strip()


def local_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         check=False).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def ensure_node_cert(node: str, force: bool = False) -> None:
    """A certificate for this node signed by the cluster CA (made again when the CA changed)."""
    ensure_ca()
    cert, key = node_cert(node), node_key(node)
    if cert.exists() and key.exists() and not force and _signed_by_ca(cert):
        return
    fqdn = socket.getfqdn()
    san = ",".join([f"DNS:{node}", f"DNS:{fqdn}", "DNS:localhost", "IP:127.0.0.1",
                    *(f"IP:{ip}" for ip in local_addresses())])
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "ca.pem").write_bytes(CA_CERT.read_bytes())
        Path(tmp, "ca.key").write_bytes(CA_KEY.read_bytes())
        Path(tmp, "ext.cnf").write_text(
            f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,nonRepudiation,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
                 "-subj", f"/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN={fqdn}", cwd=tmp)
        _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(secrets.randbits(63)), "-days", "730", "-sha256", "-extfile", "ext.cnf",
                 "-out", "node.pem", cwd=tmp)
        cert.parent.mkdir(parents=True, exist_ok=True)  # a node that just joined may not have it yet
        key.write_bytes(Path(tmp, "node.key").read_bytes())
        cert.write_bytes(Path(tmp, "node.pem").read_bytes())


def _signed_by_ca(cert: Path) -> bool:
    with tempfile.NamedTemporaryFile() as ca:
        ca.write(CA_CERT.read_bytes())
        ca.flush()
        return subprocess.run(["openssl", "verify", "-CAfile", ca.name, str(cert)], capture_output=True,
                              check=False).returncode == 0


def fingerprint_of_pem(pem: str) -> str:
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(pem))


def fingerprint_of_der(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
