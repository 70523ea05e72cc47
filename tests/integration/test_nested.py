"""Nested labs with a two-node twin cluster as the L0 cluster: playbooks/nested.yml spreads two students'
labs over its nodes (s001 on pve1, s002 on pve2: six VMs in the planned shape, their bridges and
answer discs on their student's node), the twin's stand-in for PVE's installer reads each answer,
installs onto the disk the answer picks by serial and powers off (qmeventd stops the VM), the CDs go,
a baseline snapshot is taken, the nodes boot from disk, run the first-boot hook from the installer
ISO (link1 gets its address) and answer on port 22, and each student's inventory lists their nodes.
A second run changes nothing; reset rolls one student's three nodes back and leaves the other's
running; absent takes it all away."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pvelab.nested.plan import NestedClass, NestedNode, plan_class
from pvelab.twin.drive import form_cluster, ssh
from pvelab.twin.lab import Lab

from .conftest import BIN, REPO, api, pve_version, start_lab

# The L0 side is the same API on 8 and 9; the stand-in's installs are TCG guests inside a node: once, on 9.
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.environ.get("PVELAB_PVE_VERSION", "9") != "9", reason="runs once, on PVE 9 nodes")]
STUDENTS = ["s001", "s002"]
# Small VMs for the stand-in (the real shape is the defaults: 8 GiB, 2 cores, 32 GiB disks); the twin has
# no nested virtualization, so the run says it goes on without it; addresses inside the lab range.
SETTINGS = {"students": STUDENTS, "root_password_hashed": "$6$pvelab$x", "installer_iso": "local:iso/pvelab-tiny.iso",
            "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvelabNestedTest teacher"],
            "network": "198.19.240.0/22", "memory_mib": 256, "cores": 1, "os_disk_gib": 1, "osd_disk_gib": 1,
            "require_kvm": False}
L0_NODES = ("pve1", "pve2")  # the playbook spreads the class over them, in turn
PLAN = plan_class(NestedClass.of({**SETTINGS, "hosts": dict.fromkeys(L0_NODES, 0)}))


@pytest.fixture(scope="module")
def l0() -> Iterator[Lab]:
    lab = start_lab(pve_version(), node_count=len(L0_NODES))
    try:
        form_cluster(lab, "l0")
        yield lab
    finally:
        lab.down(quiet=True)


def playbook(lab: Lab, workdir: Path, check: bool = False, **extra: Any) -> str:
    """playbooks/nested.yml against the lab's node as the L0 host; its output (it must succeed)."""
    inventory = yaml.safe_load((lab.paths.root / "inventory.yml").read_text())["all"]
    hosts = {n: inventory["children"]["pve_nodes"]["hosts"][n] for n in L0_NODES}
    l0_vars = {**inventory["vars"], "pve_api_password": inventory["vars"]["pve_root_password"]}
    (workdir / "l0.yml").write_text(yaml.safe_dump({"l0_hosts": {"hosts": hosts, "vars": l0_vars}}))
    variables = {"nested_class": SETTINGS, "nested_dir": str(workdir / "nested"), "pvelab_cli": str(BIN / "pvelab"),
                 "nested_install_timeout": 300, "nested_boot_timeout": 300, **extra}
    argv = [str(BIN / "ansible-playbook"), "-i", str(workdir / "l0.yml"), "playbooks/nested.yml",
            "-e", json.dumps(variables), *(["--check"] if check else [])]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1500,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc.stdout


def recap(output: str) -> tuple[int, int]:
    found = re.search(r"^pve1\s+: ok=(\d+)\s+changed=(\d+)", output, re.M)
    assert found, output[-3000:]
    return int(found.group(1)), int(found.group(2))


def banner(lab: Lab, l0_node: str, address: str) -> str:
    """What answers on address:22, as seen from an L0 host."""
    return ssh(lab, l0_node, "python3 -c 'import socket; print(socket.create_connection("
               f"(\"{address}\", 22), 5).recv(100).decode())'").stdout


def link1_banners(lab: Lab, node: NestedNode) -> dict[str, str]:
    """Each of a student's nodes on its link1 address, from the L0 host given an address on the
    student's link1 bridge for the while (the lab has none there: link1 is the nodes' own network)."""
    probe = f"{ipaddress.IPv4Address(node.link1_address) - 10 - int(node.name[3:]) + 1}/24"
    added = ssh(lab, node.l0_node or "pve1", f"ip addr add {probe} dev {node.bridges[1]}")
    assert added.returncode == 0, added.stderr
    try:
        return {n.name: banner(lab, n.l0_node or "pve1", n.link1_address) for n in PLAN if n.student == node.student}
    finally:
        ssh(lab, node.l0_node or "pve1", f"ip addr del {probe} dev {node.bridges[1]}")


def observe(lab: Lab) -> dict[str, Any]:
    """What the L0 hosts hold of the class after the playbook: each VM (config, status, snapshots, what
    its two disks hold, its port 22 and its page as seen from its L0 host), the nodes on link1, the
    bridges and the discs' labels on each host."""
    client = api(lab, "pve1")
    vms = {}
    for node in PLAN:
        host = node.l0_node or "pve1"
        disks = ssh(lab, host, f"dd if=/dev/pve/vm-{node.vmid}-disk-0 bs=1024 skip=65536 count=1 2>/dev/null "
                    f"| head -c 8; echo; dd if=/dev/pve/vm-{node.vmid}-disk-1 bs=1M count=70 2>/dev/null "
                    "| tr -d '\\0' | wc -c").stdout.split()
        vms[node.vmid] = {"config": dict(client.nodes(host).qemu(node.vmid).config.get()),
                          "status": client.nodes(host).qemu(node.vmid).status.current.get(),
                          "snapshots": {s["name"] for s in client.nodes(host).qemu(node.vmid).snapshot.get()},
                          "disks": disks, "port22": banner(lab, host, node.address),
                          "page": ssh(lab, host, "python3 -c 'import urllib.request; print(urllib.request.urlopen("
                                      f"\"http://{node.address}/cgi-bin/status\", timeout=5).read().decode())'").stdout}
    link1 = {n.student: link1_banners(lab, n) for n in PLAN if n.name == "pve1"}
    isos = {host: ssh(lab, host, "cd /var/lib/vz/template/iso && for f in pvelab-ais-*.iso; do "
                      "[ -e $f ] && echo $f $(blkid -o value -s LABEL $f); done").stdout for host in L0_NODES}
    return {"vms": vms, "link1": link1, "isos": {h: sorted(i.splitlines()) for h, i in isos.items()},
            "network": {h: {i["iface"]: i for i in client.nodes(h).network.get()} for h in L0_NODES}}


@pytest.fixture(scope="module")
def nested(l0: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole life of the class, recorded for the tests (which then hold in any order): made, made
    again, looked at; s001 reset; everything taken away."""
    workdir = tmp_path_factory.mktemp("nested")
    client = api(l0, "pve1")
    preview = playbook(l0, workdir, check=True)
    made_by_preview = {int(g["vmid"]) for g in client.cluster.resources.get(type="vm")}
    runs = {"preview": preview, "first": playbook(l0, workdir), "again": playbook(l0, workdir)}
    seen = observe(l0)
    inventories = {s: yaml.safe_load((workdir / "nested" / s / "inventory.yml").read_text())["all"] for s in STUDENTS}
    playbook(l0, workdir, nested_state="reset", nested_reset=["s001"])
    after_reset = {n.vmid: client.nodes(n.l0_node).qemu(n.vmid).status.current.get() for n in PLAN}
    rollbacks = {int(t["id"]) for h in L0_NODES for t in client.nodes(h).tasks.get(typefilter="qmrollback", limit=50)}
    playbook(l0, workdir, nested_state="absent")
    left = {"vmids": {int(g["vmid"]) for g in client.cluster.resources.get(type="vm")},
            "ifaces": {i["iface"] for h in L0_NODES for i in client.nodes(h).network.get()},
            "isos": "".join(ssh(l0, h, "ls /var/lib/vz/template/iso").stdout for h in L0_NODES),
            "folders": [s for s in STUDENTS if (workdir / "nested" / s).exists()]}
    addresses = {n: lab_node["ansible_host"] for n, lab_node in yaml.safe_load(
        (l0.paths.root / "inventory.yml").read_text())["all"]["children"]["pve_nodes"]["hosts"].items()}
    return {"runs": runs, "made_by_preview": made_by_preview, "seen": seen, "inventories": inventories,
            "after_reset": after_reset, "rollbacks": rollbacks, "left": left, "l0_addresses": addresses}


def test_the_vms_are_in_the_planned_shape_installed_and_booted_from_disk(nested: dict[str, Any]) -> None:
    for node in PLAN:
        vm = nested["seen"]["vms"][node.vmid]
        config, planned = vm["config"], node.create_params()
        for key in ("name", "machine", "scsihw", "cores", "memory", "net0", "net1", "watchdog", "tags", "cpu"):
            assert str(config[key]) == str(planned[key]), (node.vmid, key)
        assert config["scsi0"].endswith(f",serial=os-{node.vmid},size=1G"), config["scsi0"]
        assert config["scsi1"].endswith(f",serial=osd-{node.vmid},size=1G"), config["scsi1"]
        assert "ide2" not in config and "ide3" not in config and config["boot"] == "order=scsi0"
        assert (vm["status"]["status"], vm["status"]["qmpstatus"]) == ("running", "running")
        assert "baseline" in vm["snapshots"]
        # the stand-in installed onto the OS disk (found by its serial), not the OSD disk: the answer
        # sits behind the boot image on scsi0, and scsi1 is as it was made (zeros)
        assert vm["disks"] == ["PVELABAI", "0"], vm["disks"]
        # booted from that disk, the node answers on its address, as seen from its L0 host
        assert "SSH-2.0-pvelab-standin-node" in vm["port22"], vm["port22"]
        # it ran the installer ISO's first-boot hook, which gave its second NIC the link1 address
        assert f"first-boot: pvelab first-boot: eth1 (link 1): {node.link1_address}/24\n" in vm["page"], vm["page"]
        assert "first-boot: exit 0\n" in vm["page"], vm["page"]


def test_the_students_labs_are_spread_over_the_l0_cluster_and_link1_is_up(nested: dict[str, Any]) -> None:
    assert [(n.student, n.l0_node) for n in PLAN if n.name == "pve1"] == [("s001", "pve1"), ("s002", "pve2")]
    for node in PLAN:
        assert nested["seen"]["vms"][node.vmid]["status"]["name"] == node.name  # found on its student's host
    # each node answers on its link1 address too, inside its student's link1 network
    for student, seen in nested["seen"]["link1"].items():
        assert set(seen) == {"pve1", "pve2", "pve3"}, student
        assert all("SSH-2.0-pvelab-standin-node" in b for b in seen.values()), seen


def test_the_bridges_and_answer_discs_are_the_plans_on_each_students_host(nested: dict[str, Any]) -> None:
    for node in (n for n in PLAN if n.name == "pve1"):
        network = nested["seen"]["network"][node.l0_node]
        link0, link1 = (network[b] for b in node.bridges)
        assert link0["cidr"] == f"{node.gateway}/24" and "cidr" not in link1
        assert link0["comments"].strip() == f"pvelab nested {node.student} link0"
        others = [h for h in L0_NODES if h != node.l0_node]
        assert not any(b in nested["seen"]["network"][h] for h in others for b in node.bridges)
    for host in L0_NODES:
        assert nested["seen"]["isos"][host] == sorted(f"{n.disc_name} proxmox-ais" for n in PLAN if n.l0_node == host)


def test_the_inventory_lists_each_students_nodes_and_a_second_run_changes_nothing(nested: dict[str, Any]) -> None:
    # check mode first: it showed what it would make (six VMs) and made nothing
    assert recap(nested["runs"]["preview"])[1] > 0 and nested["made_by_preview"] == set()
    for node in PLAN:
        assert f"changed: [pve1 -> localhost] => (item={node.student}/{node.name}: VM {node.vmid})" in \
            nested["runs"]["preview"], nested["runs"]["preview"][-3000:]
    assert recap(nested["runs"]["first"])[1] > 0
    assert recap(nested["runs"]["again"])[1] == 0, nested["runs"]["again"][-3000:]
    for student, inventory in nested["inventories"].items():
        hosts = inventory["children"]["pve_nodes"]["hosts"]
        assert {name: h["ansible_host"] for name, h in hosts.items()} == {
            n.name: n.address for n in PLAN if n.student == student}
        assert inventory["vars"]["pve_cluster_name"] == student
        (host,) = {n.l0_node for n in PLAN if n.student == student}
        jump = f"-o ProxyJump=root@{nested['l0_addresses'][host]}"  # through the student's own L0 host
        assert inventory["vars"]["ansible_ssh_common_args"] == jump


def test_reset_rolls_one_student_back_and_absent_takes_everything_away(nested: dict[str, Any]) -> None:
    before, after = nested["seen"]["vms"], nested["after_reset"]
    for node in PLAN:
        restarted = after[node.vmid]["pid"] != before[node.vmid]["status"]["pid"]
        assert after[node.vmid]["status"] == "running" and restarted == (node.student == "s001"), node.vmid
    assert nested["rollbacks"] == {n.vmid for n in PLAN if n.student == "s001"}
    left = nested["left"]
    assert not left["vmids"] & {n.vmid for n in PLAN}
    assert not left["ifaces"] & {b for n in PLAN for b in n.bridges}
    assert "pvelab-ais" not in left["isos"] and left["folders"] == []
