"""The node's journal as PVE's two log pages read it: `syslog` pages through `journalctl -o short`
(PVE::Tools::dump_journal), `journal` reads a range as proxmox-mini-journalreader prints it (the
first entry's cursor, "Mon DD HH:MM:SS host ident[pid]: message" lines with "-- Reboot --" between
boots, the last entry's cursor) so a caller can ask for what came before or after."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

SYSLOG_PAGE = 50  # dump_journal's default page


def dump(start: int | None, limit: int | None, since: str | None, until: str | None,
         unit: str | None) -> tuple[int, list[dict[str, Any]]]:
    """PVE::Tools::dump_journal: (lines counted, [{n, t}] from `start`, at most `limit`)."""
    start, limit = start or 0, limit or SYSLOG_PAGE
    argv = ["journalctl", "-o", "short", "--no-pager"]
    if unit:
        argv += ["--unit", unit]
    if since:
        argv += ["--since", since]
    if until:
        argv += ["--until", until]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()
    lines = [{"n": n, "t": text} for n, text in enumerate(out, 1) if n > start][:limit]
    if not out:
        return 1, [{"n": 1, "t": "no content"}]  # PVE's answer for nothing (its GUI needs a line)
    return len(out), lines


def entries(argv_range: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run(["journalctl", "-o", "json", "--no-pager", *argv_range], capture_output=True, text=True,
                         check=False).stdout
    found = []
    for line in out.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def text_of(value: Any) -> str:
    """A journal field as journalctl's JSON gives it: a string, or bytes as a list of numbers."""
    if isinstance(value, list):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def line_of(entry: dict[str, Any]) -> str:
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(int(entry["__REALTIME_TIMESTAMP"]) / 1e6))
    # "unknow": mini-journalreader prints one letter less of "unknown" than it means to, and so do we
    ident = text_of(entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM")) or "unknow"
    pid = f"[{entry['_PID']}]" if entry.get("_PID") else ""
    return f"{stamp} {text_of(entry.get('_HOSTNAME'))} {ident}{pid}: {text_of(entry.get('MESSAGE'))}"


def read_range(last: int | None, since: int | None, until: int | None, startcursor: str | None,
               endcursor: str | None) -> list[str]:
    """mini-journalreader's output for the range asked: cursors first and last, the lines between."""
    argv: list[str] = []
    if since:
        argv += ["--since", f"@{since}"]
    if until:
        argv += ["--until", f"@{until}"]
    if startcursor:
        argv += ["--cursor", startcursor]
    if last and not endcursor:
        argv += ["-n", str(last)]
    found = entries(argv)
    last_cursor = str(found[-1]["__CURSOR"]) if found else None  # where the reader stopped: the end...
    if endcursor:
        cut = next((i for i, e in enumerate(found) if e.get("__CURSOR") == endcursor), None)
        if cut is not None:
            found, last_cursor = found[:cut], endcursor  # ... or the end cursor's entry, not printed
        if last:
            found = found[-last:]
    shown = found[1:] if startcursor and found and found[0].get("__CURSOR") == startcursor else found
    first_cursor = str(found[0]["__CURSOR"]) if found else None
    lines: list[str] = [first_cursor] if first_cursor else []
    boot = None
    for entry in shown:
        if boot is not None and entry.get("_BOOT_ID") != boot:
            lines.append("-- Reboot --")
        boot = entry.get("_BOOT_ID")
        lines.append(line_of(entry))
    if last_cursor:
        lines.append(last_cursor)
    return lines
