"""The /nodes/{node}/network API as pve-manager's PVE::API2::Network answers it: list (with the pending
`changes`), read, create, update and delete interfaces in /etc/network/interfaces.new, revert the
pending changes, and reload (apply) them in a `srvreload` task."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from pvelab.pve.access import guard as access
from pvelab.pve.api import tasks
from pvelab.pve.api.routes import ApiException, Context, WithAttributes, param_error, route
from pvelab.pve.network import apply, files, interfaces
from pvelab.pve.network.interfaces import Iface, InterfacesError

LOCAL_ZONE = "localnetwork"  # the SDN zone PVE puts a node's own bridges in, for access checks
# integer and boolean fields of the answers (the file gives strings; the schema types them)
INTEGER_KEYS = ("mtu", "vlan-id", "ovs_tag", "bridge-access", "priority", "bridge_fd")
BOOLEAN_KEYS = ("active", "autostart", "exists", "bridge_vlan_aware")
PORT_KEYS = ("bridge_ports", "ovs_ports", "slaves", "ovs_bonds")
# what an edit passes through (the API's own parameters, not the interface's)
NOT_STORED = ("node", "iface", "delete", "digest")


def stored(params: dict[str, Any]) -> dict[str, Any]:
    """An edit's parameters as the interface keeps them (booleans as PVE's 0/1)."""
    return {k: (int(v) if isinstance(v, bool) else v) for k, v in params.items() if k not in NOT_STORED}


def edit(change: Callable[[dict[str, Iface]], None]) -> None:
    """One edit of the pending config under PVE's lock; the writer's refusals are PVE's 500s."""
    try:
        with files.locked():
            config, _ = files.read(files.ip_links())
            change(config["ifaces"])
            files.write(config)
    except (InterfacesError, TimeoutError) as exc:  # the writer's refusals, PVE's lock timeout
        raise ApiException(500, str(exc)) from exc


def presented(name: str, d: Iface, alt: dict[str, str]) -> Iface:
    """An interface as the API shows it: the schema's types, its altnames."""
    out = {k: v for k, v in d.items() if v is not None}
    for key in INTEGER_KEYS:
        if isinstance(out.get(key), str) and out[key].isdigit():
            out[key] = int(out[key])
    for key in BOOLEAN_KEYS:
        if key in out:
            out[key] = 1 if interfaces.truthy(out[key]) else 0
    names = altnames_of(name, alt)
    if names:
        out["altnames"] = names
    return out


def altnames_of(iface: str, alt: dict[str, str]) -> list[str] | None:
    """PVE's extract_altnames: the link's other names (its kernel name first if asked by an altname)."""
    found, original = [], None
    if iface in alt:
        found.append(alt[iface])
        original, iface = iface, alt[iface]
    found += [name for name, target in alt.items() if target == iface and name != original]
    return sorted(found) or None


# -- read ----------------------------------------------------------------------------------------
@route("GET /nodes/{node}/network")
def index(ctx: Context, params: dict[str, Any]) -> Any:
    links = files.ip_links()  # one `ip` call for the config and the altnames
    config, changes = files.read(links, with_changes=True)
    ifaces = config["ifaces"]
    ifaces.pop("lo", None)  # the loopback device is not listed
    wanted = params.get("type")
    if wanted and wanted != "include_sdn":  # no SDN here: vnets and fabrics add nothing
        for name in sorted(ifaces):
            kind = ifaces[name].get("type")
            is_bridge = kind in ("bridge", "OVSBridge")
            if not (wanted == kind or (is_bridge and re.fullmatch(r"any(_local)?_bridge", wanted))):
                del ifaces[name]
    alt = interfaces.altname_mapping(links)
    listed = []
    for name in sorted(ifaces):
        d = ifaces[name]
        if d.get("type") in ("bridge", "OVSBridge") and not access.allowed(
                ctx.caller.name, f"/sdn/zones/{LOCAL_ZONE}/{name}", ["SDN.Audit", "SDN.Use"]):
            continue  # a bridge is listed to those who may see or use it
        listed.append({**presented(name, d, alt), "iface": name})
    return WithAttributes(listed, {"changes": changes}) if changes else listed


@route("GET /nodes/{node}/network/{iface}")
def read(ctx: Context, params: dict[str, Any]) -> Any:
    links = files.ip_links()
    config, _ = files.read(links)
    iface = params["iface"]
    if iface not in config["ifaces"]:
        raise param_error("iface", "interface does not exist")
    return presented(iface, config["ifaces"][iface], interfaces.altname_mapping(links))


# -- edit ----------------------------------------------------------------------------------------
def check_duplicate(ifaces: dict[str, Iface], new: str, key: str, what: str) -> None:
    for name, d in ifaces.items():
        if name != new and interfaces.truthy(d.get(key)):
            raise param_error(key, f"{what} already exists on interface '{name}'.")


def port_list(d: Iface) -> tuple[list[str], str | None]:
    ports, first = "", None
    for key in PORT_KEYS:
        if interfaces.truthy(d.get(key)):
            ports += f" {d[key]}"
            first = first or key
    return [p for p in re.split(r"[;,\s]+", ports.strip()) if p], first


def check_duplicate_ports(ifaces: dict[str, Iface], new: str, params: dict[str, Any]) -> None:
    wanted, param_name = port_list(params)
    if not wanted:
        return
    for name, d in ifaces.items():
        if name == new:
            continue
        for port in port_list(d)[0]:
            if port in wanted:
                raise param_error(param_name or "bridge_ports", f"{port} is already used on interface '{name}'.")


def cidr_to_address(params: dict[str, Any]) -> None:
    for suffix in ("", "6"):
        cidr = params.get("cidr" + suffix)
        if not cidr:
            continue
        if params.get("address" + suffix):
            raise param_error("address" + suffix, f"address{suffix} conflicts with cidr{suffix}")
        if params.get("netmask" + suffix):
            raise param_error("netmask" + suffix, f"netmask{suffix} conflicts with cidr{suffix}")
        address, _, mask = str(cidr).rpartition("/")
        params["address" + suffix], params["netmask" + suffix] = address, mask
        del params["cidr" + suffix]


def check_ipv6(address: str, netmask: int) -> None:
    if netmask < 0 or netmask > 128:
        raise param_error("netmask", f"{netmask} is not a valid subnet length for ipv6")
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        raise param_error("address", f"{address} is not a valid host IPv6 address.") from None
    network = ipaddress.IPv6Network((ip, netmask), strict=False)
    if netmask < 128 and ip == network.network_address:
        kind = "ANYCAST"
    elif ip.is_multicast:
        kind = "MULTICAST"
    elif ip.is_loopback:
        kind = "LOOPBACK"
    elif ip.is_unspecified:
        kind = "UNSPECIFIED"
    else:
        return
    raise param_error("address", f"{address} with type '{kind}', cannot be used as host IPv6 address.")


def normalize_vids(params: dict[str, Any]) -> None:
    vids = params.get("bridge_vids")
    if vids:
        items = [v for v in re.split(r"[;,\s]+", str(vids).strip()) if v]
        if not items:
            raise param_error("bridge_vids", "VLAN list items are empty")
        params["bridge_vids"] = " ".join(items)  # the file needs them space separated


def set_methods(params: dict[str, Any], families: list[str]) -> None:
    params["families"] = families or ["inet"]
    params["method"] = "static" if params.get("address") else "manual"
    params["method6"] = "static" if params.get("address6") else "manual"


@route("POST /nodes/{node}/network")
def create(ctx: Context, params: dict[str, Any]) -> Any:
    iface = params["iface"]
    new = stored(params)

    def change(ifaces: dict[str, Iface]) -> None:
        if iface in ifaces:
            raise param_error("iface", "interface already exists")
        if new.get("gateway"):
            check_duplicate(ifaces, iface, "gateway", "Default gateway")
        if new.get("gateway6"):
            check_duplicate(ifaces, iface, "gateway6", "Default ipv6 gateway")
        check_duplicate_ports(ifaces, iface, new)
        cidr_to_address(new)
        if new.get("address6"):
            check_ipv6(new["address6"], int(new.get("netmask6") or 0))
        families = (["inet"] if new.get("address") else []) + (["inet6"] if new.get("address6") else [])
        set_methods(new, families)
        if str(new.get("type", "")).startswith("OVS"):
            raise ApiException(500, "Open VSwitch is not installed (need package 'openvswitch-switch')")
        normalize_vids(new)
        ifaces[iface] = new

    edit(change)


@route("PUT /nodes/{node}/network/{iface}")
def update(ctx: Context, params: dict[str, Any]) -> Any:
    iface = params["iface"]
    given = stored(params)

    def change(ifaces: dict[str, Iface]) -> None:
        if iface not in ifaces:
            raise param_error("iface", "interface does not exist")
        d = ifaces[iface]
        families: list[str] = []
        for key in [k for k in re.split(r"[;,\s]+", str(params.get("delete") or "")) if k]:
            d.pop(key, None)
            if key in ("cidr", "cidr6"):
                suffix = key[4:]
                d.pop("netmask" + suffix, None)
                d.pop("address" + suffix, None)
        cidr_to_address(given)
        if given.get("gateway"):
            check_duplicate(ifaces, iface, "gateway", "Default gateway")
        if given.get("gateway6"):
            check_duplicate(ifaces, iface, "gateway6", "Default ipv6 gateway")
        check_duplicate_ports(ifaces, iface, given)
        if given.get("address"):
            families.append("inet")
        if given.get("address6"):
            check_ipv6(given["address6"], int(given.get("netmask6") or 0))
            families.append("inet6")
        set_methods(given, families)
        d.update(given)
        normalize_vids(given)  # checked; as in PVE, the copy already stored keeps the list as given

    edit(change)


@route("DELETE /nodes/{node}/network/{iface}")
def delete(ctx: Context, params: dict[str, Any]) -> Any:
    iface = params["iface"]

    def change(ifaces: dict[str, Iface]) -> None:
        if iface not in ifaces:
            raise param_error("iface", "interface does not exist")
        d = ifaces[iface]
        bridge = ifaces.get(d.get("ovs_bridge") or "")
        if d.get("type") in ("OVSIntPort", "OVSBond") and bridge and bridge.get("ovs_ports"):
            bridge["ovs_ports"] = " ".join(p for p in bridge["ovs_ports"].split() if p != iface)
        del ifaces[iface]

    edit(change)


@route("DELETE /nodes/{node}/network")
def revert(ctx: Context, params: dict[str, Any]) -> Any:
    files.revert()


@route("PUT /nodes/{node}/network")
def reload(ctx: Context, params: dict[str, Any]) -> Any:
    def work(log: Callable[[str], None]) -> None:
        links = files.ip_links()
        old = files.parse_file(files.INTERFACES, links)
        files.take_pending()
        apply.reload(old, files.parse_file(files.INTERFACES, links), log)

    return tasks.start(ctx.node, "srvreload", "networking", ctx.caller.name, work)
