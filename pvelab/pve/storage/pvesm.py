"""`pvesm`: PVE's storage manager command, each subcommand a call of the storage API in-process (as
PVE's pvesm calls its API classes), printed as PVE prints it."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

from pvelab.procfs import nodename
from pvelab.pve import version
from pvelab.pve.api import direct
from pvelab.pve.storage import config, prune
from pvelab.pve.storage.api import real_volume_id
from pvelab.pve.storage.volumes import volume_backend, volume_location
from pvelab.pve.storage.zfspool import ZfsPoolBackend

USAGE = """USAGE: pvesm <COMMAND> [ARGS] [OPTIONS]
       pvesm add <type> <storage> [OPTIONS]
       pvesm alloc <storage> <vmid> <filename> <size> [OPTIONS]
       pvesm export <volume> <format> <filename> [OPTIONS]
       pvesm free <volume> [OPTIONS]
       pvesm import <volume> <format> <filename> [OPTIONS]
       pvesm list <storage> [OPTIONS]
       pvesm path <volume>
       pvesm prune-backups <storage> [OPTIONS]
       pvesm remove <storage>
       pvesm scan iscsi <portal>
       pvesm scan nfs <server>
       pvesm set <storage> [OPTIONS]
       pvesm status [OPTIONS]"""


def print_status(entries: list[dict[str, Any]]) -> None:
    """pve-storage's $print_status: KiB, `% 7.2f%%`, N/A for a disabled storage; 9.1 names the unit."""
    width = max((len(e["storage"]) for e in entries), default=0) + 1
    unit = " (KiB)" if version.major() == "9" else ""
    print(f"{'Name':<{width}} {'Type':>10} {'Status':>10} {'Total' + unit:>15} {'Used' + unit:>15} "
          f"{'Available' + unit:>15} {'%':>8}")
    for e in sorted(entries, key=lambda e: e["storage"]):
        state = "active" if e["active"] else "inactive"
        percent = f"{e['used'] * 100 / e['total']: 7.2f}%" if e["total"] else f"{0: 7.2f}%"
        if not e["enabled"]:
            state, percent = "disabled", f"{'N/A':>8}"
        print(f"{e['storage']:<{width}} {e['type']:>10} {state:>10} {e['total'] // 1024:>15d} "
              f"{e['used'] // 1024:>15d} {e['avail'] // 1024:>15d} {percent}")


def print_content(items: list[dict[str, Any]]) -> None:
    """pve-storage's $print_content: guests' volumes first, then the rest by format."""
    name_width = max((len(i["volid"]) for i in items), default=0)
    size_width = len(str(max((i["size"] for i in items), default=0)))
    row = f"{{:<{name_width}}} {{:<7}} {{:<9}} {{:>{size_width}}}"
    print(row.format("Volid", "Format", "Type", "Size") + " VMID")
    for i in items:
        if i.get("vmid"):
            print(row.format(i["volid"], i["format"], i["content"], i["size"]) + f" {i['vmid']}")
    for i in sorted((i for i in items if not i.get("vmid")), key=lambda i: i["format"]):
        print(row.format(i["volid"], i["format"], i["content"], i["size"]))


def print_scan(rows: list[tuple[str, str]]) -> None:
    """pvesm scan's printer: the first column as wide as its longest entry, then the second."""
    width = max((len(first) for first, _ in rows), default=0)
    for first, second in rows:
        print(f"{first:<{width}} {second}")


def print_prune_list(items: list[dict[str, Any]]) -> None:
    """pvesm prune-backups --dry-run as pve-storage prints it: by guest, oldest first."""
    if not items:
        print("No backups found")
        return
    print("NOTE: this is only a preview and might not be what a subsequent\n"
          "prune call does if backups are removed/added in the meantime.\n")
    width = max(len(i["volid"]) for i in items) + 1
    print(f"{'Backup':<{width}} {'Backup-ID':>15} {'Prune-Mark':>10}")
    for i in sorted(items, key=lambda i: (i.get("vmid") is not None, i.get("vmid") or 0, i["ctime"])):
        backup_id = f"{i['type']}/{i['vmid']}" if i.get("vmid") is not None else i["type"]
        print(f"{i['volid']:<{width}} {backup_id:>15} {i['mark']:>10}")


def prune_backups(node: str, storage: str, options: dict[str, str]) -> int:
    """pvesm's own method: the keep options one by one (--keep-last 2), or the storage's when none."""
    dry_run = options.pop("dry-run", "0") not in ("0", "")
    keep = {k: options.pop(k) for k in ("keep-all", *prune.OPTIONS) if k in options}
    if keep:
        options["prune-backups"] = ",".join(f"{k}={v}" for k, v in keep.items())
    if dry_run:
        print_prune_list(direct.call("GET", f"{node}/{storage}/prunebackups", options))
        return 0
    return direct.run_task("DELETE", f"{node}/{storage}/prunebackups", options)


def run(command: str, args: list[str], options: dict[str, str]) -> int:
    node = f"/nodes/{nodename()}/storage"
    if command == "status":
        print_status(direct.call("GET", node, options))
    elif command == "list":
        (storage,) = args
        print_content(direct.call("GET", f"{node}/{storage}/content", options))
    elif command == "alloc":
        storage, vmid, filename, size = args
        volid = direct.call("POST", f"{node}/{storage}/content",
                            {**options, "vmid": vmid, "filename": filename, "size": size})
        print(f"successfully created '{volid}'")
    elif command == "free":
        (volume,) = args
        storage, volname = real_volume_id(options.pop("storage", None), volume)
        return direct.run_task("DELETE", f"{node}/{storage}/content/{quote(f'{storage}:{volname}', safe=':')}",
                               options)
    elif command == "prune-backups":
        (storage,) = args
        return prune_backups(node, storage, options)
    elif command in ("export", "import"):
        volume, fmt, filename = args
        transfer(command, volume, fmt, filename, options)
    elif command == "path":
        (volume,) = args
        print(volume_location(volume))
    elif command == "add":
        kind, storage = args
        direct.call("POST", "/storage", {**options, "type": kind, "storage": storage})
    elif command == "set":
        (storage,) = args
        direct.call("PUT", f"/storage/{storage}", options)
    elif command == "scan" and args[:1] == ["iscsi"]:
        portal = args[1] if len(args) > 1 else options.pop("portal", "")
        print_scan([(r["target"], r["portal"]) for r in direct.call("GET", f"/nodes/{nodename()}/scan/iscsi",
                                                                      {**options, "portal": portal})])
    elif command == "scan" and args[:1] == ["nfs"]:
        server = args[1] if len(args) > 1 else options.pop("server", "")
        print_scan([(r["path"], r["options"]) for r in direct.call("GET", f"/nodes/{nodename()}/scan/nfs",
                                                                     {**options, "server": server})])
    elif command == "remove":
        (storage,) = args
        direct.call("DELETE", f"/storage/{storage}", options)
    else:
        print(f"unknown command 'pvesm {command}'\n{USAGE}", file=sys.stderr)
        return direct.ERROR_EXIT
    return 0


def transfer(command: str, volid: str, fmt: str, filename: str, options: dict[str, str]) -> None:
    """pvesm export/import: a volume's snapshot as a stream (stdout/stdin for `-`) in a format both
    storages speak; only zfspool's `zfs` stream is served (what pvesr sends)."""
    storage, volname = volume_backend(volid)
    if fmt != "zfs" or not isinstance(storage, ZfsPoolBackend):
        plugin = {"dir": "DirPlugin", "lvmthin": "LvmThinPlugin", "rbd": "RBDPlugin", "nfs": "NFSPlugin",
                  "iscsidirect": "ISCSIDirectPlugin", "zfspool": "ZFSPoolPlugin"}.get(storage.options["type"], "Plugin")
        raise config.StorageError(f"volume {command} format {fmt} not available for PVE::Storage::{plugin}")
    snapshot = options.get("snapshot")
    if not snapshot:
        raise config.StorageError(f"{command} of a zfs stream needs --snapshot")
    base = options.get("base") or None
    if command == "export":
        with (sys.stdout.buffer if filename == "-" else open(filename, "wb")) as out:
            sys.stdout.flush()
            storage.export(volname, snapshot, base, out)
        return
    with (sys.stdin.buffer if filename == "-" else open(filename, "rb")) as stream:
        storage.import_stream(volname, snapshot, base, stream)
    print(f"successfully imported '{volid}'")


def main(argv: list[str] | None = None) -> int:
    return direct.cli_main(USAGE, run, (config.StorageError,), argv)


if __name__ == "__main__":
    raise SystemExit(main())
