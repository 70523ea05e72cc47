"""What `ifreload -a` does to the node's links when PVE reloads its network, for what this kernel has.

PVE moves interfaces.new over interfaces and runs ifupdown2's `ifreload -a`: interfaces marked `auto`
are brought to their configured state, those the old config had and the new one lacks are taken
down and removed. The twin's kernel has bridges and veth links, but no bridge VLAN filtering, bonding,
802.1Q, VXLAN, dummy or Open vSwitch: those stanzas are kept in the file as PVE keeps them and the
task warns, in ifupdown2's words, that the link could not be made (docs/pve/network.md)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable
from typing import Any

from pvelab.pve.network import files
from pvelab.pve.network.interfaces import Config, Iface, truthy

Log = Callable[[str], None]
MADE_HERE = ("bridge",)  # the kinds of link this kernel can make
KERNEL_LACKS = {"bond": "bonding", "vlan": "8021q", "vxlan": "vxlan", "dummy": "dummy", "OVSBridge": "openvswitch",
                "OVSBond": "openvswitch", "OVSPort": "openvswitch", "OVSIntPort": "openvswitch"}


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def live_addresses(name: str) -> set[str]:
    """The link's own addresses (not IPv6 link-local ones, which the kernel makes)."""
    out = ip("-json", "addr", "show", "dev", name)
    found = set()
    for link in json.loads(out.stdout or "[]"):
        for addr in link.get("addr_info") or ():
            if addr.get("scope") != "link":
                found.add(f"{addr['local']}/{addr['prefixlen']}")
    return found


def reload(old: Config, new: Config, log: Log) -> None:
    """Bring the node's links from the old config's state to the new one's."""
    links = files.ip_links()
    old_ifaces, new_ifaces = old["ifaces"], new["ifaces"]
    for name in sorted(set(old_ifaces) - set(new_ifaces)):
        _remove(name, old_ifaces[name], links)
    for name in sorted(new_ifaces, key=lambda n: (new_ifaces[n].get("type") == "bridge", n)):
        d = new_ifaces[name]
        kind = d.get("type")
        if kind in ("loopback", "unknown", "alias") or not truthy(d.get("autostart")):
            continue
        if kind in KERNEL_LACKS:
            log(f"{name} : warning: {name}: cannot create {kind} link: this kernel has no {KERNEL_LACKS[kind]} "
                "support (the twin's; a PVE node has it)")
            continue
        if kind == "bridge":
            _bridge(name, d, links, log)
        elif name not in links:
            log(f"{name} : error: {name}: link does not exist")
            continue
        _addresses(name, d, log)
        _set("link", "set", name, "up", log=log)


def _remove(name: str, d: Iface, links: dict[str, dict[str, Any]]) -> None:
    if name not in links:
        return
    if d.get("type") in MADE_HERE:
        ip("link", "del", name)
    else:
        ip("addr", "flush", "dev", name, "scope", "global")


def _bridge(name: str, d: Iface, links: dict[str, dict[str, Any]], log: Log) -> None:
    if name not in links:
        _set("link", "add", name, "type", "bridge", log=log)
    stp = "1" if d.get("bridge_stp") == "on" else "0"
    fd = int(d.get("bridge_fd") or 0)
    _set("link", "set", name, "type", "bridge", "stp_state", stp, "forward_delay", str(fd * 100), log=log)
    if truthy(d.get("bridge_vlan_aware")) and ip("link", "set", name, "type", "bridge", "vlan_filtering", "1"
                                                  ).returncode != 0:
        log(f"{name} : warning: {name}: cannot make the bridge VLAN aware: this kernel has no bridge VLAN "
            "filtering (the twin's; a PVE node has it)")
    if truthy(d.get("mtu")):
        _set("link", "set", name, "mtu", str(d["mtu"]), log=log)
    ports = (d.get("bridge_ports") or "").split()
    for port, link in files.ip_links().items():  # again: a bridge just made has ports now
        if link.get("master") == name and port not in ports and _is_configured_port(link):
            _set("link", "set", port, "nomaster", log=log)
    for port in sorted(set(ports)):
        if port not in links:
            log(f"{name} : warning: {name}: bridge port {port} does not exist")
            continue
        _set("link", "set", port, "master", name, log=log)
        _set("link", "set", port, "up", log=log)
    _steady_mac(name, d, [p for p in ports if p in links], log)


def _steady_mac(name: str, d: Iface, ports: list[str], log: Log) -> None:
    """The bridge's MAC from its `hwaddress` line, else its first port's, as ifupdown2 on PVE sets it: left to the
    kernel it follows the lowest port MAC, and a guest's tap joining would move it under the node's
    address (callers' ARP entries point at the old one until they ask again)."""
    links = files.ip_links()  # after the ports joined: the bridge's MAC as the kernel left it
    set_here = [words[1] for words in map(str.split, d.get("options") or ()) if words[:1] == ["hwaddress"]
                and len(words) > 1]
    mac = set_here[0] if set_here else (links.get(ports[0], {}).get("address") if ports else None)
    if mac and links.get(name, {}).get("address") != str(mac).lower():
        _set("link", "set", name, "address", str(mac), log=log)


def _is_configured_port(link: dict[str, Any]) -> bool:
    """Ports ifupdown2 manages (NICs); guests' tap and veth links on the bridge stay where they are."""
    kind = (link.get("linkinfo") or {}).get("info_kind")
    return link.get("link_type") == "ether" and kind is None


def _addresses(name: str, d: Iface, log: Log) -> None:
    wanted = {str(cidr) for cidr in (d.get("cidr"), d.get("cidr6")) if truthy(cidr)}
    for key in ("address", "address6"):
        addr, mask = d.get(key), d.get("netmask" if key == "address" else "netmask6")
        if truthy(addr) and not d.get("cidr" if key == "address" else "cidr6") and truthy(mask):
            wanted.add(str(ipaddress.ip_interface(f"{addr}/{mask}")))
    have = live_addresses(name)
    for cidr in sorted(have - wanted):
        _set("addr", "del", cidr, "dev", name, log=log)
    for cidr in sorted(wanted - have):
        _set("addr", "add", cidr, "dev", name, log=log)
    for key in ("gateway", "gateway6"):
        if truthy(d.get(key)):
            family = "-6" if key == "gateway6" else "-4"
            _set(family, "route", "replace", "default", "via", str(d[key]), "dev", name, log=log)


def _set(*args: str, log: Log) -> None:
    """One `ip` change; a failure is logged as ifupdown2 reports it (`IFACE : error: IFACE: ...`)."""
    done = ip(*args)
    if done.returncode != 0:
        target = args[args.index("dev") + 1] if "dev" in args else args[2]
        log(f"{target} : error: {target}: ip {' '.join(args)}: {done.stderr.strip()}")
