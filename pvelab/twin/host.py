"""Running host commands, with failures turned into TwinError."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence

from pvelab.errors import TwinError


def run(argv: Sequence[str], *, check: bool = True, input: str | None = None, timeout: float = 120) -> str:
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise TwinError(f"'{argv[0]}' is not installed", "run scripts/setup.sh as root") from exc
    except subprocess.TimeoutExpired as exc:
        raise TwinError(f"'{' '.join(argv)}' did not finish within {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise TwinError(f"'{' '.join(argv)}' failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc.stdout


def succeeds(argv: Sequence[str]) -> bool:
    return subprocess.run(list(argv), capture_output=True, check=False).returncode == 0


def require_root() -> None:
    if os.geteuid() != 0:
        raise TwinError("the lab twin needs root (namespaces, bridges, mounts)", "run it with sudo or as root")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise TwinError(f"missing tools: {', '.join(missing)}", "run scripts/setup.sh as root")


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def udp_wildcard_bound(port: int, proc_net: str = "/proc/net") -> bool:
    """Whether a socket holds UDP `port` on every address (0.0.0.0 or ::), which no lab's BMC can share."""
    want = {f"{'0' * 8}:{port:04X}", f"{'0' * 32}:{port:04X}"}
    for table in ("udp", "udp6"):
        try:
            with open(f"{proc_net}/{table}") as fh:
                if any(line.split()[1] in want for line in fh.readlines()[1:]):
                    return True
        except OSError:
            continue
    return False


def udp_bound(address: str, port: int, proc_net_udp: str = "/proc/net/udp") -> bool:
    """Whether a socket in this network namespace is bound to UDP address:port (read from the kernel's
    table, where an address is little-endian hex: 198.18.2.12:623 is 0C0212C6:026F)."""
    want = f"{socket.inet_aton(address)[::-1].hex().upper()}:{port:04X}"
    try:
        with open(proc_net_udp) as fh:
            return any(line.split()[1] == want for line in fh.readlines()[1:])
    except OSError:
        return False
