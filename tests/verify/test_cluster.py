"""Is this node a healthy member of the cluster its inventory describes?"""

from __future__ import annotations

import re
from typing import Any

from pvelab.pve.cluster.pvecm_output import parse_cfgtool_status, parse_status  # the parsers the modules ship

MAX_LATENCY_MS = 2.0


def link_addresses(variables: dict[str, Any]) -> list[str]:
    return [variables[k] for k in sorted(variables) if re.fullmatch(r"link\d+_addr", k)]


def pvecm_status(host: Any, node: str) -> dict[str, Any]:
    out = host.run("pvecm status")  # exits 2 when not quorate, like corosync-quorumtool
    assert "Quorum information" in out.stdout, (
        f"{node} is not in a working cluster: 'pvecm status' says: {(out.stderr or out.stdout).strip()} — join "
        "it (pvecm add, or run the cluster playbook), or check that corosync is running there")
    return parse_status(out.stdout)


def test_hostname_is_unique_and_resolves_to_its_static_address(host: Any, node: str,
                                                               cluster: dict[str, Any]) -> None:
    hostname = host.check_output("hostname")
    assert hostname == node, f"{node} calls itself '{hostname}': set its hostname to '{node}'"
    expected = cluster[node].get("link0_addr") or cluster[node].get("ansible_host")
    resolved = host.check_output(f"getent hosts {node} || true").split()
    assert resolved, f"{node} cannot resolve its own name: add '{expected} {node}' to /etc/hosts"
    assert resolved[0] == expected, (
        f"{node} resolves its name to {resolved[0]}, not to its static address {expected}: fix /etc/hosts "
        "(PVE needs the node name to resolve to its cluster address, never to 127.x)")
    names = [host.check_output(f"getent hosts {other} || true").split()[:1] for other in cluster]
    assert all(names), f"{node} cannot resolve every node name: list all nodes in /etc/hosts"


def test_corosync_is_running(host: Any, node: str) -> None:
    state = host.run("systemctl is-active corosync").stdout.strip()
    assert state == "active", (
        f"corosync is {state or 'not running'} on {node}: is the node in the cluster? "
        "Look at 'journalctl -b -u corosync' there")


def test_quorate_with_every_node_voting(host: Any, node: str, cluster: dict[str, Any]) -> None:
    status = pvecm_status(host, node)
    members = len(status["members"])
    assert status.get("quorate"), (
        f"{node} has no quorum: it sees {members} of {len(cluster)} nodes "
        f"({status.get('total_votes')} of {status.get('expected_votes')} votes). A node that cannot reach "
        "the majority stops writing to /etc/pve — check its network links (corosync-cfgtool -s)")
    assert status.get("nodes") == len(cluster), (
        f"{node} sees {status.get('nodes')} nodes in the cluster, the inventory has {len(cluster)} "
        f"({', '.join(sorted(cluster))}): a node is down, cut off, or was never joined")
    assert status.get("total_votes") == status.get("expected_votes"), (
        f"{node}: {status.get('total_votes')} of {status.get('expected_votes')} votes present — a node is missing")


def test_every_link_is_connected(host: Any, node: str) -> None:
    pvecm_status(host, node)
    links = parse_cfgtool_status(host.check_output("corosync-cfgtool -s"))
    assert links, f"{node}: corosync reports no links (corosync-cfgtool -s) — is corosync running?"
    broken = [f"link{link} to node {peer} is {state}" for link, peers in sorted(links.items())
              for peer, state in sorted(peers.items()) if state not in ("localhost", "connected")]
    assert not broken, f"{node}: " + "; ".join(broken) + " — check that network (cable, address, firewall)"


def test_corosync_config_is_the_same_everywhere(host: Any, node: str, cluster: dict[str, Any]) -> None:
    running = host.check_output("sha256sum /etc/corosync/corosync.conf").split()[0]
    cluster_wide = host.check_output("sha256sum /etc/pve/corosync.conf").split()[0]
    assert running == cluster_wide, (
        f"{node} runs a corosync.conf that differs from /etc/pve/corosync.conf: it missed an update "
        "(was it cut off or inquorate?) — compare config_version in both files")
    version = pvecm_status(host, node).get("config_version")
    first = sorted(cluster)[0]
    if first != node:
        import testinfra

        other = testinfra.get_host(f"ansible://{first}", ansible_inventory=host.backend.ansible_inventory)
        theirs = parse_status(other.run("pvecm status").stdout).get("config_version")
        assert version == theirs, f"{node} runs corosync config_version {version}, {first} runs {theirs}"


def test_corosync_latency_is_low(host: Any, node: str, cluster: dict[str, Any]) -> None:
    for other, variables in sorted(cluster.items()):
        if other == node:
            continue
        for address in link_addresses(variables):
            out = host.run(f"ping -n -q -c 5 -i 0.2 -W 1 {address}")
            assert out.rc == 0, f"{node} cannot reach {other} at {address}: that link is down or cut"
            avg = float(re.search(r"= [\d.]+/([\d.]+)/", out.stdout).group(1))  # type: ignore[union-attr]
            assert avg < MAX_LATENCY_MS, (
                f"latency from {node} to {other} at {address} is {avg:.2f} ms, over the {MAX_LATENCY_MS} ms "
                "corosync is comfortable with — a slow or overloaded network makes it lose quorum")
