"""PVE's automated-installer answer file (answer.toml), checked before any VM is made.

The checks are the installer's own, in its words: first what its parser refuses (proxmox-installer-types'
answer format: kebab-case keys with their legacy snake_case aliases, no unknown keys, PVE's enums),
then what proxmox-auto-installer's parse_answer refuses for the machine it runs on (filesystem and
RAID options, disks that must exist and suffice, the FQDN from DHCP, the NIC a filter must pick,
interface pinning, locale, passwords, the first-boot hook). The machine is described as the
installer sees it: its runtime info (disks, network) and udev properties, the same JSON the
installer's tests use, so a nested lab's planned VM can be checked as the installer will see it."""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any


class AnswerError(Exception):
    """An answer the installer refuses; the message is the installer's."""


class ParseError(AnswerError):
    """Refused while reading the file (the installer says "error parsing answer.toml: ...")."""

    def __init__(self, message: str) -> None:
        super().__init__(f"error parsing answer.toml: {message}")


@dataclass(frozen=True)
class Machine:
    """The machine as the installer sees it: run-env-info.json's disks and network, run-env-udev.json."""
    disks: list[list[Any]] = field(default_factory=list)  # [index, path, size in 512 B blocks, model, block size, sys]
    network: dict[str, Any] = field(default_factory=dict)  # hostname, dns {dns, domain}, interfaces {name: {mac}}
    udev_disks: dict[str, dict[str, str]] = field(default_factory=dict)  # by disk index
    udev_nics: dict[str, dict[str, str]] = field(default_factory=dict)  # by NIC name

    @classmethod
    def of(cls, run_env: dict[str, Any], udev: dict[str, Any]) -> Machine:
        return cls(list(run_env.get("disks") or []), dict(run_env.get("network") or {}),
                   dict(udev.get("disks") or {}), dict(udev.get("nics") or {}))


@dataclass(frozen=True)
class Locales:
    """What the installer ISO knows: countries, keyboard maps, time zones by country (locales.json)."""
    countries: frozenset[str]
    keymaps: frozenset[str]
    zones: frozenset[str]

    @classmethod
    def of(cls, locales: dict[str, Any]) -> Locales:
        zones = {zone for by_country in (locales.get("cczones") or {}).values() for zone in by_country}
        return cls(frozenset(locales.get("country") or ()), frozenset(locales.get("kmap") or ()), frozenset(zones))


# -- the format ------------------------------------------------------------------------------------
KEYBOARDS = ("de", "de-ch", "dk", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it",
             "jp", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "se", "si", "tr")
ZFS_RAID = {"RAID0": "RAID0", "raid0": "RAID0", "RAID1": "RAID1", "raid1": "RAID1", "RAID10": "RAID10",
            "raid10": "RAID10", "RAIDZ-1": "RAIDZ-1", "raidz-1": "RAIDZ-1", "RAIDZ-2": "RAIDZ-2",
            "raidz-2": "RAIDZ-2", "RAIDZ-3": "RAIDZ-3", "raidz-3": "RAIDZ-3"}
BTRFS_RAID = {"RAID0": "RAID0", "raid0": "RAID0", "RAID1": "RAID1", "raid1": "RAID1", "RAID10": "RAID10",
              "raid10": "RAID10"}
MIN_DISKS = {"RAID0": 1, "RAID1": 2, "RAID10": 4, "RAIDZ-1": 3, "RAIDZ-2": 4, "RAIDZ-3": 5}
ROOT_PASSWORD_MIN_LENGTH = 8
IFNAME_LENGTH = (2, 15)
IFNAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,20}([:.]\d+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Key:
    """One key of a table: its kebab-case name, the snake_case alias the installer still reads, its check."""
    name: str
    check: Any  # a callable(value, where) -> normalized value
    required: bool = False
    alias: str | None = None


def expected(keys: list[Key]) -> str:
    return ", ".join(f"`{k.name}`" for k in keys)


def table(value: Any, keys: list[Key], where: str) -> dict[str, Any]:
    """A TOML table as serde reads a struct with deny_unknown_fields: unknown keys and missing
    required ones refused, every value checked; the result keyed by kebab-case names."""
    if not isinstance(value, dict):
        raise ParseError(f"invalid type: {type_name(value)}, expected struct {where}")
    by_name = {k.name: k for k in keys} | {k.alias: k for k in keys if k.alias}
    out: dict[str, Any] = {}
    for name, item in value.items():
        key = by_name.get(name)
        if key is None:
            raise ParseError(f"unknown field `{name}`, expected one of {expected(keys)}")
        if key.name in out:
            raise ParseError(f"duplicate field `{key.name}`")
        out[key.name] = key.check(item, key.name)
    for key in keys:
        if key.required and key.name not in out:
            raise ParseError(f"missing field `{key.name}`")
    return out


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    return "sequence" if isinstance(value, list) else "map"


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ParseError(f"invalid type: {type_name(value)}, expected a string")
    return value


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ParseError(f"invalid type: {type_name(value)}, expected a boolean")
    return value


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"invalid type: {type_name(value)}, expected f64")
    return float(value)


def unsigned(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32:
        raise ParseError(f"invalid type: {type_name(value)}, expected u32")
    return value


def strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise ParseError(f"invalid type: {type_name(value)}, expected a sequence")
    return [string(v, where) for v in value]


def string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ParseError(f"invalid type: {type_name(value)}, expected a map")
    return {k: string(v, where) for k, v in value.items()}


def variant(*names: str, mapping: dict[str, str] | None = None) -> Any:
    def check(value: Any, where: str) -> str:
        allowed = mapping or {n: n for n in names}
        if not isinstance(value, str) or value not in allowed:
            listed = ", ".join(f"`{n}`" for n in (names or dict.fromkeys(allowed.values())))
            raise ParseError(f"unknown variant `{value}`, expected one of {listed}")
        return allowed[value]
    return check


def ip_address(value: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_address(string(value, where)))
    except ValueError:
        raise ParseError("invalid IP address syntax") from None


def cidr(value: Any, where: str) -> str:
    text = string(value, where)
    address, slash, mask = text.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ParseError("invalid IP address") from None
    if not slash or not mask.isdigit() or int(mask) > ip.max_prefixlen:
        raise ParseError("invalid IP address")
    return text


FQDN_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def fqdn_config(value: Any, where: str) -> dict[str, Any]:
    """Either a fully-qualified name (host and domain) or {source = "from-dhcp", domain}."""
    if isinstance(value, str):
        labels = value.split(".")
        if len(labels) >= 2 and all(FQDN_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
            return {"simple": value}
    elif isinstance(value, dict):
        try:
            found = table(value, [Key("source", variant("from-dhcp")), Key("domain", string)], "FqdnFromDhcpConfig")
        except ParseError:
            pass
        else:
            return {"source": "from-dhcp", "domain": found.get("domain") or None}
    raise ParseError("either a fully-qualified domain name or extendend configuration for usage with DHCP must "
                     "be specified")


def pinning(value: Any, where: str) -> dict[str, Any]:
    return table(value, [Key("enabled", boolean, required=True), Key("mapping", string_map)],
                 "NetworkInterfacePinningOptionsAnswer")


def network(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"invalid type: {type_name(value)}, expected internally tagged enum NetworkConfig")
    source = value.get("source")
    rest = {k: v for k, v in value.items() if k != "source"}
    if source is None:
        raise ParseError("missing field `source`")
    if source == "from-dhcp":
        found = table(rest, [Key("interface-name-pinning", pinning)], "NetworkConfigFromDhcp")
    elif source == "from-answer":
        found = table(rest, [Key("cidr", cidr, required=True), Key("dns", ip_address, required=True),
                             Key("gateway", ip_address, required=True), Key("filter", string_map),
                             Key("interface-name-pinning", pinning)], "NetworkConfigFromAnswer")
    else:
        raise ParseError(f"unknown variant `{source}`, expected `from-dhcp` or `from-answer`")
    return {"source": source, **found}


def zfs_options(value: Any, where: str) -> dict[str, Any]:
    return table(value, [Key("raid", variant(mapping=ZFS_RAID)), Key("ashift", unsigned),
                         Key("arc-max", unsigned, alias="arc_max"),
                         Key("checksum", variant("on", "fletcher4", "sha256")),
                         Key("compress", variant("on", "off", "lzjb", "lz4", "zle", "gzip", "zstd")),
                         Key("copies", unsigned), Key("hdsize", number)], "ZfsOptions")


def lvm_options(value: Any, where: str) -> dict[str, Any]:
    return table(value, [Key(k, number) for k in ("hdsize", "swapsize", "maxroot", "maxvz", "minfree")], "LvmOptions")


def btrfs_options(value: Any, where: str) -> dict[str, Any]:
    return table(value, [Key("hdsize", number), Key("raid", variant(mapping=BTRFS_RAID)),
                         Key("compress", variant("on", "off", "zlib", "lzo", "zstd"))], "BtrfsOptions")


GLOBAL = [
    Key("country", string, required=True), Key("fqdn", fqdn_config, required=True),
    Key("keyboard", variant(*KEYBOARDS), required=True), Key("mailto", string, required=True),
    Key("timezone", string, required=True), Key("root-password", string, alias="root_password"),
    Key("root-password-hashed", string, alias="root_password_hashed"),
    Key("reboot-on-error", boolean, alias="reboot_on_error"),
    Key("reboot-mode", variant("reboot", "power-off"), alias="reboot_mode"),
    Key("root-ssh-keys", strings, alias="root_ssh_keys"), Key("subscription-key", string, alias="subscription_key"),
]
DISK_SETUP = [
    Key("filesystem", variant("ext4", "xfs", "zfs", "btrfs"), required=True),
    Key("disk-list", strings, alias="disk_list"), Key("filter", string_map),
    Key("filter-match", variant("any", "all"), alias="filter_match"),
    Key("zfs", zfs_options), Key("lvm", lvm_options), Key("btrfs", btrfs_options),
]
WEBHOOK = [Key("url", string, required=True), Key("cert-fingerprint", string, alias="cert_fingerprint"),
           Key("auth-token", string, alias="auth_token")]
FIRST_BOOT = [Key("source", variant("from-url", "from-iso"), required=True),
              Key("ordering", variant("before-network", "network-online", "fully-up")),
              Key("url", string), Key("cert-fingerprint", string, alias="cert_fingerprint")]
TOP = [
    Key("global", lambda v, w: table(v, GLOBAL, "GlobalOptions"), required=True),
    Key("network", network, required=True),
    Key("disk-setup", lambda v, w: table(v, DISK_SETUP, "DiskSetup"), required=True),
    Key("post-installation-webhook", lambda v, w: table(v, WEBHOOK, "PostNotificationHookInfo")),
    Key("first-boot", lambda v, w: table(v, FIRST_BOOT, "FirstBootHookInfo")),
]


def load(text: str) -> dict[str, Any]:
    """The TOML as written (ParseError if it is not TOML)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParseError(str(exc)) from None


def parse(text: str) -> dict[str, Any]:
    """The answer as the installer's parser reads it (ParseError with its message otherwise)."""
    return table(load(text), TOP, "AutoInstallerConfig")


# -- the checks against the machine ---------------------------------------------------------------
def check(text: str, machine: Machine, locales: Locales | None = None) -> dict[str, Any]:
    """The answer parsed and checked as proxmox-auto-installer's parse_answer checks it on `machine`;
    AnswerError with the installer's message for the first thing it refuses."""
    answer = parse(text)
    fs = filesystem_details(answer["disk-setup"])
    check_network(answer, machine)
    if locales is not None:
        check_locale(answer["global"], locales)
    check_disks(answer["disk-setup"], fs)
    check_passwords(answer["global"])
    first_boot = answer.get("first-boot")
    if first_boot and first_boot["source"] == "from-url" and not first_boot.get("url"):
        raise AnswerError("first-boot executable source set to URL, but none specified!")
    select_disks(answer["disk-setup"], machine)
    return answer


def filesystem_details(disks: dict[str, Any]) -> tuple[str, str | None]:
    """(filesystem, RAID level) after the installer's checks of which options go together."""
    kind = disks["filesystem"]
    if kind in ("ext4", "xfs"):
        if "zfs" in disks or "btrfs" in disks:
            raise AnswerError("make sure only 'lvm' options are set")
        if len(disks.get("disk-list") or ()) > 1:
            raise AnswerError("make sure to define only one disk for ext4 and xfs")
        return kind, None
    other = {"zfs": ("lvm", "btrfs"), "btrfs": ("zfs", "lvm")}[kind]
    if any(o in disks for o in other):
        raise AnswerError(f"make sure only '{kind}' options are set")
    raid = (disks.get(kind) or {}).get("raid")
    if raid is None:
        raise AnswerError(f"{'ZFS' if kind == 'zfs' else 'Btrfs'} raid level '{kind}.raid' must be set")
    return kind, raid


def check_network(answer: dict[str, Any], machine: Machine) -> None:
    fqdn = answer["global"]["fqdn"]
    if "simple" not in fqdn:
        if not machine.network.get("hostname"):
            raise AnswerError('`global.fqdn.source` set to "from-dhcp", but DHCP server did not provide a hostname!')
        if not (machine.network.get("dns") or {}).get("domain") and not fqdn.get("domain"):
            raise AnswerError("no domain received from DHCP server and `global.fqdn.domain` is unset!")
    net = answer["network"]
    if net["source"] == "from-answer":
        single_nic(net.get("filter") or {}, machine.udev_nics)
    pins = net.get("interface-name-pinning")
    if pins and pins["enabled"]:
        check_pinning(pins.get("mapping") or {})


def single_nic(filters: dict[str, str], nics: dict[str, dict[str, str]]) -> str:
    """The NIC a filter picks: exactly one must match (get_single_udev_index)."""
    if not filters:
        raise AnswerError("no filter defined")
    matching = [name for name, props in nics.items()
                if any(fnmatch.fnmatchcase(props.get(k, "\0"), v) for k, v in filters.items() if k in props)]
    if not matching:
        raise AnswerError("filter did not match any device")
    return matching[0]


def check_pinning(mapping: dict[str, str]) -> None:
    names: dict[str, str] = {}
    for mac, name in mapping.items():
        if len(name) < IFNAME_LENGTH[0]:
            raise AnswerError(f"interface name for '{mac}' must be at least {IFNAME_LENGTH[0]} characters long")
        if len(name) > IFNAME_LENGTH[1]:
            raise AnswerError(f"interface name '{name}' for '{mac}' cannot be longer than {IFNAME_LENGTH[1]} "
                              "characters")
        if not IFNAME_RE.match(name):
            raise AnswerError(f"interface name '{name}' for '{mac}' is invalid: name must start with a letter and "
                              "contain only ascii characters, digits and underscores")
        if name in names and names[name] != mac:
            raise AnswerError(f"duplicate interface name mapping '{name}' for: {mac}, {names[name]}")
        names[name] = mac


def check_locale(options: dict[str, Any], locales: Locales) -> None:
    if options["country"] not in locales.countries:
        raise AnswerError(f"country code '{options['country']}' is not valid")
    if options["keyboard"] not in locales.keymaps:
        raise AnswerError(f"keyboard layout '{options['keyboard']}' is not valid")
    if options["timezone"] not in locales.zones and options["timezone"] != "UTC":
        raise AnswerError(f"timezone '{options['timezone']}' is not valid")


def check_disks(disks: dict[str, Any], fs: tuple[str, str | None]) -> None:
    listed, filters = disks.get("disk-list") or [], disks.get("filter") or {}
    if not listed and not filters:
        raise AnswerError("Need either 'disk-list' or 'filter' set")
    if listed and filters:
        raise AnswerError("Cannot use both, 'disk-list' and 'filter'")
    kind, raid = fs
    if listed and raid is not None and len(listed) < MIN_DISKS[raid]:
        raise AnswerError(f"{'ZFS' if kind == 'zfs' else 'Btrfs'} {raid} needs at least {MIN_DISKS[raid]} disks, "
                          f"got {len(listed)}")
    seen: set[str] = set()
    for disk in listed:
        if disk in seen:
            raise AnswerError(f"List of disks contains duplicate device {disk}")
        seen.add(disk)
    lvm = disks.get("lvm") or {}
    if kind in ("ext4", "xfs") and "swapsize" in lvm and "hdsize" in lvm and lvm["swapsize"] > lvm["hdsize"] / 2:
        raise AnswerError(f"Swap size {gib(lvm['swapsize'])} GiB cannot be greater than {gib(lvm['hdsize'] / 2)} GiB "
                          "(hard disk size / 2)")


def gib(value: float) -> str:
    """A size as Rust prints an f64: no fraction when it is whole."""
    return str(int(value)) if value == int(value) else repr(value)


def check_passwords(options: dict[str, Any]) -> None:
    plain, hashed = options.get("root-password"), options.get("root-password-hashed")
    if plain is not None and hashed is not None:
        raise AnswerError("`global.root-password` and `global.root-password-hashed` cannot be set at the same time")
    if plain is None and hashed is None:
        raise AnswerError("One of `global.root-password` or `global.root-password-hashed` must be set")
    if plain is not None and len(plain) < ROOT_PASSWORD_MIN_LENGTH:
        raise AnswerError(f"`global.root-password` must be at least {ROOT_PASSWORD_MIN_LENGTH} characters long")


def select_disks(disks: dict[str, Any], machine: Machine) -> list[str]:
    """The machine's disks the answer installs to: listed ones must exist, a filter must match; ext4
    and xfs take one disk, the first a filter matches (get_single_udev_index). Disks in the order of
    their udev index as text, as the installer's map holds them."""
    by_name = {str(d[1]).rsplit("/", 1)[-1]: str(d[0]) for d in machine.disks}
    if disks.get("disk-list"):
        for name in disks["disk-list"]:
            if name not in by_name:
                raise AnswerError("disk in 'disk-selection' not found")
        return [by_name[name] for name in disks["disk-list"]]
    filters, match_all = disks["filter"], disks.get("filter-match") == "all"
    if disks["filesystem"] in ("ext4", "xfs"):
        for index, props in sorted(machine.udev_disks.items()):
            if any(fnmatch.fnmatchcase(props[k], v) for k, v in filters.items() if k in props):
                return [index]
        raise AnswerError("filter did not match any device")
    chosen = []
    for index, props in sorted(machine.udev_disks.items()):
        hits = [fnmatch.fnmatchcase(props.get(k, "\0"), v) if k in props else False for k, v in filters.items()]
        if (all(hits) if match_all else any(hits)):
            chosen.append(index)
    if not chosen:
        raise AnswerError("No disks found matching selection.")
    return chosen


# -- what a nested lab writes ----------------------------------------------------------------------
@dataclass(frozen=True)
class NodePlan:
    """One nested node as the lab plans it: what its answer file says and what its VM looks like."""
    hostname: str
    domain: str
    cidr: str  # management address (corosync link 0), e.g. 198.18.40.11/24
    gateway: str
    dns: str
    mac: str  # net0's fixed MAC: the answer's network filter picks the NIC by it
    root_password_hashed: str  # crypt(3) hash (mkpasswd, or Ansible's password_hash filter)
    ssh_keys: tuple[str, ...] = ()
    mailto: str = "root@localhost"
    timezone: str = "UTC"
    keyboard: str = "en-us"
    country: str = "us"
    os_disk_gib: int = 32
    os_disk_serial: str = ""  # the OS disk's serial (its VM gives it): the answer picks the disk by it
    extra_macs: tuple[str, ...] = ()  # net1, net2: link1 and Ceph (the installer configures only net0)
    first_boot_hook: bool = False  # a first-boot hook baked into the installer ISO (the extra NICs)

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}"


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(value, ensure_ascii=False)


def mac_filter(mac: str) -> str:
    """The udev glob that picks a NIC by its MAC (ID_NET_NAME_MAC is `enx` + the MAC's hex digits)."""
    return "*" + mac.replace(":", "").lower()


def disk_selection(plan: NodePlan) -> str:
    """The OS disk by its serial where the VM gives it one: with virtio-scsi-single every disk has its
    own controller, the kernel probes them in parallel, and `sda` may be the OSD disk."""
    if plan.os_disk_serial:
        return f"filter.ID_SERIAL = {toml_string('*' + plan.os_disk_serial)}"
    return 'disk-list = ["sda"]'


def udev_serial(serial: str) -> str:
    """ID_SERIAL as udev's scsi_id makes it for a QEMU SCSI disk given `serial=`."""
    return f"0QEMU_QEMU_HARDDISK_{serial}"


def render(plan: NodePlan) -> str:
    """The node's answer.toml: static address on the NIC with its MAC, ext4 on the OS disk, the hashed
    root password and SSH keys, and power-off at the end (the lab then detaches the CDs and boots
    the disk; with `reboot` the installer CD would start again)."""
    keys = ", ".join(toml_string(k) for k in plan.ssh_keys)
    text = (
        "[global]\n"
        f"keyboard = {toml_string(plan.keyboard)}\n"
        f"country = {toml_string(plan.country)}\n"
        f"fqdn = {toml_string(plan.fqdn)}\n"
        f"mailto = {toml_string(plan.mailto)}\n"
        f"timezone = {toml_string(plan.timezone)}\n"
        f"root-password-hashed = {toml_string(plan.root_password_hashed)}\n"
        f"root-ssh-keys = [{keys}]\n"
        'reboot-mode = "power-off"\n'
        "\n[network]\n"
        'source = "from-answer"\n'
        f"cidr = {toml_string(plan.cidr)}\n"
        f"dns = {toml_string(plan.dns)}\n"
        f"gateway = {toml_string(plan.gateway)}\n"
        f"filter.ID_NET_NAME_MAC = {toml_string(mac_filter(plan.mac))}\n"
        "\n[disk-setup]\n"
        'filesystem = "ext4"\n'
        f"{disk_selection(plan)}\n"
        f"lvm.hdsize = {plan.os_disk_gib}\n"
    )
    if plan.first_boot_hook:
        text += '\n[first-boot]\nsource = "from-iso"\nordering = "network-online"\n'
    return text


def planned_machine(plan: NodePlan, osd_disk_gib: int = 32, osd_disk_serial: str = "") -> Machine:
    """The node's VM as PVE's installer will see it, at its worst: the OSD disk probed first (sda), the
    OS disk second (sdb), each with its serial; virtio NICs ens18, ens19, ... with their fixed MACs,
    no DHCP lease."""
    blocks = [osd_disk_gib * 1024 ** 3 // 512, plan.os_disk_gib * 1024 ** 3 // 512]
    disks = [[i, f"/dev/sd{letter}", size, "QEMU HARDDISK", 512, f"/sys/block/sd{letter}"]
             for i, (letter, size) in enumerate(zip("ab", blocks, strict=True))]
    udev_disks = {str(i): {"DEVNAME": f"/dev/sd{letter}", "ID_MODEL": "QEMU_HARDDISK", "ID_BUS": "scsi",
                           **({"ID_SERIAL": udev_serial(serial)} if serial else {})}
                  for i, (letter, serial) in enumerate(zip("ab", (osd_disk_serial, plan.os_disk_serial), strict=True))}
    nics = {}
    for slot, mac in enumerate((plan.mac, *plan.extra_macs)):
        name = f"ens{18 + slot}"
        nics[name] = {"INTERFACE": name, "ID_NET_NAME_MAC": "enx" + mac.replace(":", "").lower(),
                      "ID_NET_NAME_PATH": f"enp0s{18 + slot}", "ID_NET_DRIVER": "virtio_net"}
    interfaces = {name: {"name": name, "mac": (plan.mac, *plan.extra_macs)[i].lower(), "state": "UP"}
                  for i, name in enumerate(nics)}
    return Machine(disks, {"hostname": None, "dns": {"dns": [plan.dns], "domain": None}, "interfaces": interfaces},
                   udev_disks, nics)


# -- which installer reads it ------------------------------------------------------------------------
# What of the answer format arrived with which proxmox-installer release (its debian/changelog;
# tests/unit/test_answer_upstream.py checks each against it): an ISO with an older installer refuses
# or ignores it.
INSTALLER_FEATURES = (
    ((8, 2, 7), "`global.root-password-hashed`", lambda raw: "root-password-hashed" in raw["global"]
     or "root_password_hashed" in raw["global"]),
    ((8, 2, 7), "`[post-installation-webhook]`", lambda raw: "post-installation-webhook" in raw),
    ((8, 3, 0), "`[first-boot]`", lambda raw: "first-boot" in raw),
    ((8, 4, 0), "kebab-case keys", lambda raw: any(was_snake_case(key) for key in keys_of(raw))),
    ((8, 4, 3), '`global.reboot-mode = "power-off"`', lambda raw: raw["global"].get(
        "reboot-mode", raw["global"].get("reboot_mode")) == "power-off"),
    ((8, 4, 3), "`global.fqdn` from DHCP", lambda raw: isinstance(raw["global"].get("fqdn"), dict)),
    ((9, 1, 0), "`[network.interface-name-pinning]`", lambda raw: "interface-name-pinning" in raw["network"]),
    ((9, 2, 0), "`global.subscription-key`", lambda raw: "subscription-key" in raw["global"]
     or "subscription_key" in raw["global"]),
)


def was_snake_case(name: str) -> bool:
    """A kebab-case key that installers before 8.4.0 knew only in snake_case."""
    return "-" in name and any(k.name == name and k.alias for k in (*GLOBAL, *DISK_SETUP, *WEBHOOK, *FIRST_BOOT))


def keys_of(raw: dict[str, Any]) -> list[str]:
    """Every key of the answer's sections (one level down), as written."""
    return [key for section in raw.values() if isinstance(section, dict) for key in section]


def needed_installer(text: str) -> list[tuple[tuple[int, int, int], str]]:
    """What the answer uses that not every installer reads: [(first installer release, what)]."""
    raw = load(text)
    table(raw, TOP, "AutoInstallerConfig")  # the answer itself first
    return [(version, what) for version, what, uses in INSTALLER_FEATURES if uses(raw)]


def check_installer(text: str, installer: str) -> None:
    """Refuse an answer that the ISO's installer (its proxmox-installer version, e.g. "8.4.1") cannot read."""
    have = tuple(int(part) for part in installer.split(".")[:3])
    for version, what in needed_installer(text):
        if have < version:
            raise AnswerError(f"the installer ISO (proxmox-installer {installer}) is too old for this answer: "
                              f"{what} needs proxmox-installer {'.'.join(map(str, version))} or newer; use a newer "
                              "PVE ISO")
