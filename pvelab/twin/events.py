"""The twin's hardware event log: one line per power action, watchdog reset or injected fault."""

from __future__ import annotations

import time
from pathlib import Path


def record(events_file: Path, node: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(events_file, "a") as fh:
        fh.write(f"{stamp} {node}: {message}\n")


def read(events_file: Path, node: str | None = None) -> list[str]:
    try:
        lines = events_file.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if node is None or line.split(" ", 3)[2] == f"{node}:"]
