"""Driving a lab's PVE layer from the host, as a student would over SSH: used by the lab tests
and the benchmarks so both measure the same steps."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from typing import Any

from pvelab.pve.cluster.pvecm_output import parse_status
from pvelab.twin.guest_os import ISO_NAME
from pvelab.twin.lab import Lab
from pvelab.twin.node_files import NODE_SHARED_DIR


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


def create_tiny_vm(lab: Lab, node: str, vmid: int, address: str, disk_storage: str = "local-lvm",
                   iso_storage: str = "local", start: bool = True, memory_mib: int = 256,
                   cloudinit_storage: str = "local-lvm", disk_format: str | None = None
                   ) -> subprocess.CompletedProcess[str]:
    """`qm create` of a VM that boots the tiny guest OS: its disk on `disk_storage` (in `disk_format`,
    where the storage has formats), its address (on vmbr0, the management LAN) on its cloud-init
    drive, as a student would make one."""
    disk = f"{disk_storage}:0.0625" + (f",format={disk_format}" if disk_format else "")
    return ssh(lab, node, f"qm create {vmid} --name web{vmid} --memory {memory_mib} --net0 virtio,bridge=vmbr0 "
                          f"--ide2 {iso_storage}:iso/{ISO_NAME},media=cdrom --scsihw virtio-scsi-pci "
                          f"--scsi0 {disk} --ide0 {cloudinit_storage}:cloudinit "
                          f"--ipconfig0 ip={address}/24 --tablet 0 --start {int(start)}", timeout=120)


def guest_page(address: str, page: str = "status") -> dict[str, str]:
    """A page of the tiny guest as {field: value} (`status`; `disk`: its heartbeat disk's size as it
    sees it); {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{address}/cgi-bin/{page}", timeout=2) as answer:
            return dict(line.split(": ", 1) for line in answer.read().decode().splitlines() if ": " in line)
    except OSError:
        return {}


def form_cluster(lab: Lab, name: str = "lab") -> None:
    """`pvecm create` on the first node, `pvecm add` through it on the others."""
    nodes = [n.name for n in lab.require_record().spec.nodes]
    made = pvecm_create(lab, nodes[0], name)
    if made.returncode != 0:
        raise RuntimeError(f"pvecm create failed: {made.stderr.strip()}")
    password, fp = lab.require_record().root_password, fingerprint(lab, nodes[0])
    for node in nodes[1:]:
        joined = pvecm_add(lab, node, nodes[0], password, fp)
        if joined.returncode != 0:
            raise RuntimeError(f"pvecm add on {node} failed: {joined.stderr.strip()}")


SHARED_STORAGE = "shared"


def add_shared_storage(lab: Lab, node: str = "pve1") -> None:
    """A `dir` storage with `shared 1` on the lab-wide directory every node mounts, holding guest
    disks, ISOs and backups, with the tiny guest's ISO copied onto it (so guests can move)."""
    made = ssh(lab, node, f"pvesm add dir {SHARED_STORAGE} --path {NODE_SHARED_DIR} --shared 1 "
                          f"--content images,iso,backup && mkdir -p {NODE_SHARED_DIR}/template/iso && "
                          f"cp /var/lib/vz/template/iso/{ISO_NAME} {NODE_SHARED_DIR}/template/iso/")
    if made.returncode != 0:
        raise RuntimeError(f"could not add the shared storage: {made.stderr.strip()}")


def watch_live_migration(lab: Lab, node: str, vmid: int, target: str, address: str, options: str = ""
                         ) -> dict[str, Any]:
    """`qm migrate --online` while a client polls the guest's page (see watch_guest)."""
    return watch_guest(lab, node, f"qm migrate {vmid} {target} --online {options}".rstrip(), address)


def watch_guest(lab: Lab, node: str, command: str, address: str) -> dict[str, Any]:
    """A command run on `node` while a client polls the guest's page every 100 ms: the pages before
    and after, the command's result, its duration and the longest gap between answers."""
    answers: list[tuple[float, dict[str, str]]] = []
    done = threading.Event()

    def poller() -> None:
        while not done.is_set():
            answers.append((time.monotonic(), guest_page(address)))
            time.sleep(0.1)

    before = guest_page(address)
    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    time.sleep(1)
    started = time.monotonic()
    result = ssh(lab, node, command, timeout=300)
    seconds = time.monotonic() - started
    time.sleep(1.5)
    done.set()
    thread.join()
    answered = [at for at, page in answers if page]
    gaps = [b - a for a, b in zip(answered, answered[1:], strict=False)]
    return {"before": before, "after": answers[-1][1] if answers else {}, "result": result, "seconds": seconds,
            "longest_gap": max(gaps, default=float("inf")), "pages": [page for _, page in answers if page]}
