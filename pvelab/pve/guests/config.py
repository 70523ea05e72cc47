"""A VM's config file (/etc/pve/qemu-server/VMID.conf) in PVE's format, read and written as
qemu-server's parse_vm_config and write_vm_config do.

`key: value` lines, keys sorted on write; the description as `#` lines at the top of its section
(text encoded as PVE's encode_text); then `[PENDING]` (changes waiting for a restart, with `delete:`),
`[special:cloudinit]`-style sections, and one `[name]` section per snapshot, each sorted."""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SPECIAL_SECTIONS = ("cloudinit", "fleecing")
NOT_OPTIONS = ("digest", "description", "pending", "snapshots", "special-sections")


class ConfigError(Exception):
    pass


@dataclass
class Section:
    """One section's options and description (None when it has none)."""

    options: dict[str, str] = field(default_factory=dict)
    description: str | None = None


@dataclass
class VmConfig:
    main: Section = field(default_factory=Section)
    pending: Section | None = None
    special: dict[str, Section] = field(default_factory=dict)
    snapshots: dict[str, Section] = field(default_factory=dict)
    digest: str = ""


def encode_text(text: str) -> str:
    """PVE's encode_text: control and high-bit characters, ':' and '%' as %XX (UTF-8)."""
    safe = "".join(chr(c) for c in [*range(0x20, 0x25), *range(0x26, 0x3A), *range(0x3B, 0x7F)])
    return urllib.parse.quote(text, safe=safe)


def decode_text(text: str) -> str:
    return urllib.parse.unquote(text)


@functools.cache
def option_types() -> dict[str, str]:
    """The VM options whose values qemu-server's check_type checks by type (boolean, integer, number),
    from the API schema's VM config (read once)."""
    from pvelab.pve import version  # the schema of the PVE major the node presents
    from pvelab.pve.api import schema

    returns = schema.endpoints(version.major())["GET /nodes/{node}/qemu/{vmid}/config"].info.get("returns", {})
    return {key: prop["type"] for key, prop in (returns.get("properties") or {}).items()
            if prop.get("type") in ("boolean", "integer", "number")}


def boolean(word: str) -> bool | None:
    """A PVE boolean parameter's value (1|0, on|off, yes|no, true|false, any case); None for anything else."""
    return {"1": True, "on": True, "yes": True, "true": True,
            "0": False, "off": False, "no": False, "false": False}.get(word.lower())


def checked_value(key: str, value: str, types: dict[str, str]) -> str:
    """qemu-server's check_type for the typed options: a boolean written as 1 or 0 (on/yes/true, ...),
    an integer or number as digits; a value of another type is refused with PVE's text."""
    kind = types.get(key)
    if kind == "boolean":
        truth = boolean(value)
        if truth is not None:
            return "1" if truth else "0"
    elif kind == "integer":
        if re.fullmatch(r"\d+", value):
            return str(int(value))
    elif kind == "number":
        if re.fullmatch(r"\d+(\.\d+)?", value):
            return value
    else:
        return value
    raise ConfigError(f"type check ('{kind}') failed - got '{value}'")


def open_section(conf: VmConfig, name: str, seen: set[str], problem: Callable[[str], None]) -> Section | None:
    """A new section of the config (one named twice starts again); None for one of no known kind."""
    key = "pending" if name.upper() == "PENDING" else name
    if key in seen:
        problem(f"duplicate section: {key}")
    seen.add(key)
    if key == "pending":
        conf.pending = Section()
        return conf.pending
    if name.startswith("special:") and name[8:] in SPECIAL_SECTIONS:
        section = conf.special[name[8:]] = Section()
        return section
    if re.fullmatch(r"[a-z][a-z0-9_\-]+", name, re.IGNORECASE):
        section = conf.snapshots[name] = Section()
        return section
    problem(f"skipping unknown section: '{name}'")
    return None


def parse(text: str, strict: bool = False, vmid: int = 0, typed: bool = False) -> VmConfig:
    """The config, as qemu-server's parse_vm_config reads it: a section named twice keeps its last
    body, an unknown section is skipped; with `typed`, a VM option whose value fails its type check is
    left out (booleans read as 1/0). `strict` raises those instead, with PVE's texts."""
    conf = VmConfig(digest=hashlib.sha1(text.encode()).hexdigest())
    section: Section | None = conf.main
    description: list[str] | None = None
    seen: set[str] = set()
    types = option_types() if typed or strict else {}

    def problem(message: str) -> None:
        if strict:
            raise ConfigError(f"vm {vmid} - {message}")

    def finish() -> None:
        nonlocal description
        if description is not None and section is not None:
            section.description = "".join(description).rstrip()
        description = None

    for line in text.split("\n"):
        if not line.strip():
            continue
        header = re.fullmatch(r"\[([^\]]*)\]\s*", line)
        if header:
            finish()
            section = open_section(conf, header.group(1), seen, problem)
            continue
        if section is None:
            continue
        if line.startswith("#"):
            description = (description or []) + [decode_text(line[1:]) + "\n"]
            continue
        found = re.fullmatch(r"([a-z][a-z_\-]*\d*):\s*(.*?)\s*", line)
        if not found:
            raise ConfigError(f"unable to parse config line: {line}")
        key, value = found.group(1), found.group(2)
        if key == "description":
            description = (description or []) + [decode_text(value)]
            continue
        try:
            section.options[key] = checked_value(key, value, types)
        except ConfigError as exc:
            problem(f"unable to parse value of '{key}' - {exc}")
    finish()
    return conf


# -- pending deletions (pve-guest-common's AbstractConfig: `delete: a,!b` in [PENDING]) ------------------
def parse_pending_delete(data: str | None) -> dict[str, dict[str, int]]:
    """{key: {"force": 0|1}} of a pending `delete` list (commas, semicolons or spaces; `!` forces)."""
    out: dict[str, dict[str, int]] = {}
    for entry in re.sub(r"[,;]", " ", data or "").split():
        force = entry.startswith("!")
        out[entry[1:] if force else entry] = {"force": 1 if force else 0}
    return out


def print_pending_delete(deletes: dict[str, dict[str, Any]]) -> str:
    return ",".join(f"!{key}" if deletes[key].get("force") else key for key in sorted(deletes))


def set_pending_delete(pending: Section, deletes: dict[str, dict[str, Any]]) -> None:
    """The pending section's `delete` list written back (gone when empty)."""
    if deletes:
        pending.options["delete"] = print_pending_delete(deletes)
    else:
        pending.options.pop("delete", None)


def add_to_pending_delete(conf: VmConfig, key: str, force: bool = False) -> None:
    pending = conf.pending = conf.pending or Section()
    deletes = parse_pending_delete(pending.options.get("delete"))
    deletes[key] = {"force": 1 if force else 0}
    set_pending_delete(pending, deletes)


def remove_from_pending_delete(conf: VmConfig, key: str) -> None:
    pending = conf.pending
    if pending is None:
        return
    deletes = parse_pending_delete(pending.options.get("delete"))
    if key not in deletes:
        return
    del deletes[key]
    set_pending_delete(pending, deletes)


def cleanup_pending(conf: VmConfig) -> bool:
    """Pending changes that change nothing dropped, and pending deletions of options the config does
    not have; whether anything was dropped."""
    pending = conf.pending
    if pending is None:
        return False
    changes = False
    for key in [k for k in pending.options if k != "delete"]:
        if key in conf.main.options and pending.options[key] == conf.main.options[key]:
            changes = True
            del pending.options[key]
    kept = {}
    for key, how in parse_pending_delete(pending.options.get("delete")).items():
        if key in conf.main.options:
            kept[key] = how
        else:
            changes = True
    set_pending_delete(pending, kept)
    return changes


def dump_section(section: Section, pending: bool = False) -> str:
    out = ""
    if section.description is not None:
        if section.description:
            out += "".join(f"#{encode_text(line)}\n" for line in section.description.split("\n"))
        elif pending:
            out += "#\n"
    for key in sorted(section.options):
        if key not in NOT_OPTIONS:
            out += f"{key}: {section.options[key]}\n"
    return out


DRIVE_KEY = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate)(\d+)$")  # a config's drives (ide2, scsi0, ...)
VOLUME_KEY = re.compile(r"^((ide|sata|scsi|virtio|efidisk|tpmstate)\d+|rootfs|mp\d+)$")  # a VM's drives, a CT's mounts


def drive_file(value: str) -> str:
    first = value.split(",", 1)[0]
    return first.split("=", 1)[1] if first.startswith("file=") else first


def dump(conf: VmConfig) -> str:
    """The file's text. As qemu-server's write_vm_config (and pve-container's write_pct_config), an
    `unusedN` naming a volume a drive or mount point of the config (or of its pending changes) uses
    again is left out."""
    used = {drive_file(v) for section in (conf.main, conf.pending) if section is not None
            for k, v in section.options.items() if VOLUME_KEY.match(k)}
    stale = [k for k, v in conf.main.options.items() if re.fullmatch(r"unused\d+", k) and v in used]
    if stale:
        conf = VmConfig(main=Section({k: v for k, v in conf.main.options.items() if k not in stale},
                                     conf.main.description), pending=conf.pending, special=conf.special,
                        snapshots=conf.snapshots, digest=conf.digest)
    out = dump_section(conf.main)
    if conf.pending is not None and (conf.pending.options or conf.pending.description is not None):
        out += "\n[PENDING]\n" + dump_section(conf.pending, pending=True)
    for name in sorted(conf.special):
        out += f"\n[special:{name}]\n" + dump_section(conf.special[name])
    for name in sorted(conf.snapshots):
        out += f"\n[{name}]\n" + dump_section(conf.snapshots[name])
    return out
