"""Ceph pools as PVE's API shows and changes them (PVE/API2/Ceph/Pool.pm): the list and status views,
and the create/set/destroy workers, with `--add_storages`/`--remove_storages` for the RBD storage."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from pvelab.pve.ceph import daemons, rados
from pvelab.pve.ceph.pool import apply_settings, create_settings
from pvelab.pve.ceph.tools import ADMIN_KEYRING, CephError
from pvelab.pve.storage import config as storage_config

SETTABLE = ("size", "min_size", "pg_num", "pg_num_min", "pg_autoscale_mode", "crush_rule", "target_size",
            "target_size_ratio", "application")
STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
RBD_KEYRING = "/etc/pve/priv/ceph/{storage}.keyring"


def truthy(value: Any) -> bool:
    return str(value) in ("1", "true", "True")


def dump_pools() -> list[dict[str, Any]]:
    return list(rados.command(["osd", "dump"]).get("pools", []))


def find(name: str) -> dict[str, Any]:
    for pool in dump_pools():
        if pool["pool_name"] == name:
            return pool
    raise CephError(f"mon_command failed - pool '{name}' does not exist")


def listing() -> list[dict[str, Any]]:
    daemons.PATHS.check_inited()
    rules = {r["rule_id"]: r["rule_name"] for r in rados.command(["osd", "crush", "rule", "dump"]) or []}
    usage = {p["id"]: p.get("stats", {}) for p in (rados.command(["df"]) or {}).get("pools", [])}
    out = []
    for p in dump_pools():
        stats = usage.get(p["pool"], {})
        entry: dict[str, Any] = {
            "pool": p["pool"], "pool_name": p["pool_name"], "size": p["size"], "min_size": p["min_size"],
            "pg_num": p["pg_num"], "crush_rule": p["crush_rule"], "crush_rule_name": rules.get(p["crush_rule"], ""),
            "type": {1: "replicated", 3: "erasure"}.get(p.get("type", 1), "unknown"),
            "bytes_used": int(stats.get("bytes_used", 0)), "percent_used": float(stats.get("percent_used", 0)),
            "pg_autoscale_mode": p.get("pg_autoscale_mode", "warn"),
            "application_metadata": p.get("application_metadata") or {},
        }
        options = p.get("options") or {}
        for key, out_key in (("pg_num_min", "pg_num_min"), ("target_size_bytes", "target_size"),
                             ("target_size_ratio", "target_size_ratio")):
            if key in options:
                entry[out_key] = options[key]
        out.append(entry)
    return out


def current(name: str) -> dict[str, Any]:
    """`osd pool get NAME all`, plus the application (set by its own command)."""
    values = dict(rados.command(["osd", "pool", "get", name, "all"]) or {})
    apps = list((find(name).get("application_metadata") or {}).keys())
    if apps:
        values["application"] = apps[0]
    return values


def status(name: str) -> dict[str, Any]:
    daemons.PATHS.check_inited()
    values = current(name)
    pool = find(name)
    rules = {r["rule_id"]: r["rule_name"] for r in rados.command(["osd", "crush", "rule", "dump"]) or []}
    out: dict[str, Any] = {"id": pool["pool"], "name": name, "size": values.get("size"),
                           "min_size": values.get("min_size"), "pg_num": values.get("pg_num"),
                           "pgp_num": values.get("pgp_num", values.get("pg_num")),
                           "crush_rule": rules.get(pool["crush_rule"], str(values.get("crush_rule", ""))),
                           "pg_autoscale_mode": values.get("pg_autoscale_mode", "warn"),
                           "application_list": list((pool.get("application_metadata") or {}).keys())}
    if out["application_list"]:
        out["application"] = out["application_list"][0]
    for key in ("fast_read", "hashpspool", "nodeep-scrub", "nodelete", "nopgchange", "noscrub", "nosizechange",
                "use_gmt_hitset", "write_fadvise_dontneed"):
        out[key] = bool(values.get(key, False))
    return out


def check_create(params: dict[str, Any]) -> None:
    daemons.PATHS.check_configured()
    name = params["name"]
    if params.get("add_storages") and not STORAGE_ID.match(name):
        raise CephError("pool name contains characters which are illegal for storage naming")
    size, min_size = int(params.get("size") or 3), int(params.get("min_size") or 2)
    if min_size > size:
        # Ceph's own refusal, which PVE's worker would meet when it applies min_size
        raise CephError(f"pool min_size must be between 1 and size, which is set to {size}")


def set_one(name: str) -> Any:
    def apply(key: str, value: str) -> str | None:
        try:
            if key == "application":
                rados.command(["osd", "pool", "application", "enable", name, value], rados.LONG_TIMEOUT)
            else:
                rados.command(["osd", "pool", "set", name, key, value], rados.LONG_TIMEOUT)
        except CephError as exc:
            return str(exc).removeprefix("mon_command failed - ")
        return None
    return apply


def create(node: str, params: dict[str, Any], say: Any) -> None:
    name = params["name"]
    settings = create_settings({k: params.get(k) for k in SETTABLE})
    rados.command(["osd", "pool", "create", name, str(settings["pg_num"])], rados.LONG_TIMEOUT)
    apply_settings(name, settings, current(name), set_one(name), say)
    if truthy(params.get("add_storages")):
        try:
            add_storage(name)
        except Exception as exc:  # noqa: BLE001 - PVE wraps whatever the storage layer says
            raise CephError(f"adding PVE storage for ceph pool '{name}' failed: {exc}") from exc


def add_storage(name: str) -> None:
    """What the storage API's create does for `rbd: NAME` (pool NAME, krbd 0, content rootdir,images),
    with the RBD plugin's on-add hook copying the admin keyring for it."""
    from pvelab.pve.api import direct
    keyring = Path(RBD_KEYRING.format(storage=name))
    if keyring.exists():
        raise CephError(f"ceph authx keyring file for storage '{name}' already exists!")
    keyring.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ADMIN_KEYRING, keyring)
    direct.call("POST", "/storage", {"type": "rbd", "storage": name, "pool": name, "krbd": "0",
                                     "content": "rootdir,images"})


def update(params: dict[str, Any], say: Any) -> None:
    name = params["name"]
    settings = {k: params[k] for k in SETTABLE if params.get(k) is not None}
    apply_settings(name, settings, current(name), set_one(name), say)


def storages_on(name: str) -> list[str]:
    return [sid for sid, opts in storage_config.read().items()
            if opts.get("type") == "rbd" and opts.get("pool", "rbd") == name and not opts.get("monhost")]


def check_destroy(params: dict[str, Any]) -> None:
    daemons.PATHS.check_configured()
    find(params["name"])


def destroy(params: dict[str, Any], say: Any) -> None:
    name = params["name"]
    storages = storages_on(name)
    if not truthy(params.get("force")):
        for sid in storages:
            say(f"checking storage '{sid}' for RBD images..")
            if rbd_images(name):
                raise CephError(f"ceph pool '{name}' still in use by storage '{sid}'")
    rados.command(["osd", "pool", "rm", name, name, "--yes-i-really-really-mean-it"], rados.LONG_TIMEOUT)
    if truthy(params.get("remove_storages")):
        from pvelab.pve.api import direct
        for sid in storages:
            direct.call("DELETE", f"/storage/{sid}", {})
            Path(RBD_KEYRING.format(storage=sid)).unlink(missing_ok=True)


def rbd_images(pool: str) -> list[str]:
    value = json.loads(daemons.run(["rbd", "ls", "-p", pool, "--format", "json"]) or "[]")
    return [str(v) for v in value] if isinstance(value, list) else []
