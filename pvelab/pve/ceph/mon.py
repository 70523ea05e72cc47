"""A monitor's place in /etc/pve/ceph.conf, as `pveceph mon create|destroy` (PVE's MON.pm) sets it.

Which address a new monitor takes: with no Ceph public network, the one given (`--mon-address`) or
the node's cluster address; with one, exactly one local address inside each public network (or the
given ones, which must be local and inside one). Creating adds the addresses to `mon_host` (the
first monitor's write leaves the value with a leading space, as PVE's does; it is read back
trimmed), sets `ms_bind_ipv4`/`ms_bind_ipv6`, and writes `[mon.<id>] public_addr`. Destroying
removes the section and the monitor's addresses from `mon_host`."""

from __future__ import annotations

import copy
import ipaddress
import re

from pvelab.pve.ceph.conf import Config


class MonError(Exception):
    """A refusal, in PVE's words."""


def select_ips(config: Config, node: str, local_ips: list[str], cluster_ip: str,
               mon_address: list[str] | None = None, db_public_network: str | None = None) -> list[str]:
    """The addresses a new monitor on `node` listens on (PVE's find_mon_ips)."""
    wanted = list(dict.fromkeys(mon_address or []))
    public = db_public_network or config.get("global", {}).get("public_network")
    if not public:
        return wanted or [cluster_ip]
    networks = [ipaddress.ip_network(n, strict=False) for n in re.split(r"[ ,;]+", public.strip()) if n]
    if not wanted:
        chosen = []
        for net in networks:
            inside = list(dict.fromkeys(ip for ip in local_ips if ipaddress.ip_address(ip) in net))
            if not inside:
                raise MonError(f"No active IP found for the requested ceph public network '{net}' on node '{node}'")
            if len(inside) > 1:
                raise MonError(f"Multiple IPs for ceph public network '{net}' detected on {node}:\n"
                               + "\n".join(inside) + "\nuse 'mon-address' to specify one of them.")
            chosen.append(inside[0])
        return chosen
    allowed = {ip for ip in local_ips if any(ipaddress.ip_address(ip) in net for net in networks)}
    for ip in wanted:
        if ip not in allowed:
            raise MonError(f"Specified monitor IP '{ip}' not configured or up on {node}!")
    return wanted


def mon_host_ips(mon_host: str | None) -> list[str]:
    """The IP addresses in a mon_host value (plain, with ports, or as [v2:IP:3300/0,v1:IP:6789/0] vectors)."""
    found = []
    for part in re.split(r"[ ,;]+", mon_host or ""):
        host = re.sub(r"^\[?v\d+:", "", part)
        host = re.sub(r"/\d+\]?$", "", host)
        host = re.sub(r"^\[(.*)\](:\d+)?$", r"\1", host) if host.startswith("[") else re.sub(r":\d+$", "", host)
        try:
            found.append(str(ipaddress.ip_address(host)))
        except ValueError:
            continue  # a host name, or an empty part
    return found


def check_new(config: Config, monid: str, ips: list[str], existing: dict[str, str]) -> None:
    """Refuse an address already in use or an id already taken; `existing` is {monid: address}."""
    used = set(mon_host_ips(config.get("global", {}).get("mon_host")))
    for addr in existing.values():
        used.update(mon_host_ips(addr))
    for ip in ips:
        if ip in used:
            raise MonError(f"monitor address '{ip}' already in use")
    if monid in existing or f"mon.{monid}" in config:
        raise MonError(f"monitor '{monid}' already exists")


def add_mon(config: Config, monid: str, ips: list[str], first: bool) -> Config:
    """ceph.conf once monitor `monid` on `ips` is made; `first`: no monitor answered before it."""
    out = copy.deepcopy(config)
    glob = out.setdefault("global", {})
    for index, ip in enumerate(ips):
        v6 = ipaddress.ip_address(ip).version == 6
        glob["ms_bind_ipv6" if v6 else "ms_bind_ipv4"] = "true"
        if first and index == 0:
            glob["ms_bind_ipv4" if v6 else "ms_bind_ipv6"] = "false"
    glob["mon_host"] = glob.get("mon_host", "") + " " + " ".join(ips)
    out[f"mon.{monid}"] = {**out.get(f"mon.{monid}", {}), "public_addr": ips[0]}
    return out


def remove_mon(config: Config, monid: str, addrs: list[str]) -> Config:
    """ceph.conf once monitor `monid` (which listened on `addrs`) is gone."""
    out = copy.deepcopy(config)
    out.pop(f"mon.{monid}", None)
    glob = out.get("global", {})
    if glob.get("mon_host"):
        host = glob["mon_host"]
        for addr in addrs:
            host = _without(host, addr)
        glob["mon_host"] = host
    return out


def _without(mon_host: str, addr: str) -> str:
    """mon_host without `addr`, never touching an address that merely contains it (10.0.0.1 vs 10.0.0.101)."""
    shown = f"[{addr}]" if ":" in addr else addr
    vector = rf"v\d+:{re.escape(shown)}:\d+/\d+"
    mon_host = re.sub(rf"(^|[ ,;]*)\[{vector}(?:,{vector})*\](?:[ ,;]+|$)", r"\1", mon_host, count=1)
    mon_host = re.sub(rf"(^|[ ,;]+){re.escape(shown)}(?::\d+)?(?:[ ,;]+|$)", r"\1", mon_host, count=1)
    return re.sub(r"[ ,;]+$", "", mon_host)
