"""Driving a lab's PVE layer from the host, as a student would over SSH: used by the lab tests
and the benchmarks so both measure the same steps."""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

from pvelab.pve.cluster.pvecm_output import parse_status
from pvelab.twin.guest_os import ISO_NAME
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


GUEST_DIR = "/var/lib/pvelab-guests"  # disks and cloud-init drives of guests started by hand


def start_tiny_guest(lab: Lab, node: str, vmid: int, address: str, memory_mib: int = 256) -> None:
    """Boot the tiny guest OS on `node` as `qm start` will (until qm exists): QEMU under TCG, its NIC a
    TAP device on vmbr0, its name and address on a NoCloud cloud-init drive, VMID and node in fw_cfg."""
    network = ("version: 1\nconfig:\n    - type: physical\n      name: eth0\n      subnets:\n"
               f"      - type: static\n        address: '{address}'\n        netmask: '255.255.255.0'\n")
    script = f"""set -e
mkdir -p /run/qemu-server {GUEST_DIR}/ci{vmid}
printf 'instance-id: {vmid}\\n' > {GUEST_DIR}/ci{vmid}/meta-data
printf '#cloud-config\\nhostname: web{vmid}\\n' > {GUEST_DIR}/ci{vmid}/user-data
cat > {GUEST_DIR}/ci{vmid}/network-config
xorriso -as mkisofs -quiet -o {GUEST_DIR}/ci{vmid}.iso -V cidata -J -r {GUEST_DIR}/ci{vmid} 2>/dev/null
truncate -s 64M {GUEST_DIR}/disk{vmid}.raw
qemu-system-x86_64 -name web{vmid} -accel tcg,tb-size=32 -m {memory_mib} -nodefaults -daemonize \\
  -pidfile /run/qemu-server/{vmid}.pid -display none -serial file:/run/qemu-server/{vmid}.serial \\
  -drive file=/var/lib/vz/template/iso/{ISO_NAME},if=ide,index=2,media=cdrom \\
  -drive file={GUEST_DIR}/ci{vmid}.iso,if=ide,index=0,media=cdrom \\
  -drive file={GUEST_DIR}/disk{vmid}.raw,if=virtio,format=raw \\
  -netdev type=tap,id=net0,ifname=tap{vmid}i0,script=no,downscript=no \\
  -device virtio-net-pci,netdev=net0,mac=BC:24:11:{vmid // 256 % 256:02X}:{vmid % 256:02X}:01 \\
  -fw_cfg name=opt/pvelab/vmid,string={vmid} -fw_cfg name=opt/pvelab/node,string={node} -boot d
ip link set tap{vmid}i0 master vmbr0 up
"""
    out = ssh(lab, node, script, input=network)
    if out.returncode != 0:
        raise RuntimeError(f"could not start guest {vmid} on {node}: {out.stderr.strip()}")


def stop_tiny_guest(lab: Lab, node: str, vmid: int) -> None:
    ssh(lab, node, f"kill $(cat /run/qemu-server/{vmid}.pid) 2>/dev/null; rm -rf {GUEST_DIR}/*{vmid}*")


def guest_page(address: str) -> dict[str, str]:
    """The tiny guest's status page as {field: value}; {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{address}/cgi-bin/status", timeout=2) as answer:
            return dict(line.split(": ", 1) for line in answer.read().decode().splitlines() if ": " in line)
    except OSError:
        return {}
