"""Reaching another node, as PVE's remote_node_ip and SSH to a node do: its address from pmxcfs's
nodelist, else from the resolver (PVE falls back to a hostname lookup), else PVE's lookup error."""

from __future__ import annotations

import shlex
import socket
import subprocess

from pvelab.pve import members


class LookupFailed(Exception):
    """No address for a node name: PVE's `hostname lookup 'X' failed - ...` text."""


def remote_node_ip(node: str) -> str:
    info = (members.read().get("nodelist") or {}).get(node) or {}
    if info.get("ip"):
        return str(info["ip"])
    try:
        found = socket.getaddrinfo(node, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise LookupFailed(f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
                           f"{exc.strerror}") from exc
    return str(found[0][4][0])


def ssh_options(node: str) -> list[str]:
    """PVE's options to reach a cluster node (ssh_info_to_ssh_opts): batch mode, the node's name as
    the host key alias."""
    return ["-o", "BatchMode=yes", "-o", f"HostKeyAlias={node}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ConnectTimeout=10"]


def ssh_command(node: str, address: str) -> list[str]:
    """PVE's SSH to a cluster node."""
    return ["ssh", "-e", "none", *ssh_options(node), f"root@{address}"]


def scp_command(node: str, address: str, source: str, dest: str) -> list[str]:
    """PVE's copy of a file to a cluster node (the upload of a file for another node's storage)."""
    return ["/usr/bin/scp", *ssh_options(node), "-p", "--", source, f"root@[{address}]:{shlex.quote(dest)}"]


def run_on(node: str, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A command on another node over SSH (its words quoted for the remote shell)."""
    address = remote_node_ip(node)
    return subprocess.run([*ssh_command(node, address), "--", shlex.join(argv)], capture_output=True, text=True,
                          timeout=timeout, check=False)
