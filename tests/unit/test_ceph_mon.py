"""Monitors in ceph.conf as `pveceph mon create|destroy` place them, with PVE's refusals; the result
of three creates is PVE's own file (fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvelab.pve.ceph.conf import dump, parse
from pvelab.pve.ceph.init import init_config
from pvelab.pve.ceph.mon import MonError, add_mon, check_new, mon_host_ips, remove_mon, select_ips

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve" / "ceph"
FSID = "0c5b3a4e-7d1f-4c2a-9a8e-3b6f1d2c4e5f"


def test_three_monitors_make_pves_file() -> None:
    config = init_config({}, network="10.10.10.0/24", new_fsid=lambda: FSID)
    for index, node in enumerate(("pve1", "pve2", "pve3"), start=1):
        ips = select_ips(config, node, [f"198.18.0.1{index}", f"10.10.10.{index}"], f"198.18.0.1{index}")
        check_new(config, node, ips, {})
        config = add_mon(config, node, ips, first=index == 1)
        if index == 1:
            assert "\tmon_host =  10.10.10.1\n" in dump(config)  # PVE's first write: a leading space
        config = parse(dump(config))  # what the next create reads (trimmed)
    config["client.crash"] = {"keyring": "/etc/pve/ceph/$cluster.$name.keyring"}  # the first create adds it
    assert dump(config) == (FIXTURES / "ceph-pve9-init-3mons.conf").read_text()


def test_address_choice_and_its_refusals() -> None:
    plain = init_config({}, new_fsid=lambda: FSID)
    assert select_ips(plain, "pve1", ["10.1.1.1"], "198.18.0.11") == ["198.18.0.11"]  # no public network
    assert select_ips(plain, "pve1", [], "198.18.0.11", mon_address=["10.9.9.9"]) == ["10.9.9.9"]
    netted = init_config({}, network="10.10.10.0/24", new_fsid=lambda: FSID)
    with pytest.raises(MonError, match="^No active IP found for the requested ceph public network "
                                       "'10.10.10.0/24' on node 'pve2'$"):
        select_ips(netted, "pve2", ["198.18.0.12"], "198.18.0.12")
    with pytest.raises(MonError) as many:
        select_ips(netted, "pve2", ["10.10.10.2", "10.10.10.22"], "198.18.0.12")
    assert str(many.value) == ("Multiple IPs for ceph public network '10.10.10.0/24' detected on pve2:\n10.10.10.2\n"
                               "10.10.10.22\nuse 'mon-address' to specify one of them.")
    assert select_ips(netted, "pve2", ["10.10.10.2", "10.10.10.22"], "x", mon_address=["10.10.10.22"]) == \
        ["10.10.10.22"]
    with pytest.raises(MonError, match=r"^Specified monitor IP '198.18.0.12' not configured or up on pve2!$"):
        select_ips(netted, "pve2", ["10.10.10.2", "198.18.0.12"], "x", mon_address=["198.18.0.12"])
    made = add_mon(netted, "pve1", ["10.10.10.1"], first=True)
    with pytest.raises(MonError, match="^monitor address '10.10.10.1' already in use$"):
        check_new(made, "pve9", ["10.10.10.1"], {})
    with pytest.raises(MonError, match="^monitor 'pve1' already exists$"):
        check_new(made, "pve1", ["10.10.10.7"], {})


def test_destroying_a_monitor_takes_only_its_address_out() -> None:
    config = parse((FIXTURES / "ceph-pve9-init-3mons.conf").read_text())
    config["global"]["mon_host"] = "10.10.10.1 10.10.10.101 10.10.10.2 10.10.10.3"
    gone = remove_mon(config, "pve2", ["10.10.10.2"])
    assert gone["global"]["mon_host"] == "10.10.10.1 10.10.10.101 10.10.10.3" and "mon.pve2" not in gone
    assert remove_mon(gone, "pve1", ["10.10.10.1"])["global"]["mon_host"] == "10.10.10.101 10.10.10.3"
    two = "[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0] [v2:10.0.0.2:3300/0,v1:10.0.0.2:6789/0]"
    vectors = {"global": {"mon_host": two}}
    assert remove_mon(vectors, "a", ["10.0.0.1"])["global"]["mon_host"] == "[v2:10.0.0.2:3300/0,v1:10.0.0.2:6789/0]"
    assert mon_host_ips("10.0.0.1:6789, [v2:10.0.0.2:3300/0,v1:10.0.0.2:6789/0] mon.example [fd00::1]:6789") == \
        ["10.0.0.1", "10.0.0.2", "10.0.0.2", "fd00::1"]
