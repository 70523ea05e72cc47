"""A file in a node's storage, uploaded from the controller (POST /nodes/{node}/storage/{storage}/upload, PVE's
`imgcopy` task): what pve_upload compares, uploads and removes. Refusals come before check mode."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any
from urllib.parse import quote

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_guest_ops import run_task


def volume_id(p: dict[str, Any]) -> str:
    """STORAGE:CONTENT/NAME, as PVE names an uploaded ISO or template (local:iso/NAME.iso)."""
    return f"{p['storage']}:{p['content']}/{p['filename'] or os.path.basename(p['src'] or '')}"


def present_volume(api: PveApi, p: dict[str, Any], volid: str) -> dict[str, Any] | None:
    try:
        listed = api.get(f"/nodes/{p['node']}/storage/{p['storage']}/content", content=p["content"])
    except PveError as exc:
        raise PveError(f"cannot list storage '{p['storage']}' on node '{p['node']}': {exc} - is it a storage of "
                       f"that node with content '{p['content']}'?") from exc
    return next((v for v in listed if v.get("volid") == volid), None)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_upload(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    api = PveApi.from_params(p)
    volid = volume_id(p)
    found = present_volume(api, p, volid)
    if p["state"] == "absent":
        if found is None:
            return {"changed": False, "volid": volid}
        result = {"changed": True, "volid": volid, "diff": {"before": {"volid": volid, "size": found.get("size")},
                                                            "after": {}}}
        if check_mode:
            return {**result, "msg": f"{volid} would be removed"}
        # one path segment: the volume ID's ':' and '/' encoded (PVE decodes each segment; a bare '/'
        # would make two, and an endpoint PVE does not have: 501)
        upid = api.delete(f"/nodes/{p['node']}/storage/{p['storage']}/content/{quote(volid, safe='')}")
        if isinstance(upid, str) and upid.startswith("UPID:"):
            api.wait_for_task(p["node"], upid, p["task_timeout"])
        return result
    if not p.get("src"):
        raise PveError(f"give src (the file on the controller) to upload {volid}")
    if not os.path.isfile(p["src"]):
        raise PveError(f"{p['src']} is not a file on the controller")
    size = os.path.getsize(p["src"])
    if found is not None and int(found.get("size") or -1) == size:
        return {"changed": False, "volid": volid, "size": size}
    result = {"changed": True, "volid": volid, "size": size,
              "diff": {"before": {"volid": volid, "size": found.get("size")} if found else {},
                       "after": {"volid": volid, "size": size}}}
    if check_mode:
        return {**result, "msg": f"{p['src']} would be uploaded as {volid}"}
    checksum = sha256_of(p["src"])
    # PVE names the stored file after the upload's file name, which the HTTP client takes from the file it
    # reads: a link under the wanted name
    with tempfile.TemporaryDirectory() as tmp:
        named = os.path.join(tmp, volid.rsplit("/", 1)[1])
        os.symlink(os.path.abspath(p["src"]), named)
        with open(named, "rb") as handle:
            run_task(api, p["node"], f"/nodes/{p['node']}/storage/{p['storage']}/upload", p, content=p["content"],
                     filename=handle, checksum=checksum, **{"checksum-algorithm": "sha256"})
    return result
