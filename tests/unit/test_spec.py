import ipaddress

import pytest

from pvelab.errors import TwinError
from pvelab.twin.spec import LINKS, MAX_NODES, LabSpec

LAB_SPACE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking space: the only addresses a lab uses


def test_three_node_lab_has_pve_names_and_distinct_addresses():
    spec = LabSpec()
    assert [n.name for n in spec.nodes] == ["pve1", "pve2", "pve3"]
    addrs = [n.link_addr(link) for n in spec.nodes for link in LINKS] + [n.bmc_addr for n in spec.nodes]
    assert len(set(addrs)) == len(addrs)
    assert spec.node("pve2").link_addr(0) == "198.18.0.12"
    assert spec.node("pve2").link_addr(1) == "198.18.1.12"
    assert spec.node("pve2").bmc_addr == "198.18.2.12"


def test_every_address_stays_in_the_lab_space():
    spec = LabSpec(node_count=MAX_NODES)
    for node in spec.nodes:
        for addr in [node.link_addr(0), node.link_addr(1), node.bmc_addr]:
            assert ipaddress.ip_address(addr) in LAB_SPACE
    for link in (*LINKS, None):
        assert ipaddress.ip_address(spec.host_addr(link)) in LAB_SPACE


def test_kernel_names_fit_fifteen_characters():
    spec = LabSpec(node_count=MAX_NODES)
    names = [n.host_veth(link) for n in spec.nodes for link in LINKS]
    names += [spec.bridge(link) for link in (*LINKS, None)]
    assert max(len(name) for name in names) <= 15
    assert len(set(names)) == len(names)


def test_etc_hosts_lists_every_node_on_link0():
    text = LabSpec(node_count=3).etc_hosts()
    for i in (1, 2, 3):
        assert f"198.18.0.1{i}\tpve{i}.pvelab.test pve{i}\n" in text


def test_unknown_node_names_the_known_ones():
    with pytest.raises(TwinError) as err:
        LabSpec().node("pve7")
    assert "unknown node 'pve7'" in str(err.value)
    assert "pve1, pve2, pve3" in str(err.value)


@pytest.mark.parametrize("count", [0, MAX_NODES + 1])
def test_node_count_out_of_range_is_refused(count):
    with pytest.raises(TwinError, match="choose --nodes between 1 and"):
        LabSpec(node_count=count)


def test_unknown_pve_version_is_refused():
    with pytest.raises(TwinError, match="unknown PVE version '7'"):
        LabSpec(pve_version="7")


def test_spec_round_trips_through_its_record_form():
    spec = LabSpec(node_count=5, pve_version="8")
    assert LabSpec.from_dict(spec.to_dict()) == spec


def test_a_node_gets_pves_management_bridge_in_its_interfaces_file() -> None:
    spec = LabSpec()
    text = spec.etc_network_interfaces(spec.node("pve2"))
    assert "iface eth0 inet manual\n" in text
    assert "auto vmbr0\niface vmbr0 inet static\n\taddress 198.18.0.12/24\n\tbridge-ports eth0\n" in text
    assert "iface eth1 inet static\n\taddress 198.18.1.12/24\n" in text
    assert "gateway" not in text  # a lab is routed nowhere
    assert [spec.node("pve2").address_ifname(link) for link in LINKS] == ["vmbr0", "eth1"]


def test_named_labs_take_their_own_three_subnets_and_names() -> None:
    default, first, last = LabSpec(), LabSpec(name="s01", slot=1), LabSpec(name="s99", slot=99, node_count=MAX_NODES)
    assert first.node("pve1").link_addr(0) == "198.18.3.11" and first.node("pve1").bmc_addr == "198.18.5.11"
    assert str(last.subnet(None)) == "198.19.43.0/24"  # slot 99: /24 number 3 * 99 + 2 = 299 of the /15
    subnets = [spec.subnet(link) for spec in (default, first, last) for link in (*LINKS, None)]
    assert len(set(subnets)) == len(subnets) and all(s.subnet_of(LAB_SPACE) for s in subnets)  # type: ignore[arg-type]
    assert (first.prefix, first.bridge(0), first.node("pve2").netns, first.node("pve2").host_veth(1)) == \
        ("pvl01", "pvl01-link0", "pvl01-pve2", "pvl012l1")
    assert (default.node("pve2").cgroup, first.node("pve2").cgroup) == ("pve2", "pvl01-pve2")
    names = [n.host_veth(link) for n in last.nodes for link in LINKS] + [last.bridge(link) for link in (*LINKS, None)]
    assert max(len(name) for name in names) <= 15
    assert "198.18.3.11\tpve1.pvelab.test pve1\n" in first.etc_hosts()


def test_a_lab_spec_survives_its_record_and_refuses_a_slot_it_cannot_have() -> None:
    spec = LabSpec(node_count=2, pve_version="8", name="s07", slot=7)
    assert LabSpec.from_dict(spec.to_dict()) == spec
    # records written before slots and data disks: the default lab, no data disks (its nodes booted without)
    assert LabSpec.from_dict({"node_count": 3, "pve_version": "9"}) == LabSpec(osd_disks=0)
    with_disks = LabSpec(osd_disks=2, osd_size=8 * 1024 ** 3)
    assert LabSpec.from_dict(with_disks.to_dict()) == with_disks
    assert not with_disks.same_build(LabSpec())
    for name, slot in (("s01", 0), ("", 3), ("s01", 100)):
        with pytest.raises(TwinError, match="cannot take slot"):
            LabSpec(name=name, slot=slot)
