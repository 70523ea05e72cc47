"""The snapshot API of VMs (/nodes/{node}/qemu/{vmid}/snapshot...) and containers (.../lxc/...), as
qemu-server and pve-container serve it; `qm` and `pct` snapshot|listsnapshot|rollback|delsnapshot
call it. One set of handlers for both kinds (the steps are guests/snapshot.py's, shared as PVE's
AbstractConfig shares them); what differs by kind is in `KINDS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.api.routes import ApiException, Context, route
from pvelab.pve.guests import snapshot, store
from pvelab.pve.guests.api import guest_call, typed_options, worker
from pvelab.pve.guests.config import NOT_OPTIONS, Section
from pvelab.pve.guests.lxc_api import start_ct

Log = Callable[[str], None]


@dataclass(frozen=True)
class Kind:
    name: str  # store's kind: "qemu" or "lxc"
    tasks: tuple[str, str, str]  # the worker types of snapshot, rollback, delsnapshot
    reserved: tuple[str, ...]  # snapshot names the create call refuses
    lists_vmstate: bool  # qemu-server's list says whether RAM was saved; pve-container's has no such field

    def world(self, node: str) -> snapshot.World:
        return snapshot.Node(node) if self.name == "qemu" else snapshot.ContainerNode(node)

    def check_name(self, name: str) -> None:
        """The create call's refusal of a reserved name: as written ("pending" in any case, as the
        config reads a `[PENDING]` section in any case)."""
        for reserved in self.reserved:
            if name == reserved or (reserved == "pending" and name.lower() == reserved):
                raise ApiException(500, f"unable to use snapshot name '{reserved}' (reserved name)")

    def start(self, node: str, vmid: int, log: Log) -> None:
        if self.name == "qemu":
            snapshot.start_vm(node, vmid, log)
        else:
            start_ct(node, vmid, log)


KINDS = {"qemu": Kind("qemu", ("qmsnapshot", "qmrollback", "qmdelsnapshot"), ("current", "pending"), True),
         "lxc": Kind("lxc", ("vzsnapshot", "vzrollback", "vzdelsnapshot"), ("current", "vzdump"), False)}


def guest_here(ctx: Context, kind: Kind, vmid: int) -> snapshot.Guest:
    guest_call(lambda: store.load(ctx.node, vmid, kind.name))  # PVE's "Configuration file ... does not exist"
    return snapshot.Guest(ctx.node, vmid, kind.name)


def snapshot_section(ctx: Context, kind: Kind, params: dict[str, Any]) -> Section:
    """The snapshot the path names, or PVE's "snapshot '...' does not exist"."""
    conf = guest_call(lambda: store.load(ctx.node, int(params["vmid"]), kind.name))
    return guest_call(lambda: store.snapshot_section(conf, params["snapname"]))


def snapshot_list(ctx: Context, kind: Kind, params: dict[str, Any]) -> Any:
    vmid = int(params["vmid"])
    conf = guest_call(lambda: store.load(ctx.node, vmid, kind.name))
    out: list[dict[str, Any]] = []
    for name, snap in conf.snapshots.items():
        item: dict[str, Any] = {"name": name, "snaptime": int(snap.options.get("snaptime") or 0),
                                "description": snap.description or ""}
        if kind.lists_vmstate:
            item["vmstate"] = 1 if snap.options.get("vmstate") else 0
        for key in ("parent", "snapstate"):
            if snap.options.get(key):
                item[key] = snap.options[key]
        out.append(item)
    current: dict[str, Any] = {"name": "current", "digest": conf.digest, "description": "You are here!",
                               "running": 1 if kind.world(ctx.node).running(vmid) else 0}
    if conf.main.options.get("parent"):
        current["parent"] = conf.main.options["parent"]
    return [*out, current]


def snapshot_create(ctx: Context, kind: Kind, params: dict[str, Any]) -> Any:
    vmid, name = int(params["vmid"]), params["snapname"]
    kind.check_name(name)
    guest = guest_here(ctx, kind, vmid)
    world = kind.world(ctx.node)
    return worker(ctx, kind.tasks[0], vmid, lambda log: snapshot.create(
        guest, name, bool(params.get("vmstate")), params.get("description"), world, log))


def snapshot_index(ctx: Context, kind: Kind, params: dict[str, Any]) -> Any:
    snapshot_section(ctx, kind, params)
    return [{"cmd": "rollback"}, {"cmd": "config"}]


def snapshot_config(ctx: Context, kind: Kind, params: dict[str, Any]) -> Any:
    snap = snapshot_section(ctx, kind, params)
    out = typed_options({k: v for k, v in snap.options.items() if k not in NOT_OPTIONS},
                        template=f"/nodes/{{node}}/{kind.name}/{{vmid}}/config")
    if snap.description:
        out["description"] = snap.description
    return out


def snapshot_update(ctx: Context, kind: Kind, params: dict[str, Any]) -> Any:
    """Only the description changes (update_snapshot_config)."""
    guest = guest_here(ctx, kind, int(params["vmid"]))
    if "description" not in params:
        return None

    def change(conf: Any) -> None:
        snap = store.snapshot_section(conf, params["snapname"])
        snap.description = params["description"]

    guest_call(lambda: guest.update(change))
    return None


def snapshot_rollback(ctx: Context, kind: Kind, params: dict[str, Any]) -> Any:
    vmid, name = int(params["vmid"]), params["snapname"]
    if params.get("start"):  # the worker starts the guest itself: the right to do so is checked first
        access.require_vm(ctx.caller.name, vmid, ["VM.PowerMgmt"])
    guest = guest_here(ctx, kind, vmid)
    world = kind.world(ctx.node)

    def work(log: Log) -> None:
        snapshot.rollback(guest, name, world, log)
        if params.get("start") and not world.running(vmid):
            kind.start(ctx.node, vmid, log)

    return worker(ctx, kind.tasks[1], vmid, work)


def snapshot_delete(ctx: Context, kind: Kind, params: dict[str, Any]) -> Any:
    vmid, name = int(params["vmid"]), params["snapname"]
    guest = guest_here(ctx, kind, vmid)
    world = kind.world(ctx.node)
    return worker(ctx, kind.tasks[2], vmid, lambda log: snapshot.delete(
        guest, name, bool(params.get("force")), world, log))


ENDPOINTS = {"GET {base}/snapshot": snapshot_list, "POST {base}/snapshot": snapshot_create,
             "GET {base}/snapshot/{{snapname}}": snapshot_index,
             "GET {base}/snapshot/{{snapname}}/config": snapshot_config,
             "PUT {base}/snapshot/{{snapname}}/config": snapshot_update,
             "POST {base}/snapshot/{{snapname}}/rollback": snapshot_rollback,
             "DELETE {base}/snapshot/{{snapname}}": snapshot_delete}


def register(kind: Kind) -> None:
    base = f"/nodes/{{node}}/{kind.name}/{{vmid}}"
    for pattern, handler in ENDPOINTS.items():
        def serve(ctx: Context, params: dict[str, Any], handler: Any = handler) -> Any:
            return handler(ctx, kind, params)
        route(pattern.format(base=base))(serve)


for _kind in KINDS.values():
    register(_kind)
