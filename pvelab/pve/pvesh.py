"""`pvesh get|create|set|delete PATH [--param value ...] [--output-format ...]`: the API from
the shell, as root@pam, calling the handlers directly (no HTTP), like PVE's pvesh."""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from pvelab.pve import version
from pvelab.pve.api import schema, tasks
from pvelab.pve.api.auth import Caller
from pvelab.pve.api.handlers import HANDLERS, ApiException, Context

METHODS = {"get": "GET", "ls": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}
FORMATS = ("text", "json", "json-pretty", "yaml")


def parse_args(argv: list[str]) -> tuple[str, str, dict[str, Any], str]:
    if len(argv) < 2 or argv[0] not in METHODS:
        raise SystemExit("usage: pvesh get|create|set|delete <api_path> [OPTIONS] [--output-format FORMAT]")
    method, path, rest = METHODS[argv[0]], "/" + argv[1].strip("/"), argv[2:]
    params: dict[str, Any] = {}
    output = "text"
    i = 0
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("-"):
            raise SystemExit(f"400 unable to parse option '{arg}'")
        name = arg.lstrip("-")
        if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            value, i = rest[i + 1], i + 2
        else:
            value, i = "1", i + 1  # a bare flag
        if name == "output-format":
            if value not in FORMATS:
                raise SystemExit(f"value '{value}' does not have a value in the enumeration '{', '.join(FORMATS)}'")
            output = value
        else:
            params[name] = value
    return method, path, params, output


def render(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data)
    if output == "json-pretty":
        return json.dumps(data, indent=4, sort_keys=True)
    if data is None:
        return ""
    if isinstance(data, dict):
        width = max((len(k) for k in data), default=0)
        return "\n".join(f"{k:<{width}} {json.dumps(v) if isinstance(v, dict | list) else v}"
                         for k, v in sorted(data.items()))
    if isinstance(data, list):
        return "\n".join(json.dumps(item, sort_keys=True) if isinstance(item, dict) else str(item) for item in data)
    return str(data)


def main(argv: list[str] | None = None) -> int:
    method, path, params, output = parse_args(sys.argv[1:] if argv is None else argv)
    node = socket.gethostname().split(".")[0]
    found = schema.match(version.major(), method, path)
    if found is None:
        print(f"No '{method.lower()}' handler defined for '{path}'", file=sys.stderr)
        return 255
    endpoint, values = found
    try:
        typed = schema.verify(endpoint, {**params, **values})
        data = HANDLERS[f"{method} {endpoint.template}"](Context(Caller("root@pam"), node), typed)
        if isinstance(data, str) and data.startswith("UPID:"):
            tasks.wait(data)  # like pvesh: a worker runs to its end before the command returns
            status = tasks.status(data)
            for line in tasks.read_log(data, 0, 0)[0]:
                print(line["t"])
            if status.get("exitstatus") != "OK":
                return 255
    except schema.ParamError as exc:
        print("400 Parameter verification failed.", file=sys.stderr)
        for name, message in sorted(exc.errors.items()):
            print(f"{name}: {message}", file=sys.stderr)
        return 255
    except ApiException as exc:
        print(f"{exc}", file=sys.stderr)
        return 255
    text = render(data, output)
    if text:
        print(text)
    return 0
