"""The PVE version a twin node presents (chosen per lab: 8 or 9), and `pveversion`."""

from __future__ import annotations

import os

MAJOR_FILE = "/usr/share/pvelab/pve-major"  # a str: watchdog-mux reads it without importing pathlib
RELEASES = {
    "9": {"version": "9.1.1", "release": "9.1", "repoid": "42db4a6cf33dac83"},
    "8": {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"},
}


def major() -> str:
    try:
        with open(MAJOR_FILE) as fh:
            value = fh.read().strip()
    except FileNotFoundError:
        return "9"
    return value if value in RELEASES else "9"


def version_info() -> dict[str, str]:
    return dict(RELEASES[major()])


def pveversion_line() -> str:
    info = version_info()
    return f"pve-manager/{info['version']}/{info['repoid']} (running kernel: {os.uname().release})"


def main() -> int:
    print(pveversion_line())
    return 0
