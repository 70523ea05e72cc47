"""What PVE's storage code asks of the network before it talks to a server (PVE::Network's
tcp_ping, a name's first address): shared by the scans and the NFS connection check."""

from __future__ import annotations

import socket


def resolve(host: str) -> str | None:
    """The first address of a name or address, or None when it has none."""
    try:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])
    except (socket.gaierror, IndexError):
        return None


def tcp_ping(address: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to address:port opens within `timeout` seconds."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
