"""`pvesh get|create|set|delete PATH [--param value ...] [--output-format ...]`: the API from
the shell, as root@pam, calling the handlers directly (no HTTP), like PVE's pvesh."""

from __future__ import annotations

import json
import sys
from typing import Any

from pvelab.pve.api import direct, schema
from pvelab.pve.api.routes import ApiException

METHODS = {"get": "GET", "ls": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}
FORMATS = ("text", "json", "json-pretty", "yaml")


def parse_args(argv: list[str]) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    if len(argv) < 2 or argv[0] not in METHODS:
        raise SystemExit("usage: pvesh get|create|set|delete <api_path> [OPTIONS] [--output-format FORMAT]")
    method, path, rest = METHODS[argv[0]], "/" + argv[1].strip("/"), argv[2:]
    params: dict[str, Any] = {}
    display: dict[str, Any] = {"output": "text", "border": True, "header": True}
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


def table(header: list[str], rows: list[list[str]], border: bool = True, show_header: bool = True) -> str:
    """PVE's text output: box-drawn table, a double rule under the header, a rule between rows."""
    widths = [max([len(h) if show_header else 0, *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    if not border:
        lines = [" ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in ([header] if show_header else []) + rows]
        return "\n".join(lines)

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def line(row: list[str]) -> str:
        return "│" + "│".join(f" {c.ljust(w)} " for c, w in zip(row, widths, strict=True)) + "│"

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


def main(argv: list[str] | None = None) -> int:
    method, path, params, display = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        data = direct.call(method, path, params)
        if isinstance(data, str) and data.startswith("UPID:"):
            # like pvesh: a worker runs to its end before the command returns
            return 0 if direct.finish_task(data) else direct.ERROR_EXIT
    except (schema.ParamError, ApiException) as exc:
        return direct.report(exc)
    text = render(data, display["output"], display["border"], display["header"])
    if text:
        print(text)
    return 0
