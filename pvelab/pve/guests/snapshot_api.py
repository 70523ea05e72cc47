"""The VM snapshot API (/nodes/{node}/qemu/{vmid}/snapshot...), as qemu-server serves it; `qm
snapshot|listsnapshot|rollback|delsnapshot` call it. The steps are guests/snapshot.py's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import snapshot, store
from pvelab.pve.guests.api import guest_call, typed_options, worker
from pvelab.pve.guests.config import NOT_OPTIONS, Section

Log = Callable[[str], None]


def vm_here(ctx: Context, vmid: int) -> snapshot.Vm:
    guest_call(lambda: store.load(ctx.node, vmid))  # PVE's "Configuration file ... does not exist"
    return snapshot.Vm(ctx.node, vmid)


def snapshot_section(ctx: Context, params: dict[str, Any]) -> Section:
    """The snapshot the path names, or PVE's "snapshot '...' does not exist"."""
    conf = guest_call(lambda: store.load(ctx.node, int(params["vmid"])))
    snap = conf.snapshots.get(params["snapname"])
    if snap is None:
        raise ApiException(500, f"snapshot '{params['snapname']}' does not exist")
    return snap


@route("GET /nodes/{node}/qemu/{vmid}/snapshot")
def snapshot_list(ctx: Context, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    conf = guest_call(lambda: store.load(ctx.node, vmid))
    out: list[dict[str, Any]] = []
    for name, snap in conf.snapshots.items():
        item: dict[str, Any] = {"name": name, "snaptime": int(snap.options.get("snaptime") or 0),
                                "vmstate": 1 if snap.options.get("vmstate") else 0,
                                "description": snap.description or ""}
        for key in ("parent", "snapstate"):
            if snap.options.get(key):
                item[key] = snap.options[key]
        out.append(item)
    current: dict[str, Any] = {"name": "current", "digest": conf.digest, "description": "You are here!",
                               "running": 1 if snapshot.Node(ctx.node).running(vmid) else 0}
    if conf.main.options.get("parent"):
        current["parent"] = conf.main.options["parent"]
    return [*out, current]


@route("POST /nodes/{node}/qemu/{vmid}/snapshot")
def snapshot_create(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, name = int(params["vmid"]), params["snapname"]
    if name == "current":
        raise ApiException(500, "unable to use snapshot name 'current' (reserved name)")
    if name.lower() == "pending":
        raise ApiException(500, "unable to use snapshot name 'pending' (reserved name)")
    vm = vm_here(ctx, vmid)
    world = snapshot.Node(ctx.node)
    return worker(ctx, "qmsnapshot", vmid, lambda log: snapshot.create(
        vm, name, bool(params.get("vmstate")), params.get("description"), world, log))


@route("GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def snapshot_index(ctx: Context, params: dict[str, Any]) -> Any:
    snapshot_section(ctx, params)
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@route("GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config")
def snapshot_config(ctx: Context, params: dict[str, Any]) -> Any:
    snap = snapshot_section(ctx, params)
    out = typed_options({k: v for k, v in snap.options.items() if k not in NOT_OPTIONS})
    if snap.description:
        out["description"] = snap.description
    return out


@route("PUT /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config")
def snapshot_update(ctx: Context, params: dict[str, Any]) -> Any:
    """Only the description changes (qemu-server's update_snapshot_config)."""
    vm = vm_here(ctx, int(params["vmid"]))
    if "description" not in params:
        return None

    def change(conf: Any) -> None:
        snap = conf.snapshots.get(params["snapname"])
        if snap is None:
            raise store.GuestError(f"snapshot '{params['snapname']}' does not exist")
        snap.description = params["description"]

    guest_call(lambda: vm.update(change))
    return None


@route("POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback")
def snapshot_rollback(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, name = int(params["vmid"]), params["snapname"]
    if params.get("start"):  # the worker starts the VM itself: the right to do so is checked first
        access.require_vm(ctx.caller.name, vmid, ["VM.PowerMgmt"])
    vm = vm_here(ctx, vmid)
    world = snapshot.Node(ctx.node)

    def work(log: Log) -> None:
        snapshot.rollback(vm, name, world, log)
        if params.get("start") and not world.running(vmid):
            snapshot.start_vm(ctx.node, vmid, log)

    return worker(ctx, "qmrollback", vmid, work)


@route("DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def snapshot_delete(ctx: Context, params: dict[str, Any]) -> Any:
    vmid, name = int(params["vmid"]), params["snapname"]
    vm = vm_here(ctx, vmid)
    world = snapshot.Node(ctx.node)
    return worker(ctx, "qmdelsnapshot", vmid, lambda log: snapshot.delete(
        vm, name, bool(params.get("force")), world, log))
