from pathlib import Path

import pytest

from pvelab.pve.cluster import corosync_conf as cc

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "pve"  # see its SOURCES.md


def test_create_writes_what_pve9_writes():
    conf = cc.create("testclu", "pve1", 1, 1, {0: ("10.10.10.1", None)}, token_coefficient=125)
    assert cc.dump(conf) == (SAMPLES / "corosync-pve9-create-1node.conf").read_text()


def test_create_writes_what_pve8_writes():
    conf = cc.create("testclu", "pve1", 1, 1, {0: ("10.10.10.1", None)}, token_coefficient=None)
    assert cc.dump(conf) == (SAMPLES / "corosync-pve8-create-1node.conf").read_text()


def test_adding_nodes_bumps_the_version_and_keeps_names_sorted():
    conf = cc.create("testclu", "pve1", 1, 1, {0: ("10.10.10.1", 15), 1: ("10.20.20.1", 20)}, 125)
    conf = cc.with_node(conf, "pve3", 3, 1, {0: "10.10.10.3", 1: "10.20.20.3"})
    conf = cc.with_node(conf, "pve2", 2, 1, {0: "10.10.10.2", 1: "10.20.20.2"})
    assert cc.config_version(conf) == 3
    text = cc.dump(conf)
    assert text == (SAMPLES / "corosync-pve9-3nodes-2links.conf").read_text()
    assert cc.parse(text) == cc.parse(cc.dump(cc.parse(text)))


def test_lowest_free_nodeid_is_taken():
    conf = cc.create("c", "pve1", 1, 1, {0: ("198.18.0.11", None)}, None)
    conf = cc.with_node(conf, "pve3", 3, 1, {0: "198.18.0.13"})
    conf = cc.with_node(conf, "pve2", None, 1, {0: "198.18.0.12"})
    assert {n["name"]: n["nodeid"] for n in cc.nodes(conf)} == {"pve1": "1", "pve2": "2", "pve3": "3"}
    assert [n["name"] for n in cc.nodes(cc.without_node(conf, "pve2"))] == ["pve1", "pve3"]


@pytest.mark.parametrize("text,expected", [("198.18.0.11", ("198.18.0.11", None)),
                                           ("address=198.18.0.11,priority=20", ("198.18.0.11", 20)),
                                           ("198.18.1.11,priority=5", ("198.18.1.11", 5))])
def test_parse_link(text, expected):
    assert cc.parse_link(text) == expected


@pytest.mark.parametrize("text", ["priority=5", "198.18.0.1,prio=5", "198.18.0.1,priority=x"])
def test_bad_links_are_refused(text):
    with pytest.raises(cc.ConfError):
        cc.parse_link(text)


def test_unbalanced_file_is_refused():
    with pytest.raises(cc.ConfError):
        cc.parse("totem {\n  version: 2\n")
