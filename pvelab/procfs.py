"""What /proc says about processes and boots, read one way for the twin (host side) and the nodes."""

from __future__ import annotations

import os
import re
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


def cpuinfo(text: str | None = None) -> dict[str, object]:
    """/proc/cpuinfo as PVE's read_cpuinfo sums it up for a node's status: the first model name and
    MHz, the flags, one socket per physical id with its cores, every logical CPU counted."""
    if text is None:
        try:
            with open("/proc/cpuinfo") as fh:
                text = fh.read()
        except OSError:
            text = ""
    res: dict[str, object] = {"user_hz": CLOCK_TICKS, "model": "unknown", "mhz": 0, "cpus": 1, "sockets": 1,
                              "flags": ""}
    cores: dict[str, int] = {}
    physical, count = "0", 0
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor" and value.isdigit():
            count += 1
        elif key == "model name" and res["model"] == "unknown":
            res["model"] = value
        elif key == "cpu MHz" and not res["mhz"] and re.fullmatch(r"\d+\.\d+", value):
            res["mhz"] = value
        elif key == "flags" and not res["flags"]:
            res["flags"] = value
        elif key == "physical id" and value.isdigit():
            physical = value
            cores.setdefault(value, 1)
        elif key == "cpu cores" and value.isdigit() and physical in cores:
            cores[physical] = int(value)
    res["hvm"] = "1" if re.search(r"\s(vmx|svm)\s", f" {res['flags']} ") else ""
    res["sockets"] = len(cores) or 1
    res["cores"] = sum(cores.values()) or 1
    res["cpus"] = count
    return res
