"""What /proc says about processes and boots, read one way for the twin (host side) and the nodes."""

from __future__ import annotations

import os
import socket

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_ticks(pid: int | str = "self") -> int:
    """When the process started, in clock ticks after boot (field 22 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[19])


def uptime() -> float:
    """Seconds since this kernel booted."""
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0])


def running_for(pid: int | str) -> float:
    """Seconds the process has run: inside a node, PID 1 gives the node's own uptime, not the host's."""
    return uptime() - start_ticks(pid) / CLOCK_TICKS


def nodename() -> str:
    """The node's short host name, as PVE uses it (`nodes/<name>`, task UPIDs, the API's {node})."""
    return socket.gethostname().split(".")[0]
