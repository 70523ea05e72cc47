"""/pools (pve-manager's Pool API): resource pools of guests and storages, kept in user.cfg. PVE 9's
form (/pools with `poolid` as a parameter) and PVE 8's (/pools/{poolid}), as each version serves."""

from __future__ import annotations

from typing import Any

from pvelab.pve.access import api as access_api
from pvelab.pve.access import guard as access
from pvelab.pve.access import store as access_store
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import store as guest_store
from pvelab.pve.resources.api import guest_entries, per_node
from pvelab.pve.storage import config as storage_config


def members_of(ctx: Context, poolid: str, kind: str | None) -> list[dict[str, Any]]:
    """The pool's guests (with their status, as /cluster/resources lists them) and storages."""
    pool = access_store.read().pools.get(poolid)
    if pool is None:
        raise ApiException(500, f"pool '{poolid}' does not exist")
    sections = storage_config.read()
    found = [entry for entry in guest_entries(per_node(ctx, sections))
             if entry["vmid"] in pool["vms"] and kind in (None, entry["type"])]
    if kind in (None, "storage"):
        for sid in sorted(pool["storage"]):
            options = sections.get(sid)
            if options is None:
                continue
            node = ctx.node if storage_config.available_on(options, ctx.node) else \
                sorted(str(options.get("nodes", ctx.node)).split(","))[0]  # the local node preferred
            found.append({"id": f"storage/{node}/{sid}", "storage": sid, "node": node, "type": "storage",
                          "plugintype": options["type"], "shared": int(storage_config.is_shared(options)),
                          "content": ",".join(storage_config.content_of(options)), "status": "available"})
    return found


def pool_entry(poolid: str) -> dict[str, Any]:
    pool = access_store.read().pools[poolid]
    return {"poolid": poolid, **({"comment": pool["comment"]} if pool.get("comment") else {})}


@route("GET /pools")
def pool_index(ctx: Context, params: dict[str, Any]) -> Any:
    if params.get("poolid"):  # one pool with its members; PVE ignores the check's result here
        entry = pool_entry(params["poolid"]) if params["poolid"] in access_store.read().pools else None
        if entry is None:
            raise ApiException(500, f"pool '{params['poolid']}' does not exist")
        return [{**entry, "members": members_of(ctx, params["poolid"], params.get("type"))}]
    may = access.checker_for(ctx.caller.name)
    return [pool_entry(p) for p in sorted(access_store.read().pools) if may(f"/pool/{p}", ["Pool.Audit"])]


@route("POST /pools")
def pool_create(ctx: Context, params: dict[str, Any]) -> Any:
    access_api.create_pool(params["poolid"], params.get("comment"))


@route("PUT /pools")
def pool_update(ctx: Context, params: dict[str, Any]) -> Any:
    access_api.update_pool(ctx.caller.name, params)


@route("PUT /pools/{poolid}")
def pool_update_old(ctx: Context, params: dict[str, Any]) -> Any:
    access_api.update_pool(ctx.caller.name, params)


@route("GET /pools/{poolid}")
def pool_read(ctx: Context, params: dict[str, Any]) -> Any:
    entry = pool_entry(params["poolid"]) if params["poolid"] in access_store.read().pools else None
    if entry is None:
        raise ApiException(500, f"pool '{params['poolid']}' does not exist")
    entry.pop("poolid")
    return {**entry, "members": members_of(ctx, params["poolid"], params.get("type"))}


def delete(poolid: str) -> None:
    access_api.delete_pool(poolid, set(guest_store.vmlist()), set(storage_config.read()))


@route("DELETE /pools")
def pool_delete(ctx: Context, params: dict[str, Any]) -> Any:
    delete(params["poolid"])


@route("DELETE /pools/{poolid}")
def pool_delete_old(ctx: Context, params: dict[str, Any]) -> Any:
    delete(params["poolid"])
