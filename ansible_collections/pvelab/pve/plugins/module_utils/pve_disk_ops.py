"""A VM's disk through the API: grown (PUT /nodes/{node}/qemu/{vmid}/resize) and moved to another storage
(POST .../move_disk), waiting for each task. Sizes are absolute, so a second run changes nothing;
refusals (no such VM or disk, a CD-ROM, shrinking, an unknown storage) come before check mode."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_guest_ops import find, run_task

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)$")


def size_bytes(text: str, what: str) -> int:
    """A size as PVE writes it (64M, 1.5G, bytes without a unit)."""
    found = SIZE.match(str(text).strip())
    if not found:
        raise PveError(f"{what} '{text}' is not a size: give a number with K, M, G or T (e.g. 128M, 2G)")
    return int(float(found.group(1)) * UNITS[found.group(2)])


def drive_props(value: str) -> tuple[str, dict[str, str]]:
    """A drive's volume ID and its properties (`local-lvm:vm-100-disk-0,size=64M`)."""
    volid, *rest = value.split(",")
    return volid, dict(item.split("=", 1) for item in rest if "=" in item)


def ensure_disk(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    vmid, disk = p["vmid"], p["disk"]
    guest = find(api, vmid)
    if guest is None or guest.get("type") != "qemu":
        raise PveError(f"VM {vmid} does not exist in the cluster" + (" (it is a container)" if guest else ""))
    node = str(guest["node"])
    base = f"/nodes/{node}/qemu/{vmid}"
    config = api.get(f"{base}/config")
    if disk not in config:
        disks = sorted(k for k, v in config.items() if re.match(r"^(ide|sata|scsi|virtio)\d+$", k) and
                       "media=cdrom" not in str(v))
        raise PveError(f"VM {vmid} has no disk '{disk}' (its disks: {', '.join(disks) or 'none'})")
    volid, props = drive_props(str(config[disk]))
    if props.get("media") == "cdrom":
        raise PveError(f"'{disk}' of VM {vmid} is a CD-ROM drive: it has no disk to resize or move")
    storage = volid.split(":", 1)[0]
    have = {"size": props.get("size", "0"), "storage": storage}
    want = dict(have)
    if p.get("size") is not None:
        wanted, current = size_bytes(p["size"], "size"), size_bytes(have["size"], "the current size")
        if wanted < current:
            raise PveError(f"disk '{disk}' of VM {vmid} is {have['size']}; PVE cannot shrink a disk (size "
                           f"{p['size']} is smaller)")
        if wanted > current:
            want["size"] = p["size"]
    if p.get("storage") and p["storage"] != storage:
        storages = {s["storage"]: s for s in api.get("/storage")}
        if p["storage"] not in storages:
            raise PveError(f"storage '{p['storage']}' does not exist (storages: {', '.join(sorted(storages))})")
        if "images" not in str(storages[p["storage"]].get("content", "")).split(","):
            raise PveError(f"storage '{p['storage']}' does not hold VM disks (content 'images'): choose another")
        want["storage"] = p["storage"]
    result: dict[str, Any] = {"changed": want != have, "vmid": vmid, "node": node, "disk": disk}
    if want == have:
        return {**result, **have}
    result["diff"] = {"before": have, "after": want}
    if check_mode:
        what = [f"grown to {want['size']}" if want["size"] != have["size"] else "",
                f"moved to '{want['storage']}'" if want["storage"] != have["storage"] else ""]
        return {**result, **want, "msg": f"disk '{disk}' of VM {vmid} would be {' and '.join(w for w in what if w)}"}
    log: list[str] = []
    if want["size"] != have["size"]:
        upid = api.put(f"{base}/resize", disk=disk, size=want["size"])
        log += api.wait_for_task(node, upid, p["task_timeout"])
    if want["storage"] != have["storage"]:
        params: dict[str, Any] = {"disk": disk, "storage": want["storage"], "delete": int(p["delete_source"])}
        if p.get("format"):
            params["format"] = p["format"]
        log += run_task(api, node, f"{base}/move_disk", p, **params)
    return {**result, **want, "task_log": log}
