"""Driving a lab's PVE layer from the host, as a student would over SSH: used by the lab tests
and the benchmarks so both measure the same steps."""

from __future__ import annotations

import subprocess
from typing import Any

from pvelab.pve.cluster.pvecm_output import parse_status
from pvelab.twin.lab import Lab


def ssh(lab: Lab, node: str, command: str, timeout: float = 60, input: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    spec = lab.require_record().spec.node(node)
    return subprocess.run(lab.ssh_argv(spec, command), input=input, capture_output=True, text=True,
                          timeout=timeout, check=False)


def quorum_view(lab: Lab, node: str) -> dict[str, Any]:
    """`pvecm status` on a node, parsed by the parser the modules and the verify suite use:
    {name, quorate, nodes, expected_votes, total_votes, flags, ...}; {} when it answers nothing."""
    return parse_status(ssh(lab, node, "pvecm status").stdout)


def fingerprint(lab: Lab, node: str) -> str:
    out = ssh(lab, node, "openssl x509 -in /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256").stdout
    return out.strip().split("=", 1)[1]


def pvecm_create(lab: Lab, node: str, name: str) -> subprocess.CompletedProcess[str]:
    spec = lab.require_record().spec.node(node)
    return ssh(lab, node, f"pvecm create {name} --link0 {spec.link_addr(0)} --link1 {spec.link_addr(1)}",
               timeout=180)


def pvecm_add(lab: Lab, node: str, host: str, password: str, fp: str) -> subprocess.CompletedProcess[str]:
    spec = lab.require_record().spec.node(node)
    return ssh(lab, node, f"pvecm add {host} --link0 {spec.link_addr(0)} --link1 {spec.link_addr(1)} "
                          f"--fingerprint {fp}", timeout=180, input=password + "\n")


def pvecm_add_over_ssh(lab: Lab, node: str, host: str) -> subprocess.CompletedProcess[str]:
    """`pvecm add --use_ssh`: no password on stdin; root SSH from `node` to `host` must already work."""
    spec = lab.require_record().spec.node(node)
    return ssh(lab, node, f"pvecm add {host} --use_ssh --link0 {spec.link_addr(0)} --link1 {spec.link_addr(1)}",
               timeout=180)


def trust_root_ssh(lab: Lab, node: str, host: str) -> None:
    """What a student does once with `ssh-copy-id root@HOST` on `node`: know `host`'s key, be let in."""
    made = ssh(lab, node, f"test -f /root/.ssh/id_rsa || ssh-keygen -q -t rsa -b 2048 -N '' -f /root/.ssh/id_rsa; "
                          f"ssh-keyscan -t ed25519 {host} >> /root/.ssh/known_hosts 2>/dev/null; "
                          "cat /root/.ssh/id_rsa.pub")
    if made.returncode != 0:
        raise RuntimeError(f"could not prepare {node}'s SSH key: {made.stderr}")
    added = ssh(lab, host, "cat >> /root/.ssh/authorized_keys", input=made.stdout)
    if added.returncode != 0:
        raise RuntimeError(f"could not authorize {node}'s key on {host}: {added.stderr}")
