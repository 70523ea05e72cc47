"""module_utils without a lab: output parsers (against PVE's sample outputs) and the pure parts of
the cluster and corosync logic. Imported the way Ansible imports them."""

from pathlib import Path

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import corosync_conf as cc
from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi, upid_node
from ansible_collections.pvelab.pve.plugins.module_utils.pve_cluster_ops import check_joinable, link_params
from ansible_collections.pvelab.pve.plugins.module_utils.pve_corosync_ops import desired_conf, refuse_breaking_quorum
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pvecm_output import (
    parse_cfgtool_status,
    parse_nodes,
    parse_status,
)

SAMPLES = Path(__file__).parents[2] / "fixtures"  # see its SOURCES.md


def test_pvecm_status_quorate_sample():
    status = parse_status((SAMPLES / "pvecm-status-3nodes.txt").read_text())
    assert (status["name"], status["config_version"], status["nodes"], status["quorate"]) == ("testclu", 3, 3, True)
    assert (status["expected_votes"], status["total_votes"], status["quorum"]) == (3, 3, 2)
    assert status["flags"] == ["Quorate"] and not status["activity_blocked"]
    assert status["members"][0] == {"nodeid": 1, "votes": 1, "qdevice_flags": "", "name": "10.10.10.1",
                                    "local": True}
    assert [m["nodeid"] for m in status["members"]] == [1, 2, 3]


def test_pvecm_status_inquorate_sample():
    status = parse_status((SAMPLES / "pvecm-status-inquorate.txt").read_text())
    assert status["quorate"] is False and status["activity_blocked"] and status["flags"] == []
    assert (status["total_votes"], status["expected_votes"], len(status["members"])) == (1, 3, 1)


def test_pvecm_status_with_qdevice_sample():
    status = parse_status((SAMPLES / "pvecm-status-2nodes-qdevice.txt").read_text())
    assert "Qdevice" in status["flags"]
    qdevice = [m for m in status["members"] if m["nodeid"] == 0]
    assert qdevice and qdevice[0]["name"] == "Qdevice"


def test_pvecm_nodes_sample():
    nodes = parse_nodes((SAMPLES / "pvecm-nodes-3nodes.txt").read_text())
    assert [(n["nodeid"], n["name"], n["local"]) for n in nodes] == [
        (1, "pve1", True), (2, "pve2", False), (3, "pve3", False)]


def test_cfgtool_status():
    text = ("Local node ID 2, transport knet\nLINK ID 0 udp\n\taddr\t= 198.18.0.12\n\tstatus:\n"
            "\t\tnodeid:          1:\tconnected\n\t\tnodeid:          2:\tlocalhost\n"
            "\t\tnodeid:          3:\tdisconnected\nLINK ID 1 udp\n\taddr\t= 198.18.1.12\n\tstatus:\n"
            "\t\tnodeid:          1:\tconnected\n")
    assert parse_cfgtool_status(text) == {0: {1: "connected", 2: "localhost", 3: "disconnected"}, 1: {1: "connected"}}


def conf():
    c = cc.create("c", "pve1", 1, 1, {0: ("198.18.0.11", None), 1: ("198.18.1.11", None)}, 125)
    return cc.with_node(c, "pve2", None, 1, {0: "198.18.0.12", 1: "198.18.1.12"})


def test_desired_conf_sets_priorities_totem_and_addresses():
    want = desired_conf(conf(), {"pve2": ["198.18.0.22", "198.18.1.12"]}, {"link1": 20, 0: 10}, {"token": 4000})
    interfaces = {i["linknumber"]: i.get("knet_link_priority") for i in want["totem"]["interface"]}
    assert interfaces == {"0": "10", "1": "20"} and want["totem"]["token"] == "4000"
    assert cc.nodes(want)[1]["ring0_addr"] == "198.18.0.22"
    assert cc.config_version(want) == cc.config_version(conf())  # bumped only when written


@pytest.mark.parametrize("links,priorities,totem,message", [
    ({"pve9": ["1.2.3.4", "1.2.3.5"]}, None, None, "not in the cluster"),
    ({"pve2": ["198.18.0.12"]}, None, None, r"needs 2 link address\(es\)"),
    ({"pve2": ["not-an-ip", "198.18.1.12"]}, None, None, "is not an IP address"),
    (None, {5: 1}, None, "names link5"),
    (None, None, {"cluster_name": "x"}, "managed by PVE"),
])
def test_desired_conf_refusals(links, priorities, totem, message):
    with pytest.raises(PveError, match=message):
        desired_conf(conf(), links, priorities, totem)


def test_moving_every_link_of_a_node_at_once_is_refused():
    current = conf()
    one_link = desired_conf(current, {"pve2": ["198.18.0.22", "198.18.1.12"]}, None, None)
    refuse_breaking_quorum(current, one_link)
    both = desired_conf(current, {"pve2": ["198.18.0.22", "198.18.1.22"]}, None, None)
    with pytest.raises(PveError, match="every link address of 'pve2' at once"):
        refuse_breaking_quorum(current, both)


def test_link_params_number_links_from_zero():
    assert link_params(["198.18.0.12", "198.18.1.12,priority=5"]) == {
        "link0": "198.18.0.12", "link1": "198.18.1.12,priority=5"}
    assert link_params(None) == {}


def member(cluster, quorate=True):
    return {"node": "pve1", "cluster": cluster, "quorate": quorate}


@pytest.mark.parametrize("target,join_member,message", [
    ({"node": "pve2", "cluster": "other"}, member("edu"), "pve2 is already a member of cluster 'other'"),
    ({"node": "pve2", "cluster": None}, member(None), "is not in a cluster — create cluster 'edu' first"),
    ({"node": "pve2", "cluster": None}, member("lab"), "is a member of cluster 'lab', not 'edu'"),
    ({"node": "pve2", "cluster": None}, member("edu", quorate=False), "has no quorum"),
])
def test_join_preconditions(target, join_member, message):
    with pytest.raises(PveError, match=message):
        check_joinable(target, join_member, "edu", "198.18.0.11")


def test_filters_use_the_same_parsers():
    from ansible_collections.pvelab.pve.plugins.filter import pvecm

    filters = pvecm.FilterModule().filters()
    text = (SAMPLES / "pvecm-status-3nodes.txt").read_text()
    assert filters["pvecm_status"](text) == parse_status(text)
    assert set(filters) == {"pvecm_status", "pvecm_nodes", "corosync_links"}


class TaskRecorder(PveApi):
    """PveApi answering a finished task, noting each path asked for (no connection)."""

    def __init__(self):  # pylint: disable=super-init-not-called
        self.asked = []

    def get(self, path, /, **params):
        self.asked.append(path)
        return {"status": "stopped", "exitstatus": "OK"} if path.endswith("/status") else [{"n": 1, "t": "TASK OK"}]


def test_a_task_is_asked_for_on_the_node_its_upid_names():
    """An upload for pve2's storage sent to pve1 runs as a task on pve1 (it copies the file over): its
    status is pve1's to tell, as PVE's task API answers only for the node's own tasks."""
    api = TaskRecorder()
    upid = "UPID:pve1:0000015C:002754BE:6B122894:imgcopy::root@pam:"
    assert api.wait_for_task("pve2", upid) == ["TASK OK"]
    assert api.asked == [f"/nodes/pve1/tasks/{upid}/status", f"/nodes/pve1/tasks/{upid}/log"]
    assert upid_node("not a upid") is None
