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
    ("POST", "/access/ticket"),
    ("GET", "/access/users/{userid}/token"),
    ("POST", "/access/users/{userid}/token/{tokenid}"),
    ("DELETE", "/access/users/{userid}/token/{tokenid}"),
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
]
KEEP = ("name", "parameters", "returns", "protected", "proxyto", "allowtoken")


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
        out = {"_source": f"pve-docs api-viewer data ({source.name}): pve-docs api-viewer/apidata.js",
               "endpoints": {}}
        for method, path in ENDPOINTS:
            info = paths.get(path, {}).get(method)
            if info is None:
                continue  # not in this major version
            out["endpoints"][f"{method} {path}"] = {k: info[k] for k in KEEP if k in info}
        target = REPO / "pvelab" / "pve" / "api" / f"schema-pve{major}.json"
        target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {target} ({len(out['endpoints'])} endpoints)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
