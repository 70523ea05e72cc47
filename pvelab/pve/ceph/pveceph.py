"""`pveceph`: PVE's Ceph command, each subcommand a call of the Ceph API on this node in-process (as
PVE's pveceph calls its API classes), printed as PVE prints it; `install`, `status` and `purge` are
local, as in PVE."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve.api import direct
from pvelab.pve.ceph import daemons
from pvelab.pve.ceph.pool import PoolError
from pvelab.pve.ceph.tools import CephError

USAGE = """USAGE: pveceph <COMMAND> [ARGS] [OPTIONS]
       pveceph init  [OPTIONS]
       pveceph install  [OPTIONS]
       pveceph mgr create  [OPTIONS]
       pveceph mgr destroy <id>
       pveceph mon create  [OPTIONS]
       pveceph mon destroy <monid>
       pveceph osd create <dev> [OPTIONS]
       pveceph osd destroy <osdid> [OPTIONS]
       pveceph pool create <name> [OPTIONS]
       pveceph pool destroy <name> [OPTIONS]
       pveceph pool get <name> [OPTIONS]
       pveceph pool ls  [OPTIONS]
       pveceph pool set <name> [OPTIONS]
       pveceph purge  [OPTIONS]
       pveceph start  [OPTIONS]
       pveceph stop  [OPTIONS]
       pveceph status"""
ALIASES = {"createmon": ("mon", "create"), "destroymon": ("mon", "destroy"), "createmgr": ("mgr", "create"),
           "destroymgr": ("mgr", "destroy"), "createosd": ("osd", "create"), "destroyosd": ("osd", "destroy"),
           "createpool": ("pool", "create"), "destroypool": ("pool", "destroy"), "lspools": ("pool", "ls")}
POOL_COLUMNS = (("pool_name", "Name"), ("size", "Size"), ("min_size", "Min Size"), ("pg_num", "PG Num"),
                ("pg_num_min", "min. PG Num"), ("pg_num_final", "Optimal PG Num"),
                ("pg_autoscale_mode", "PG Autoscale Mode"), ("target_size", "PG Autoscale Target Size"),
                ("target_size_ratio", "PG Autoscale Target Ratio"), ("crush_rule_name", "Crush Rule Name"),
                ("percent_used", "%-Used"), ("bytes_used", "Used"))


def human(value: Any) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return str(value)


def table(rows: list[dict[str, Any]]) -> None:
    """PVE's CLIFormatter text table: box-drawing borders, headers from the schema's titles."""
    cells = [[title for _, title in POOL_COLUMNS]]
    for row in sorted(rows, key=lambda r: r["pool_name"]):
        line = []
        for key, _ in POOL_COLUMNS:
            value = row.get(key, "")
            if key == "bytes_used":
                value = human(value)
            elif key == "percent_used":
                value = f"{float(value or 0) * 100:.2f}"
            line.append(str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(POOL_COLUMNS))]
    bar = "─"
    print("┌" + "┬".join(bar * (w + 2) for w in widths) + "┐")
    for index, line in enumerate(cells):
        print("│" + "│".join(f" {c:<{w}} " for c, w in zip(line, widths, strict=True)) + "│")
        if index == 0:
            print("╞" + "╪".join("═" * (w + 2) for w in widths) + "╡")
        elif index < len(cells) - 1:
            print("├" + "┼".join(bar * (w + 2) for w in widths) + "┤")
    print("└" + "┴".join(bar * (w + 2) for w in widths) + "┘")


def status() -> int:
    daemons.PATHS.check_inited()
    proc = subprocess.run(["ceph", "-s"], capture_output=True, text=True, timeout=15, check=False)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return 0 if proc.returncode == 0 else direct.ERROR_EXIT


def run(command: str, args: list[str], options: dict[str, str]) -> int:
    base = f"/nodes/{nodename()}/ceph"
    if command in ALIASES:
        command, sub = ALIASES[command]
        args = [sub, *args]
    if command == "init":
        direct.call("POST", f"{base}/init", options)
        return 0
    if command == "install":
        # PVE asks only on a terminal, and only when no --version was given
        ask = None if options.get("version") or not sys.stdin.isatty() else \
            (lambda question: input(question).strip().lower() in ("y", "yes"))
        daemons.install(print, options.get("repository", "enterprise"), ask)
        return 0
    if command == "status":
        return status()
    if command in ("start", "stop"):
        return direct.run_task("POST", f"{base}/{command}", options)
    if command == "purge":
        daemons.purge(nodename(), options.get("logs") == "1", options.get("crash") == "1", print)
        return 0
    sub, *rest = args
    if command in ("mon", "mgr") and sub == "create" and not rest:
        key = "monid" if command == "mon" else "id"
        return direct.run_task("POST", f"{base}/{command}/{options.pop(key, nodename())}", options)
    if command in ("mon", "mgr") and sub == "destroy":
        (ident,) = rest
        return direct.run_task("DELETE", f"{base}/{command}/{ident}", options)
    if command == "osd" and sub == "create":
        (dev,) = rest
        return direct.run_task("POST", f"{base}/osd", {**options, "dev": dev})
    if command == "osd" and sub == "destroy":
        (osdid,) = rest
        return direct.run_task("DELETE", f"{base}/osd/{osdid}", options)
    if command == "pool" and sub == "ls" and not rest:
        rows = direct.call("GET", f"{base}/pool", {})
        fmt = options.get("output-format", "text")
        print(json.dumps(rows, indent=4 if fmt == "json-pretty" else None)) if fmt.startswith("json") else table(rows)
        return 0
    if command == "pool" and sub in ("create", "destroy", "set", "get"):
        (name,) = rest
        if sub == "get":
            print(json.dumps(direct.call("GET", f"{base}/pool/{name}/status", options), indent=4))
            return 0
        method = {"create": "POST", "destroy": "DELETE", "set": "PUT"}[sub]
        path = f"{base}/pool" if sub == "create" else f"{base}/pool/{name}"
        # PVE's pool workers have no exit handler: the exit status does not say whether the task failed
        direct.run_task(method, path, {**options, "name": name})
        return 0
    print(f"unknown command 'pveceph {command} {sub}'\n{USAGE}", file=sys.stderr)
    return direct.ERROR_EXIT


def main(argv: list[str] | None = None) -> int:
    return direct.cli_main(USAGE, run, (CephError, PoolError), argv)


if __name__ == "__main__":
    raise SystemExit(main())
