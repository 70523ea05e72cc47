"""Parameter verification from PVE's own API schema, with PVE's messages (JSONSchema.pm)."""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INDEXED = re.compile(r"^(.*)\[n\]$")
NODE_NAME = re.compile(r"^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")
MAX_INDEX = 8


class ParamError(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Parameter verification failed.")
        self.errors = errors


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    info: dict[str, Any]

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.info.get("parameters", {}).get("properties", {}))

    @property
    def allowtoken(self) -> bool:
        return bool(self.info.get("allowtoken", 1))

    @property
    def permissions(self) -> dict[str, Any] | None:
        return self.info.get("permissions")

    @property
    def proxyto(self) -> str | None:
        return self.info.get("proxyto")


@cache
def endpoints(major: str) -> dict[str, Endpoint]:
    data = json.loads((HERE / f"schema-pve{major}.json").read_text())
    return {key: Endpoint(key.split(" ", 1)[0], key.split(" ", 1)[1], info)
            for key, info in data["endpoints"].items()}


def match(major: str, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """The endpoint serving `method path`, with the values of the template's {placeholders}
    (URL-decoded: a volume's '/' comes as %2F)."""
    segments = path.strip("/").split("/")
    for endpoint in endpoints(major).values():
        if endpoint.method != method:
            continue
        parts = endpoint.template.strip("/").split("/")
        if len(parts) != len(segments):
            continue
        values = {}
        for part, seg in zip(parts, segments, strict=True):
            if part.startswith("{") and part.endswith("}"):
                values[part[1:-1]] = urllib.parse.unquote(seg)
            elif part != seg:
                break
        else:
            return endpoint, values
    return None


def _schema_for(name: str, properties: dict[str, Any]) -> dict[str, Any] | None:
    if name in properties:
        return dict(properties[name])
    for key, schema in properties.items():
        m = INDEXED.match(key)
        if m and name.startswith(m.group(1)) and name[len(m.group(1)):].isdigit() \
                and int(name[len(m.group(1)):]) < MAX_INDEX:
            return dict(schema)
    return None


def perl_regex(pattern: str) -> str:
    """Perl's stringified qr// groups, `(?^:...)` and `(?^i:...)`, in Python's spelling."""
    return re.sub(r"\(\?\^([a-z]*):", lambda m: f"(?{m.group(1)}:" if m.group(1) else "(?:", pattern)


def _check_format(fmt: Any, value: str) -> str | None:
    if isinstance(fmt, dict):
        return _check_property_string(fmt, value)
    if fmt == "pve-node" and not NODE_NAME.match(value):
        return "value does not look like a valid node name"
    if fmt == "pve-ha-resource-or-vm-id" and not re.match(r"^((vm|ct):)?\d+$", value):
        return "value does not look like a valid ha resource id"
    if fmt == "pve-ha-resource-id-list" and not all(re.match(r"^(vm|ct):\d+$", v) for v in value.split(",") if v):
        return "value does not look like a valid ha resource id"
    if fmt == "pve-configid" and not re.match(r"^[a-z][a-z0-9_-]+$", value, re.IGNORECASE):
        return f"invalid configuration ID '{value}'"
    if fmt == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "value does not look like a valid IP address"
    if fmt == "address":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not re.match(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$", value):
                return f"value does not look like a valid address: {value}"
    return None


def _check_property_string(fmt: dict[str, Any], value: str) -> str | None:
    default_key = next((k for k, s in fmt.items() if s.get("default_key")), None)
    seen: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if not sep:
            if default_key is None:
                return f"value without key, but schema does not define a default key: '{part}'"
            key, val = default_key, part
        if key not in fmt:
            return f"invalid format - property '{key}' is not defined in schema"
        if "keyAlias" in fmt[key]:  # `virtio=MAC`: model=virtio, macaddr=MAC
            seen[fmt[key]["keyAlias"]] = key
        target = fmt[key].get("alias", key)  # an old name of another property
        seen[target] = val
        problem = _check_value(fmt.get(target, {}), val, form=True)
        if problem:
            return f"invalid format - {target}: {problem}"
    for key, schema in fmt.items():
        if not schema.get("optional") and "alias" not in schema and key not in seen:
            return f"invalid format - {key}: property is missing and it is not optional"
    return None


def _check_value(schema: dict[str, Any], value: Any, form: bool) -> str | None:
    kind = schema.get("type", "string")
    text = str(value)
    if kind == "boolean":
        if isinstance(value, bool) and not form:
            return None
        if text not in ("0", "1"):
            return f"type check ('boolean') failed - got '{text}'"
    elif kind == "integer":
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", text):
            return f"type check ('integer') failed - got '{text}'"
        number = int(text)
        if "minimum" in schema and number < schema["minimum"]:
            return f"value must have a minimum value of {schema['minimum']}"
        if "maximum" in schema and number > schema["maximum"]:
            return f"value must have a maximum value of {schema['maximum']}"
    elif kind == "number":
        try:
            float(text)
        except ValueError:
            return f"type check ('number') failed - got '{text}'"
    elif kind == "string":
        if "enum" in schema and text not in schema["enum"]:
            return f"value '{text}' does not have a value in the enumeration '{', '.join(schema['enum'])}'"
        if "maxLength" in schema and len(text) > schema["maxLength"]:
            return f"value may only be {schema['maxLength']} characters long"
        if "minLength" in schema and len(text) < schema["minLength"]:
            return f"value must be at least {schema['minLength']} characters long"
        if "pattern" in schema and not re.fullmatch(perl_regex(schema["pattern"]), text):
            return "value does not match the regex pattern"
        if "format" in schema:
            return _check_format(schema["format"], text)
    return None


def verify(endpoint: Endpoint, params: dict[str, Any], form: bool = True) -> dict[str, Any]:
    """Check params against the endpoint's schema; return them with integers and booleans typed."""
    properties = endpoint.properties
    additional = endpoint.info.get("parameters", {}).get("additionalProperties", 0)
    errors: dict[str, str] = {}
    typed: dict[str, Any] = {}
    for name, value in params.items():
        schema = _schema_for(name, properties)
        if schema is None:
            if not additional:
                errors[name] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        problem = _check_value(schema, value, form)
        if problem:
            errors[name] = problem
            continue
        kind = schema.get("type")
        typed[name] = (int(value) if kind == "integer" else
                       bool(int(value)) if kind == "boolean" and not isinstance(value, bool) else value)
    for name, schema in properties.items():
        if not schema.get("optional") and not INDEXED.match(name) and name not in params:
            errors[name] = "property is missing and it is not optional"
    if errors:
        raise ParamError(errors)
    return typed


def returns_problems(schema: dict[str, Any], value: Any, where: str = "data") -> list[str]:
    """Where `value` breaks an endpoint's `returns` schema, as PVE's JSONSchema validates answers:
    properties not marked optional are required, types as JSON has them (PVE's booleans are 0/1)."""
    kind = schema.get("type")
    if value is None:
        # PVE's handlers return undef where there is nothing (totem outside a cluster) and its server sends
        # null without validating: the whole answer may be null, a required part inside it may not.
        top = where == "data"
        return [] if top or kind in (None, "null") or schema.get("optional") else [f"{where}: null, expected {kind}"]
    checks: dict[str, Any] = {
        "null": lambda v: False, "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool) or v in (0, 1),
        "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
    }
    if kind in checks and not checks[kind](value):
        return [f"{where}: {type(value).__name__} {json.dumps(value)[:60]}, expected {kind}"]
    problems: list[str] = []
    if kind == "object":
        properties = schema.get("properties") or {}
        # A property named "{id}" stands for every key of the map (Ceph metadata by daemon id, say)
        pattern = next((sub for name, sub in properties.items() if name.startswith("{") and name.endswith("}")), None)
        if pattern is not None:
            for key, item in value.items():
                problems += returns_problems(pattern, item, f"{where}.{key}")
            return problems
        for name, sub in properties.items():
            if name in value:
                problems += returns_problems(sub, value[name], f"{where}.{name}")
            elif not sub.get("optional"):
                problems.append(f"{where}: required property '{name}' is missing")
        if properties and schema.get("additionalProperties") in (0, False):
            problems += [f"{where}: property '{name}' is not in the schema" for name in value if name not in properties]
    elif kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            problems += returns_problems(schema["items"], item, f"{where}[{index}]")
    return problems
