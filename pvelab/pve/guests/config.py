"""A VM's config file (/etc/pve/qemu-server/VMID.conf) in PVE's format, read and written as
qemu-server's parse_vm_config and write_vm_config do.

`key: value` lines, keys sorted on write; the description as `#` lines at the top of its section
(text encoded as PVE's encode_text); then `[PENDING]` (changes waiting for a restart, with `delete:`),
`[special:cloudinit]`-style sections, and one `[name]` section per snapshot, each sorted."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass, field

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


def parse(text: str) -> VmConfig:
    """The config; unknown sections are skipped, as qemu-server does when not strict."""
    conf = VmConfig(digest=hashlib.sha1(text.encode()).hexdigest())
    section: Section | None = conf.main
    description: list[str] | None = None

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
            name = header.group(1)
            if name.upper() == "PENDING":
                section = conf.pending = Section()
            elif name.startswith("special:") and name[8:] in SPECIAL_SECTIONS:
                section = conf.special.setdefault(name[8:], Section())
            elif re.fullmatch(r"[a-z][a-z0-9_\-]+", name, re.IGNORECASE):
                section = conf.snapshots.setdefault(name, Section())
            else:
                section = None  # an unknown section: skipped
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
        else:
            section.options[key] = value
    finish()
    return conf


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
