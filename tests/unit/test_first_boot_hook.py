"""pvelab's first-boot hook (pvelab/nested/first-boot.sh), run by a POSIX shell against a made-up node:
its NICs in a sysfs-like tree, `ip` a stub that answers the management route and address and notes
what it is asked to do, /etc/network/interfaces as PVE's installer writes it. The plan and the hook
agree: each node's link1 address is what the hook gives its second NIC."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pvelab.nested import first_boot_hook
from pvelab.nested.plan import NestedClass, NestedNode, plan_class

SETTINGS = {"students": ["s001", "s002"], "root_password_hashed": "$6$x$y", "installer_iso": "local:iso/pve.iso",
            "network": "198.19.240.0/22"}

# what PVE's installer writes (Proxmox/Install.pm): the management NIC in vmbr0, the others `manual`
INSTALLED = """auto lo
iface lo inet loopback

iface ens18 inet manual

auto vmbr0
iface vmbr0 inet static
\taddress {cidr}
\tgateway {gateway}
\tbridge-ports ens18
\tbridge-stp off
\tbridge-fd 0

iface ens19 inet manual

source /etc/network/interfaces.d/*
"""

IP_STUB = """#!/bin/sh
echo "$*" >> "{calls}"
case "$*" in
  "-4 route show") echo "default via {gateway} dev vmbr0 proto kernel onlink";;
  "-4 addr show dev vmbr0") echo "5: vmbr0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500"
                            echo "    inet {cidr} scope global vmbr0";;
esac
"""


class FakeNode:
    """A node's NICs, routes and interfaces file in a directory; run() runs the hook there."""

    def __init__(self, root: Path, cidr: str, gateway: str, macs: dict[str, str], ifreload: bool = False) -> None:
        self.root, self.net, self.interfaces = root, root / "sys", root / "interfaces"
        self.calls = root / "calls"
        for name, mac in macs.items():
            (self.net / name).mkdir(parents=True)
            (self.net / name / "address").write_text(mac.lower() + "\n")
            if name != "vmbr0":
                (self.net / name / "device").mkdir()  # a NIC, not the bridge
        self.interfaces.write_text(INSTALLED.format(cidr=cidr, gateway=gateway))
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "ip").write_text(IP_STUB.format(calls=self.calls, cidr=cidr, gateway=gateway))
        (bin_dir / "ip").chmod(0o755)
        if ifreload:
            (bin_dir / "ifreload").write_text(f'#!/bin/sh\necho "ifreload $*" >> "{self.calls}"\n')
            (bin_dir / "ifreload").chmod(0o755)
        self.hook = root / "proxmox-first-boot"
        self.hook.write_bytes(first_boot_hook())
        self.path = f"{bin_dir}:/usr/bin:/bin"

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {"PATH": self.path, "PVELAB_SYS_NET": str(self.net), "PVELAB_INTERFACES": str(self.interfaces)}
        done = subprocess.run(["sh", str(self.hook), "network-online"], env=env, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done

    def did(self) -> list[str]:
        return [c for c in self.calls.read_text().splitlines() if not c.startswith("-4 ")] \
            if self.calls.exists() else []


def node_of(tmp: Path, node: NestedNode, **kw: bool) -> FakeNode:
    macs = {"vmbr0": node.plan.mac, "ens18": node.plan.mac, "ens19": node.plan.extra_macs[0]}
    return FakeNode(tmp, node.plan.cidr, node.gateway, macs, **kw)


@pytest.mark.parametrize("index", range(6))
def test_the_hook_gives_each_planned_node_its_link1_address(tmp_path: Path, index: int) -> None:
    node = plan_class(NestedClass.of(SETTINGS))[index]
    fake = node_of(tmp_path, node)
    out = fake.run().stdout
    stanza = f"auto ens19\niface ens19 inet static\n\taddress {node.link1_address}/24\n"
    assert stanza in fake.interfaces.read_text()
    assert "iface ens19 inet manual" not in fake.interfaces.read_text()
    assert f"ens19 (link 1): {node.link1_address}/24" in out
    # no ifupdown2 here: the address is set by hand, on the NIC
    assert fake.did() == [f"addr add {node.link1_address}/24 dev ens19", "link set ens19 up"]


def test_on_pve_the_hook_writes_the_file_and_lets_ifupdown2_apply_it(tmp_path: Path) -> None:
    fake = node_of(tmp_path, plan_class(NestedClass.of(SETTINGS))[0], ifreload=True)
    fake.run()
    assert fake.did() == ["ifreload -a"]


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    fake = node_of(tmp_path, plan_class(NestedClass.of(SETTINGS))[4])
    fake.run()
    first = fake.interfaces.read_text()
    assert "is configured already" in fake.run().stdout
    assert fake.interfaces.read_text() == first


def test_a_nic_the_installer_did_not_list_is_added(tmp_path: Path) -> None:
    node = plan_class(NestedClass.of(SETTINGS))[1]
    fake = node_of(tmp_path, node)
    fake.interfaces.write_text(fake.interfaces.read_text().replace("iface ens19 inet manual\n", ""))
    fake.run()
    assert fake.interfaces.read_text().endswith(f"\nauto ens19\niface ens19 inet static\n\taddress "
                                                f"{node.link1_address}/24\n")


def test_a_node_not_laid_out_by_pvelab_is_left_alone(tmp_path: Path) -> None:
    fake = FakeNode(tmp_path, "192.0.2.10/24", "192.0.2.1",
                    {"vmbr0": "52:54:00:12:34:56", "ens18": "52:54:00:12:34:56", "ens19": "52:54:00:12:34:57"})
    before = fake.interfaces.read_text()
    assert "is not a pvelab nested node's: nothing done" in fake.run().stdout
    assert fake.interfaces.read_text() == before and fake.did() == []


def test_a_nic_of_another_node_is_not_taken(tmp_path: Path) -> None:
    """Only the NICs whose MAC shares the management NIC's VMID bytes are this node's links."""
    node = plan_class(NestedClass.of(SETTINGS))[0]
    fake = FakeNode(tmp_path, node.plan.cidr, node.gateway,
                    {"vmbr0": node.plan.mac, "ens18": node.plan.mac, "ens19": "BC:24:11:0F:FF:01"})
    fake.run()
    assert "iface ens19 inet manual" in fake.interfaces.read_text() and "auto ens19" not in fake.interfaces.read_text()
    assert fake.did() == []
