"""Backup retention as PVE's pruning does it (pve-storage's `prune_backups` and
`prune_mark_backup_group`): the `prune-backups` property string, the name of a backup archive
(type, VMID, time), and the marks each backup gets - `keep`, `remove`, `protected`, or `renamed`
for archives whose names do not follow vzdump's scheme (never pruned).

Each retention option covers its own period, shortest first (`keep-last` before `keep-hourly`,
... `keep-yearly`); a period already covered by a kept backup is not counted again. Times are local
time, as PVE's `localtime`; weeks are ISO weeks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from pvelab.pve.storage import volname
from pvelab.pve.storage.config import StorageError

OPTIONS = ("keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly")
BACKUP_FILE = re.compile(rf"^.+{volname.BACKUP_EXT}$")  # what a storage lists as a backup
# What two backups share to count as one, per option (local time, ISO weeks, as PVE's localtime/strftime)
PERIODS: dict[str, Callable[[int], str]] = {
    "keep-last": str,
    "keep-hourly": lambda ctime: time.strftime("%Y-%m-%d %H", time.localtime(ctime)),
    "keep-daily": lambda ctime: time.strftime("%Y-%m-%d", time.localtime(ctime)),
    "keep-weekly": lambda ctime: time.strftime("%G-W%V", time.localtime(ctime)),
    "keep-monthly": lambda ctime: time.strftime("%Y-%m", time.localtime(ctime)),
    "keep-yearly": lambda ctime: time.strftime("%Y", time.localtime(ctime)),
}


def parse_options(text: str) -> dict[str, int]:
    """A `prune-backups` property string (`keep-last=3,keep-daily=7`) as PVE's format validates it:
    none above zero means keep-all; keep-all beside another option is refused."""
    options: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if key not in ("keep-all", *OPTIONS) or not sep:
            raise StorageError(f"invalid format - unknown key '{key}'" if sep else f"invalid format - {part}",
                               param="prune-backups", status=400)
        if not re.fullmatch(r"\d+", value) or (key == "keep-all" and value not in ("0", "1")):
            raise StorageError(f"invalid format - {key}: type check ('{'boolean' if key == 'keep-all' else 'integer'}')"
                               f" failed - got '{value}'", param="prune-backups", status=400)
        options[key] = int(value)
    return validated(options)


def validated(options: dict[str, int]) -> dict[str, int]:
    rest = {k: v for k, v in options.items() if k != "keep-all"}
    if not any(v > 0 for v in rest.values()):
        return {"keep-all": 1}
    if options.get("keep-all"):
        raise StorageError("keep-all cannot be set together with other options.", param="prune-backups", status=400)
    return rest


def archive_info(name: str) -> dict[str, Any]:
    """Type, VMID and time of a backup archive from its file name (pve-storage's archive_info; {} when
    it is no vzdump archive)."""
    try:
        return volname.archive_info(name)
    except StorageError:
        return {}


def mark_group(group: list[dict[str, Any]], keep: dict[str, int]) -> None:
    """Mark one guest's backups (one type, one VMID) `keep` or `remove`; marks already set stay."""
    if keep.get("keep-all") or not any(v > 0 for k, v in keep.items() if k != "keep-all"):
        for entry in group:
            if not entry.get("mark") or entry["mark"] == "remove":
                entry["mark"] = "keep"
        return
    newest_first = sorted(group, key=lambda e: e["ctime"], reverse=True)
    for option in OPTIONS:
        _mark(newest_first, keep.get(option, 0), PERIODS[option])
    for entry in newest_first:
        entry.setdefault("mark", "remove")


def _mark(entries: list[dict[str, Any]], count: int, period_of: Callable[[int], str]) -> None:
    if not count:
        return
    covered = {period_of(e["ctime"]) for e in entries if e.get("mark") == "keep"}
    newly: set[str] = set()
    for entry in entries:
        period = period_of(entry["ctime"])
        if entry.get("mark") or period in covered:
            continue
        if period not in newly:
            if len(newly) >= count:
                break
            newly.add(period)
            entry["mark"] = "keep"
        else:
            entry["mark"] = "remove"


def marks(backups: Iterable[dict[str, Any]], keep: dict[str, int], vmid: int | None = None,
          kind: str | None = None) -> list[dict[str, Any]]:
    """PVE's prune list for the storage's backups (each with volid, ctime, optional vmid and
    protected): {volid, ctime, type, mark[, vmid]}, grouped by guest type and VMID."""
    groups: dict[str, list[dict[str, Any]]] = {}
    out: list[dict[str, Any]] = []
    for backup in backups:
        info = archive_info(backup["volid"].split(":", 1)[-1])
        backup_type = info.get("type", "unknown")
        backup_vmid = info.get("vmid", backup.get("vmid"))
        if kind is not None and kind != backup_type:
            continue
        entry: dict[str, Any] = {"ctime": backup["ctime"], "type": backup_type, "volid": backup["volid"]}
        if backup_vmid is not None:
            entry["vmid"] = backup_vmid
        if info.get("is_std_name"):
            if vmid is not None and backup_vmid != vmid:
                raise StorageError(f"internal error - got wrong VMID '{backup_vmid}' != '{vmid}'")
            entry["ctime"] = info["ctime"]
            groups.setdefault(f"{backup_type}/{backup_vmid}", []).append(entry)
        else:
            entry["mark"] = "renamed"  # not vzdump's naming: never pruned
        if backup.get("protected"):
            entry["mark"] = "protected"
        out.append(entry)
    for group in groups.values():
        mark_group(group, keep)
    return out
