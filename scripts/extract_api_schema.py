#!/usr/bin/env python3
"""Copy the endpoints the twin serves out of the official PVE API schema (pve-docs api-viewer
data, `api-viewer/apidata.js` as JSON) into pvelab/pve/api/schema-pveN.json.

  scripts/extract_api_schema.py DIR   # DIR holds api-schema-pve8.json and api-schema-pve9.json

The twin verifies parameters from these files, so it refuses what real PVE refuses. A maintainer's
tool: nothing runs it at build, run or test time. Run again after adding an endpoint to ENDPOINTS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENDPOINTS = [
    ("GET", "/version"),
    # access control (issue 21)
    ("GET", "/access"),
    ("GET", "/access/ticket"),
    ("POST", "/access/ticket"),
    ("PUT", "/access/password"),
    ("GET", "/access/permissions"),
    ("GET", "/access/acl"),
    ("PUT", "/access/acl"),
    ("GET", "/access/domains"),
    ("POST", "/access/domains"),
    ("GET", "/access/domains/{realm}"),
    ("PUT", "/access/domains/{realm}"),
    ("DELETE", "/access/domains/{realm}"),
    ("GET", "/access/groups"),
    ("POST", "/access/groups"),
    ("GET", "/access/groups/{groupid}"),
    ("PUT", "/access/groups/{groupid}"),
    ("DELETE", "/access/groups/{groupid}"),
    ("GET", "/access/roles"),
    ("POST", "/access/roles"),
    ("GET", "/access/roles/{roleid}"),
    ("PUT", "/access/roles/{roleid}"),
    ("DELETE", "/access/roles/{roleid}"),
    ("GET", "/access/users"),
    ("POST", "/access/users"),
    ("GET", "/access/users/{userid}"),
    ("PUT", "/access/users/{userid}"),
    ("DELETE", "/access/users/{userid}"),
    ("GET", "/access/users/{userid}/token"),
    ("GET", "/access/users/{userid}/token/{tokenid}"),
    ("POST", "/access/users/{userid}/token/{tokenid}"),
    ("PUT", "/access/users/{userid}/token/{tokenid}"),
    ("DELETE", "/access/users/{userid}/token/{tokenid}"),
    ("GET", "/pools"),
    ("POST", "/pools"),
    ("PUT", "/pools"),
    ("DELETE", "/pools"),
    ("GET", "/pools/{poolid}"),
    ("PUT", "/pools/{poolid}"),
    ("DELETE", "/pools/{poolid}"),
    ("GET", "/cluster/status"),
    ("GET", "/cluster/options"),
    ("PUT", "/cluster/options"),
    ("GET", "/cluster/config"),
    ("POST", "/cluster/config"),
    ("GET", "/cluster/config/apiversion"),
    ("GET", "/cluster/config/join"),
    ("POST", "/cluster/config/join"),
    ("GET", "/cluster/config/nodes"),
    ("POST", "/cluster/config/nodes/{node}"),
    ("DELETE", "/cluster/config/nodes/{node}"),
    ("GET", "/cluster/config/totem"),
    ("GET", "/cluster/config/qdevice"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/tasks"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    ("GET", "/cluster/resources"),
    ("GET", "/cluster/nextid"),
    ("GET", "/storage"),
    ("POST", "/storage"),
    ("GET", "/storage/{storage}"),
    ("PUT", "/storage/{storage}"),
    ("DELETE", "/storage/{storage}"),
    ("GET", "/nodes/{node}/storage"),
    # storage scans (issue 23): the SAN's targets, the NAS's exports
    ("GET", "/nodes/{node}/scan"),
    ("GET", "/nodes/{node}/scan/iscsi"),
    ("GET", "/nodes/{node}/scan/nfs"),
    # storage replication (issue 23)
    ("GET", "/cluster/replication"),
    ("POST", "/cluster/replication"),
    ("GET", "/cluster/replication/{id}"),
    ("PUT", "/cluster/replication/{id}"),
    ("DELETE", "/cluster/replication/{id}"),
    ("GET", "/nodes/{node}/replication"),
    ("GET", "/nodes/{node}/replication/{id}"),
    ("GET", "/nodes/{node}/replication/{id}/status"),
    ("GET", "/nodes/{node}/replication/{id}/log"),
    ("POST", "/nodes/{node}/replication/{id}/schedule_now"),
    ("GET", "/nodes/{node}/storage/{storage}"),
    ("GET", "/nodes/{node}/storage/{storage}/status"),
    ("GET", "/nodes/{node}/storage/{storage}/content"),
    ("POST", "/nodes/{node}/storage/{storage}/content"),
    ("GET", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("PUT", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("GET", "/nodes/{node}/storage/{storage}/prunebackups"),
    ("DELETE", "/nodes/{node}/storage/{storage}/prunebackups"),
    ("POST", "/nodes/{node}/storage/{storage}/upload"),
    ("GET", "/nodes/{node}/qemu"),
    ("POST", "/nodes/{node}/qemu"),
    ("GET", "/nodes/{node}/qemu/{vmid}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/unlink"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reset"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/suspend"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/resume"),
    ("GET", "/nodes/{node}/qemu/{vmid}/migrate"),
    ("POST", "/nodes/{node}/qemu/{vmid}/migrate"),
    # snapshots and disks (issue 22)
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
    ("POST", "/nodes/{node}/qemu/{vmid}/template"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ("GET", "/nodes/{node}/qemu/{vmid}/feature"),
    ("POST", "/nodes/{node}/qemu/{vmid}/move_disk"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback"),
    ("GET", "/nodes/{node}/lxc"),
    ("POST", "/nodes/{node}/lxc"),
    ("GET", "/nodes/{node}/lxc/{vmid}"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/start"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot"),
    ("POST", "/nodes/{node}/lxc/{vmid}/migrate"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/resize"),
    ("POST", "/nodes/{node}/lxc/{vmid}/move_volume"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/unlink"),
    ("POST", "/nodes/{node}/lxc/{vmid}/template"),
    ("POST", "/nodes/{node}/lxc/{vmid}/clone"),
    ("GET", "/nodes/{node}/lxc/{vmid}/feature"),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/lxc/{vmid}/snapshot"),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"),
    ("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback"),
    ("POST", "/nodes/{node}/vzdump"),
    ("GET", "/nodes/{node}/vzdump/extractconfig"),
    ("GET", "/cluster/backup"),
    ("POST", "/cluster/backup"),
    ("GET", "/cluster/backup/{id}"),
    ("PUT", "/cluster/backup/{id}"),
    ("DELETE", "/cluster/backup/{id}"),
    ("GET", "/cluster/tasks"),
    ("GET", "/cluster/ha"),
    ("GET", "/cluster/ha/groups"),
    ("POST", "/cluster/ha/groups"),
    ("GET", "/cluster/ha/groups/{group}"),
    ("PUT", "/cluster/ha/groups/{group}"),
    ("DELETE", "/cluster/ha/groups/{group}"),
    ("GET", "/cluster/ha/resources"),
    ("POST", "/cluster/ha/resources"),
    ("GET", "/cluster/ha/resources/{sid}"),
    ("PUT", "/cluster/ha/resources/{sid}"),
    ("DELETE", "/cluster/ha/resources/{sid}"),
    ("POST", "/cluster/ha/resources/{sid}/migrate"),
    ("POST", "/cluster/ha/resources/{sid}/relocate"),
    ("GET", "/cluster/ha/rules"),
    ("POST", "/cluster/ha/rules"),
    ("GET", "/cluster/ha/rules/{rule}"),
    ("PUT", "/cluster/ha/rules/{rule}"),
    ("DELETE", "/cluster/ha/rules/{rule}"),
    ("GET", "/cluster/ha/status"),
    ("GET", "/cluster/ha/status/current"),
    ("GET", "/cluster/ha/status/manager_status"),
    ("POST", "/cluster/ha/status/disarm-ha"),
    ("POST", "/cluster/ha/status/arm-ha"),
    # Ceph (issue 10)
    ("GET", "/nodes/{node}/disks/list"),
    ("GET", "/nodes/{node}/ceph"),
    ("POST", "/nodes/{node}/ceph/init"),
    ("GET", "/nodes/{node}/ceph/status"),
    ("GET", "/nodes/{node}/ceph/cfg/raw"),
    ("GET", "/nodes/{node}/ceph/mon"),
    ("POST", "/nodes/{node}/ceph/mon/{monid}"),
    ("DELETE", "/nodes/{node}/ceph/mon/{monid}"),
    ("GET", "/nodes/{node}/ceph/mgr"),
    ("POST", "/nodes/{node}/ceph/mgr/{id}"),
    ("DELETE", "/nodes/{node}/ceph/mgr/{id}"),
    ("GET", "/nodes/{node}/ceph/osd"),
    ("POST", "/nodes/{node}/ceph/osd"),
    ("DELETE", "/nodes/{node}/ceph/osd/{osdid}"),
    ("POST", "/nodes/{node}/ceph/osd/{osdid}/in"),
    ("POST", "/nodes/{node}/ceph/osd/{osdid}/out"),
    ("GET", "/nodes/{node}/ceph/pool"),
    ("POST", "/nodes/{node}/ceph/pool"),
    ("PUT", "/nodes/{node}/ceph/pool/{name}"),
    ("DELETE", "/nodes/{node}/ceph/pool/{name}"),
    ("GET", "/nodes/{node}/ceph/pool/{name}/status"),
    ("GET", "/nodes/{node}/ceph/rules"),
    ("POST", "/nodes/{node}/ceph/start"),
    ("POST", "/nodes/{node}/ceph/stop"),
    ("GET", "/cluster/ceph"),
    ("GET", "/cluster/ceph/status"),
    ("GET", "/cluster/ceph/metadata"),
    ("GET", "/cluster/ceph/flags"),
    ("PUT", "/cluster/ceph/flags/{flag}"),
    # the node's network (issue 25)
    ("GET", "/nodes/{node}/network"),
    ("POST", "/nodes/{node}/network"),
    ("PUT", "/nodes/{node}/network"),
    ("DELETE", "/nodes/{node}/network"),
    ("GET", "/nodes/{node}/network/{iface}"),
    ("PUT", "/nodes/{node}/network/{iface}"),
    ("DELETE", "/nodes/{node}/network/{iface}"),
    # the node's own pages (issue 25)
    ("GET", "/nodes/{node}/version"),
    ("GET", "/nodes/{node}/time"),
    ("PUT", "/nodes/{node}/time"),
    ("GET", "/nodes/{node}/dns"),
    ("PUT", "/nodes/{node}/dns"),
    ("GET", "/nodes/{node}/hosts"),
    ("POST", "/nodes/{node}/hosts"),
    ("GET", "/nodes/{node}/syslog"),
    ("GET", "/nodes/{node}/journal"),
    ("GET", "/nodes/{node}/services"),
    ("GET", "/nodes/{node}/services/{service}"),
    ("GET", "/nodes/{node}/services/{service}/state"),
    ("POST", "/nodes/{node}/services/{service}/start"),
    ("POST", "/nodes/{node}/services/{service}/stop"),
    ("POST", "/nodes/{node}/services/{service}/restart"),
    ("POST", "/nodes/{node}/services/{service}/reload"),
    ("GET", "/nodes/{node}/subscription"),
    ("DELETE", "/nodes/{node}/subscription"),
    ("GET", "/cluster/log"),
]
KEEP = ("name", "parameters", "returns", "protected", "proxyto", "allowtoken", "permissions")


def index(tree: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for node in tree:
        if node.get("info"):
            out[node["path"]] = node["info"]
        out.update(index(node.get("children") or []))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: extract_api_schema.py DIR (with api-schema-pve8.json and api-schema-pve9.json)", file=sys.stderr)
        return 2
    for major in ("8", "9"):
        source = Path(argv[0]) / f"api-schema-pve{major}.json"
        if not source.exists():
            print(f"missing {source}", file=sys.stderr)
            return 1
        paths = index(json.loads(source.read_text()))
        target = REPO / "pvelab" / "pve" / "api" / f"schema-pve{major}.json"
        # keep the provenance line (which pve-docs commit) a maintainer wrote into the target
        previous = json.loads(target.read_text()).get("_source") if target.exists() else None
        out = {"_source": previous or f"pve-docs api-viewer/apidata.js ({source.name})", "endpoints": {}}
        for method, path in ENDPOINTS:
            info = paths.get(path, {}).get(method)
            if info is None:
                continue  # not in this major version
            out["endpoints"][f"{method} {path}"] = {k: info[k] for k in KEEP if k in info}
        target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {target} ({len(out['endpoints'])} endpoints)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
