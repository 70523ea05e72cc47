"""`pvesh get|create|set|delete PATH [--param value ...] [--output-format ...]`: the API from
the shell, as root@pam, calling the handlers directly (no HTTP), like PVE's pvesh."""

from __future__ import annotations

import json
import sys
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve import remote, version
from pvelab.pve.api import direct, schema
from pvelab.pve.api.routes import ApiException

METHODS = {"get": "GET", "ls": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}
FORMATS = ("text", "json", "json-pretty", "yaml")


def parse_args(argv: list[str]) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    noproxy = bool(argv) and argv[0] == "--noproxy"  # what a proxied call runs on the target node
    argv = argv[1:] if noproxy else argv
    if len(argv) < 2 or argv[0] not in METHODS:
        raise SystemExit("usage: pvesh get|create|set|delete <api_path> [OPTIONS] [--output-format FORMAT]")
    method, path, rest = METHODS[argv[0]], "/" + argv[1].strip("/"), argv[2:]
    params: dict[str, Any] = {}
    display: dict[str, Any] = {"output": "text", "border": True, "header": True, "noproxy": noproxy,
                               "command": argv[0]}
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
            display["output"] = value
        elif name in ("noborder", "noheader"):
            display["border" if name == "noborder" else "header"] = value in ("0", "false")
        else:
            params[name] = value
    return method, path, params, display


def cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def table(header: list[str], rows: list[list[str]], border: bool = True, show_header: bool = True,
          right: frozenset[int] = frozenset()) -> str:
    """PVE's text output: box-drawn table, a double rule under the header, a rule between rows; the
    columns in `right` (integers, in PVE's CLI formatter) right-aligned."""
    widths = [max([len(h) if show_header else 0, *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def fit(text: str, i: int) -> str:
        return text.rjust(widths[i]) if i in right else text.ljust(widths[i])

    if not border:
        lines = [" ".join(fit(c, i) for i, c in enumerate(row)).rstrip()
                 for row in ([header] if show_header else []) + rows]
        return "\n".join(lines)

    def rule(left: str, fill: str, mid: str, end: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + end

    def line(row: list[str]) -> str:
        return "│" + "│".join(f" {fit(c, i)} " for i, c in enumerate(row)) + "│"

    out = [rule("┌", "─", "┬", "┐")]
    if show_header:
        out += [line(header), rule("╞", "═", "╪", "╡")]
    for i, row in enumerate(rows):
        if i:
            out.append(rule("├", "─", "┼", "┤"))
        out.append(line(row))
    out.append(rule("└", "─", "┴", "┘"))
    return "\n".join(out)


def render(data: Any, output: str, border: bool = True, header: bool = True) -> str:
    if output == "json":
        return json.dumps(data)
    if output == "json-pretty":
        return json.dumps(data, indent=4, sort_keys=True)
    if output == "yaml":
        import yaml

        return "---\n" + yaml.safe_dump(data, sort_keys=True, default_flow_style=False).rstrip("\n")
    if data is None:
        return ""
    if isinstance(data, dict):
        return table(["key", "value"], [[k, cell(v)] for k, v in sorted(data.items())], border, header)
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        columns = sorted({key for item in data for key in item})
        return table(columns, [[cell(item.get(c)) for c in columns] for item in data], border, header)
    if isinstance(data, list):
        return "\n".join(cell(item) for item in data)
    return str(data)


def proxy_node(method: str, path: str) -> str | None:
    """The node a path names, when its method runs there (`proxyto`) and that is not this node."""
    found = schema.match(version.major(), method, path)
    if found is None:
        return None
    endpoint, values = found
    node = values.get("node")
    return node if endpoint.proxyto == "node" and node not in (None, "localhost", nodename()) else None


def proxied(node: str, command: str, path: str, params: dict[str, Any]) -> Any:
    """As PVE's pvesh: the same call made by pvesh on `node` over SSH, its JSON answer read back."""
    try:
        done = remote.run_on(node, ["pvesh", "--noproxy", command, path, "--output-format", "json",
                                    *(word for key, value in params.items() for word in (f"--{key}", str(value)))])
    except remote.LookupFailed as exc:
        raise ApiException(500, str(exc)) from exc
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise ProxyFailed(done.returncode)
    try:
        return json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        sys.stdout.write(done.stdout)  # a task's log, which pvesh there printed as the task ran
        return None


class ProxyFailed(Exception):
    """The proxied pvesh failed; it has printed its own error."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    method, path, params, display = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        node = proxy_node(method, path)
        if node is not None:
            if display["noproxy"]:
                print("proxy loop detected - aborting", file=sys.stderr)
                return direct.ERROR_EXIT
            data = proxied(node, display["command"], path, params)
        else:
            data = direct.call(method, path, params)
        if isinstance(data, str) and data.startswith("UPID:") and node is None:
            # like pvesh: a worker runs to its end before the command returns
            return 0 if direct.finish_task(data) else direct.ERROR_EXIT
    except ProxyFailed as exc:
        return exc.code
    except (schema.ParamError, ApiException) as exc:
        return direct.report(exc)
    text = render(data, display["output"], display["border"], display["header"])
    if text:
        print(text)
    return 0
