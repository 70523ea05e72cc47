"""A cluster built through the REST API with proxmoxer, then its API used as clients use it.
The cluster comes from a fixture and the fault test is audited, so tests hold in any order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from ansible_collections.pvelab.pve.plugins.module_utils.pve_api import PveApi  # the modules' own client
from pvelab.twin.drive import quorum_view, ssh
from pvelab.twin.lab import Lab

from .conftest import api, audit_cluster, check_every_get, lab_addr, pve_version, wait_until

pytestmark = pytest.mark.lab
NODES = ("pve1", "pve2", "pve3")


def finished_task(lab: Lab, node: str, upid: str, timeout: float = 120) -> list[str]:
    """The modules' own task waiter (it logs in again while a joining node drops sessions)."""
    spec = lab.require_record().spec.node(node)
    return PveApi(spec.link_addr(0), password=lab.require_record().root_password).wait_for_task(
        node, upid, timeout, reconnect=True)


@pytest.fixture(scope="module")
def apiclu(lab: Lab) -> dict[str, Any]:
    """pve1 creates apiclu through the API, pve2 and pve3 join through it; the UPIDs and task logs."""
    steps: dict[str, Any] = {}
    upid = api(lab, "pve1").cluster.config.post(clustername="apiclu", link0=lab_addr(lab, 11),
                                                link1=lab_addr(lab, 11, 1))
    steps["create"] = (upid, finished_task(lab, "pve1", upid))
    fp = api(lab, "pve1").cluster.config.join.get()["nodelist"][0]["pve_fp"]
    for node, index in (("pve2", 2), ("pve3", 3)):
        upid = api(lab, node).cluster.config.join.post(
            hostname=lab_addr(lab, 11), password=lab.require_record().root_password, fingerprint=fp,
            link0=lab_addr(lab, 10 + index), link1=lab_addr(lab, 10 + index, 1))
        steps[node] = (upid, finished_task(lab, node, upid))
    return steps


@pytest.fixture
def audited(lab: Lab, apiclu: dict[str, Any]) -> Iterator[Lab]:
    yield lab
    audit_cluster(lab, NODES)


def test_create_and_join_through_the_api(lab: Lab, apiclu: dict[str, Any]) -> None:
    upid, log = apiclu["create"]
    assert upid.startswith("UPID:pve1:") and ":clustercreate:apiclu:root@pam:" in upid
    assert log[-1] == "TASK OK"
    assert all(apiclu[node][1][-1] == "TASK OK" for node in ("pve2", "pve3"))
    conf = ssh(lab, "pve1", "cat /etc/pve/corosync.conf").stdout
    assert ("token_coefficient: 125" in conf) == (pve_version() == "9")  # PVE 9.1 added it
    for node in NODES:
        view = quorum_view(lab, node)
        assert (view["nodes"], view["total_votes"], view["quorate"]) == (3, 3, True)
    status = api(lab, "pve2").cluster.status.get()
    assert status[0] == {"type": "cluster", "id": "cluster", "name": "apiclu", "nodes": 3, "quorate": 1,
                         "version": 3}
    assert sorted(e["name"] for e in status[1:] if e["online"]) == ["pve1", "pve2", "pve3"]


def test_every_get_answers_as_the_schema_says_in_a_cluster(lab: Lab, apiclu: dict[str, Any]) -> None:
    answered = check_every_get(lab, "pve3")
    assert {"GET /cluster/config/join", "GET /nodes/{node}/tasks/{upid}/status", "GET /cluster/status"} <= set(answered)
    assert {key: problems for key, problems in answered.items() if problems} == {}


def test_a_failed_task_says_why(lab: Lab, apiclu: dict[str, Any]) -> None:
    with pytest.raises(ResourceException) as err:
        api(lab, "pve1").cluster.config.post(clustername="again")
    assert "cluster config '/etc/pve/corosync.conf' already exists" in err.value.content


def test_api_tokens_work_with_proxmoxer(lab: Lab, apiclu: dict[str, Any]) -> None:
    token = api(lab, "pve1").access.users("root@pam").token("ci").post(privsep=0)
    assert token["full-tokenid"] == "root@pam!ci"
    try:
        by_token = ProxmoxAPI(lab_addr(lab, 12), user="root@pam", token_name="ci", token_value=token["value"],
                              verify_ssl=False, timeout=30)
        assert len(by_token.cluster.config.nodes.get()) == 3  # tokens live in /etc/pve: good on every node
        bad = ProxmoxAPI(lab_addr(lab, 12), user="root@pam", token_name="ci", token_value="0" * 36, verify_ssl=False)
        with pytest.raises(ResourceException) as err:
            bad.version.get()
        assert err.value.status_code == 401
    finally:
        api(lab, "pve1").access.users("root@pam").token("ci").delete()


def test_node_paths_are_proxied_to_the_named_node(lab: Lab, apiclu: dict[str, Any]) -> None:
    """Asked on pve1 for pve3's tasks, the answer must be pve3's own list (its join task), not pve1's."""
    tasks = api(lab, "pve1").nodes("pve3").tasks.get()
    assert tasks and all(t["upid"].startswith("UPID:pve3:") for t in tasks)
    assert apiclu["pve3"][0] in {t["upid"] for t in tasks}
    assert api(lab, "pve1").nodes("pve3").status.get()["pveversion"].startswith(f"pve-manager/{pve_version()}.")


def test_pvesh_answers_like_the_api(lab: Lab, apiclu: dict[str, Any]) -> None:
    out = ssh(lab, "pve3", "pvesh get /cluster/config/nodes --output-format json")
    assert out.returncode == 0, out.stderr
    assert [n["name"] for n in json.loads(out.stdout)] == ["pve1", "pve2", "pve3"]
    bad = ssh(lab, "pve3", "pvesh create /cluster/config --clustername x --votes 0")
    assert bad.returncode == 255 and "votes: value must have a minimum value of 1" in bad.stderr


def test_pvesh_sends_a_call_for_another_node_to_that_node(lab: Lab, apiclu: dict[str, Any]) -> None:
    """As PVE's pvesh (over SSH to the node): pve3's tasks asked on pve1 are pve3's; an unknown node fails."""
    out = ssh(lab, "pve1", "pvesh get /nodes/pve3/tasks --output-format json")
    assert out.returncode == 0, out.stderr
    upids = {t["upid"] for t in json.loads(out.stdout)}
    assert upids and all(u.startswith("UPID:pve3:") for u in upids) and apiclu["pve3"][0] in upids
    table = ssh(lab, "pve1", "pvesh get /nodes/pve2/status")
    assert table.returncode == 0 and "pve-manager/" in table.stdout, table.stderr
    unknown = ssh(lab, "pve1", "pvesh get /nodes/pve9/status")
    assert unknown.returncode == 255 and unknown.stdout == ""
    assert unknown.stderr.startswith("hostname lookup 'pve9' failed - failed to get address info for: pve9: ")


def test_writes_through_the_api_need_quorum(audited: Lab) -> None:
    audited.partition(["pve3"], None, "all")
    try:
        wait_until(lambda: quorum_view(audited, "pve3").get("quorate") is False, 30, "pve3 losing quorum")
        with pytest.raises(ResourceException) as err:
            api(audited, "pve3").cluster.options.put(description="written without quorum")
        assert err.value.status_code == 500 and "cluster not ready - no quorum?" in err.value.content
        api(audited, "pve1").cluster.options.put(description="written by the majority")
    finally:
        audited.heal()
    wait_until(lambda: api(audited, "pve3").cluster.options.get().get("description") == "written by the majority",
               60, "pve3 seeing the majority's write after heal")
