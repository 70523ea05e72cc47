"""A VM or CT through the API (/nodes/{node}/qemu, /nodes/{node}/lxc): what pve_guest compares, creates,
changes, starts, stops and destroys, waiting for every task it starts. Refusals come before check mode."""

from __future__ import annotations

from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError

API_KIND = {"vm": "qemu", "ct": "lxc"}
# Options compared and changed on an existing guest (as its config spells them).
CHANGEABLE = ("name", "hostname", "memory", "cores", "onboot", "description", "ipconfig0")


def find(api: PveApi, vmid: int) -> dict[str, Any] | None:
    """The guest's /cluster/resources entry (node, type, status), wherever it is in the cluster."""
    return next((g for g in api.get("/cluster/resources", type="vm") if int(g["vmid"]) == vmid), None)


def wanted_config(p: dict[str, Any]) -> dict[str, str]:
    """The options of the guest the module manages, as PVE's config spells them."""
    out: dict[str, str] = {}
    if p.get("name") is not None:
        out["name" if p["kind"] == "vm" else "hostname"] = p["name"]
    for key in ("memory", "cores", "description"):
        if p.get(key) is not None:
            out[key] = str(p[key])
    if p.get("onboot") is not None:
        out["onboot"] = str(int(p["onboot"]))
    if p.get("ipconfig0") is not None and p["kind"] == "vm":
        out["ipconfig0"] = p["ipconfig0"]
    out.update({k: str(int(v)) if isinstance(v, bool) else str(v) for k, v in (p.get("config") or {}).items()})
    return out


def deletions(p: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The options of `delete` the guest's config has (PVE removes them with PUT config delete=...)."""
    both = sorted(set(p.get("delete") or ()) & (set(p.get("config") or {}) | set(p.get("options") or {})))
    if both:
        raise PveError(f"guest {p['vmid']}: {', '.join(both)} both set and deleted: keep each in one of config, "
                       "options and delete")
    return [k for k in p.get("delete") or () if k in config]


def create_params(p: dict[str, Any]) -> dict[str, Any]:
    """POST /nodes/{node}/qemu or /lxc parameters for a new guest, from the module's options."""
    size = p.get("disk_size") or (0.0625 if p["kind"] == "vm" else 1)
    if not p.get("disk_storage"):
        raise PveError(f"guest {p['vmid']} does not exist yet: give disk_storage (and disk_size in GiB) to create it")
    params: dict[str, Any] = dict(wanted_config(p))
    if p["kind"] == "vm":
        params.update(net0=f"virtio,bridge={p['bridge']}", scsihw="virtio-scsi-pci",
                      scsi0=f"{p['disk_storage']}:{size}")
        if p.get("iso"):
            params["ide2"] = f"{p['iso']},media=cdrom"
        if p.get("ipconfig0"):
            params["ide0"] = f"{p.get('cloudinit_storage') or p['disk_storage']}:cloudinit"
    else:
        if not p.get("ostemplate"):
            raise PveError(f"container {p['vmid']} does not exist yet: give ostemplate (e.g. "
                           "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst) to create it")
        net = f"name=eth0,bridge={p['bridge']}"
        if p.get("ip"):
            net += f",ip={p['ip']}"
        params.update(ostemplate=p["ostemplate"], rootfs=f"{p['disk_storage']}:{size}", net0=net)
        if p.get("password"):
            params["password"] = p["password"]
    params.update({k: str(v) for k, v in (p.get("options") or {}).items()})
    return params


def ensure_guest(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    vmid, kind = p["vmid"], p["kind"]
    entry = find(api, vmid)
    if entry is not None and entry.get("type") != API_KIND[kind]:
        raise PveError(f"guest {vmid} exists as a {'VM' if entry.get('type') == 'qemu' else 'CT'}, not a "
                       f"{kind.upper()}: choose another vmid, or kind: {'vm' if entry.get('type') == 'qemu' else 'ct'}")
    if p["state"] == "absent":
        return destroy(api, p, entry, check_mode)
    if entry is None:
        return create(api, p, check_mode)
    node = str(entry["node"])
    # An HA guest runs where HA places it (failover, failback, migrations): `node` is where it was made.
    if p.get("node") and p["node"] != node and "hastate" not in entry:
        raise PveError(f"guest {vmid} is on node '{node}', not '{p['node']}': migrate it (qm migrate) or leave node "
                       "unset; this module does not move guests")
    base = f"/nodes/{node}/{API_KIND[kind]}/{vmid}"
    config = api.get(f"{base}/config")
    want = wanted_config(p)
    changes = {k: v for k, v in want.items() if str(config.get(k, "")) != v}
    removed = deletions(p, config)
    power = power_change(api, p, base, entry)
    template = template_change(p, config, power or entry.get("status"))
    if not changes and not removed and power is None and not template:
        return {"changed": False, "vmid": vmid, "node": node, "status": entry.get("status")}
    before = {k: str(config.get(k, "")) for k in [*changes, *removed]}
    result = {"changed": True, "vmid": vmid, "node": node,
              "diff": {"before": {**before, **({"status": entry.get("status")} if power else {}),
                                  **({"template": 0} if template else {})},
                       "after": {**changes, **({"status": power} if power else {}),
                                 **({"template": 1} if template else {})}}}
    if check_mode:
        what = [*([f"set {', '.join(sorted(changes))}"] if changes else []),
                *([f"removed {', '.join(removed)}"] if removed else []), *([power] if power else []),
                *(["made a template"] if template else [])]
        return {**result, "msg": f"guest {vmid} would be changed ({'; '.join(what)})", "status": entry.get("status")}
    if changes or removed:
        api.put(f"{base}/config", digest=config.get("digest"), **changes,
                **({"delete": ",".join(removed)} if removed else {}))
    if power:
        run_task(api, node, f"{base}/status/{'start' if power == 'running' else 'stop'}", p)
    if template:
        run_task(api, node, f"{base}/template", p)
    return {**result, "status": power or entry.get("status")}


def template_change(p: dict[str, Any], config: dict[str, Any], status: str | None) -> bool:
    """True when the guest is to become a template (its disks base images, for linked clones); PVE has no
    way back, and a template never runs."""
    is_template = str(config.get("template", "0")) == "1"
    if p.get("template") is None or bool(p["template"]) == is_template:
        return False
    if is_template:
        raise PveError(f"guest {p['vmid']} is a template, which PVE cannot turn back into a guest: clone it "
                       "(pve_clone) and use the clone")
    if p["state"] == "started":
        raise PveError(f"a template never runs: use state: stopped (or present) with template: true for guest "
                       f"{p['vmid']}")
    if status == "running":
        raise PveError(f"guest {p['vmid']} is running: stop it (state: stopped) to make it a template")
    return True


def power_change(api: PveApi, p: dict[str, Any], base: str, entry: dict[str, Any]) -> str | None:
    """'running' or 'stopped' when the guest must be started or stopped; refused for HA guests."""
    wanted = {"started": "running", "stopped": "stopped"}.get(p["state"])
    if wanted is None or entry.get("status") == wanted:
        return None
    if (api.get(f"{base}/status/current").get("ha") or {}).get("managed"):
        raise PveError(f"guest {p['vmid']} is managed by HA, which starts and stops it: set its requested state "
                       "with pve_ha_resource (resource_state: started or stopped) instead")
    return wanted


def create(api: PveApi, p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    vmid, kind = p["vmid"], p["kind"]
    if not p.get("node"):
        raise PveError(f"guest {vmid} does not exist yet: give the node to create it on")
    params = create_params(p)
    deletions(p, {})  # the same refusal as for an existing guest
    if p.get("template") and p["state"] == "started":
        raise PveError(f"a template never runs: use state: stopped (or present) with template: true for guest {vmid}")
    status = "running" if p["state"] == "started" else "stopped"
    shown = {k: v for k, v in params.items() if k != "password"}
    result = {"changed": True, "vmid": vmid, "node": p["node"], "status": status,
              "diff": {"before": {}, "after": {**shown, "status": status,
                                               **({"template": 1} if p.get("template") else {})}}}
    if check_mode:
        return {**result, "msg": f"{kind.upper()} {vmid} would be created on node '{p['node']}'"}
    base = f"/nodes/{p['node']}/{API_KIND[kind]}"
    run_task(api, p["node"], base, p, vmid=vmid, **params)
    if p["state"] == "started":
        run_task(api, p["node"], f"{base}/{vmid}/status/start", p)
    if p.get("template"):
        run_task(api, p["node"], f"{base}/{vmid}/template", p)
    return result


def destroy(api: PveApi, p: dict[str, Any], entry: dict[str, Any] | None, check_mode: bool) -> dict[str, Any]:
    vmid = p["vmid"]
    if entry is None:
        return {"changed": False, "vmid": vmid}
    node = str(entry["node"])
    diff = {"before": {"status": entry.get("status")}, "after": {}}
    result = {"changed": True, "vmid": vmid, "node": node, "diff": diff}
    base = f"/nodes/{node}/{entry['type']}/{vmid}"
    running = entry.get("status") == "running"
    # Refused before check mode returns, so --check says what a real run would do.
    if running and (api.get(f"{base}/status/current").get("ha") or {}).get("managed"):
        raise PveError(f"guest {vmid} is managed by HA and running: remove it from HA (pve_ha_resource "
                       "state: absent) or stop it through HA first")
    if check_mode:
        return {**result, "msg": f"guest {vmid} would be {'stopped and ' if running else ''}"
                                 f"destroyed on node '{node}' (with its disks)"}
    if running:
        run_task(api, node, f"{base}/status/stop", p)
    upid = api.delete(base, purge=1)
    api.wait_for_task(node, upid, p.get("task_timeout", 300))
    return result


def run_task(api: PveApi, node: str, path: str, p: dict[str, Any], **params: Any) -> list[str]:
    upid = api.post(path, **params)
    try:
        return api.wait_for_task(node, upid, p.get("task_timeout", 300))
    except PveError as exc:
        raise PveError(str(exc), {"changed": True}) from exc
