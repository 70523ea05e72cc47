"""The same cluster built through the REST API with proxmoxer, plus the API's own refusals, on
nodes that present PVE 8 (the other lab tests use the default, 9), so both majors are exercised.

Tests run in file order: each step builds on the cluster the previous ones left.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from pvelab.twin.lab import Lab

from .conftest import quorum_view, ssh, wait_until

pytestmark = pytest.mark.lab
PVE_VERSION = "8"


def api(lab: Lab, node: str, password: str | None = None) -> Any:
    spec = lab.require_record().spec.node(node)
    return ProxmoxAPI(spec.link_addr(0), user="root@pam", password=password or lab.require_record().root_password,
                      verify_ssl=False, timeout=30)


def finished_task(lab: Lab, node: str, upid: str, timeout: float = 120) -> dict[str, Any]:
    """Poll a task until it stops; a joining node's API drops sessions mid-way, so log in again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = api(lab, node).nodes(node).tasks(upid).status.get()
            if status["status"] == "stopped":
                return dict(status)
        except (ResourceException, AuthenticationError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"task {upid} did not finish within {timeout:.0f} s")


def test_version_reports_the_chosen_pve_major(lab: Lab) -> None:
    assert lab.require_record().spec.pve_version == PVE_VERSION
    data = api(lab, "pve1").version.get()
    assert data["release"].startswith(PVE_VERSION + ".")
    assert ssh(lab, "pve1", "pveversion").stdout.startswith(f"pve-manager/{PVE_VERSION}.")


def test_wrong_password_gets_401(lab: Lab) -> None:
    with pytest.raises(AuthenticationError):
        api(lab, "pve1", password="not-the-password")


def test_join_info_outside_a_cluster_is_424(lab: Lab) -> None:
    with pytest.raises(ResourceException) as err:
        api(lab, "pve1").cluster.config.join.get()
    assert err.value.status_code == 424
    assert "node is not in a cluster, no join info available!" in err.value.content


@pytest.mark.parametrize("params,field,message", [
    ({"clustername": "c", "bogus": "1"}, "bogus",
     "property is not defined in schema and the schema does not allow additional properties"),
    ({"clustername": "c", "votes": "0"}, "votes", "value must have a minimum value of 1"),
    ({"clustername": "name-longer-than-15"}, "clustername", "value may only be 15 characters long"),
    ({}, "clustername", "property is missing and it is not optional"),
])
def test_bad_parameters_get_pves_verification_error(lab: Lab, params: dict[str, str], field: str,
                                                    message: str) -> None:
    with pytest.raises(ResourceException) as err:
        api(lab, "pve1").cluster.config.post(**params)
    assert err.value.status_code == 400
    assert err.value.errors == {field: message}


def test_create_and_join_through_the_api(lab: Lab) -> None:
    upid = api(lab, "pve1").cluster.config.post(clustername="apiclu", link0="198.18.0.11", link1="198.18.1.11")
    assert upid.startswith("UPID:pve1:") and ":clustercreate:apiclu:root@pam:" in upid
    assert finished_task(lab, "pve1", upid)["exitstatus"] == "OK"
    log = api(lab, "pve1").nodes("pve1").tasks(upid).log.get()
    assert log[-1]["t"] == "TASK OK"
    assert "token_coefficient" not in ssh(lab, "pve1", "cat /etc/pve/corosync.conf").stdout  # 9.1 added it
    join_info = api(lab, "pve1").cluster.config.join.get()
    fp = join_info["nodelist"][0]["pve_fp"]
    for node, index in (("pve2", 2), ("pve3", 3)):
        upid = api(lab, node).cluster.config.join.post(
            hostname="198.18.0.11", password=lab.require_record().root_password, fingerprint=fp,
            link0=f"198.18.0.1{index}", link1=f"198.18.1.1{index}")
        assert finished_task(lab, node, upid)["exitstatus"] == "OK"
    for node in ("pve1", "pve2", "pve3"):
        view = quorum_view(lab, node)
        assert (view["nodes"], view["total_votes"], view["quorate"]) == (3, 3, True)
    status = api(lab, "pve2").cluster.status.get()
    assert status[0] == {"type": "cluster", "id": "cluster", "name": "apiclu", "nodes": 3, "quorate": 1,
                         "version": 3}
    assert sorted(e["name"] for e in status[1:] if e["online"]) == ["pve1", "pve2", "pve3"]


def test_a_failed_task_says_why(lab: Lab) -> None:
    with pytest.raises(ResourceException) as err:
        api(lab, "pve1").cluster.config.post(clustername="again")
    assert "cluster config '/etc/pve/corosync.conf' already exists" in err.value.content


def test_api_tokens_work_with_proxmoxer(lab: Lab) -> None:
    token = api(lab, "pve1").access.users("root@pam").token("ci").post(privsep=0)
    assert token["full-tokenid"] == "root@pam!ci"
    by_token = ProxmoxAPI("198.18.0.12", user="root@pam", token_name="ci", token_value=token["value"],
                          verify_ssl=False, timeout=30)
    assert len(by_token.cluster.config.nodes.get()) == 3  # tokens live in /etc/pve: good on every node
    bad = ProxmoxAPI("198.18.0.12", user="root@pam", token_name="ci", token_value="0" * 36, verify_ssl=False)
    with pytest.raises(ResourceException) as err:
        bad.version.get()
    assert err.value.status_code == 401


def test_node_paths_are_proxied_to_the_named_node(lab: Lab) -> None:
    status = api(lab, "pve1").nodes("pve3").status.get()
    assert status["pveversion"].startswith("pve-manager/")
    uptime_pve3 = int(ssh(lab, "pve3", "cut -d. -f1 /proc/uptime").stdout or 0)
    assert isinstance(status["uptime"], int) and uptime_pve3 >= 0


def test_pvesh_answers_like_the_api(lab: Lab) -> None:
    import json

    out = ssh(lab, "pve3", "pvesh get /cluster/config/nodes --output-format json")
    assert out.returncode == 0, out.stderr
    assert [n["name"] for n in json.loads(out.stdout)] == ["pve1", "pve2", "pve3"]
    bad = ssh(lab, "pve3", "pvesh create /cluster/config --clustername x --votes 0")
    assert bad.returncode == 255 and "votes: value must have a minimum value of 1" in bad.stderr


def test_writes_through_the_api_need_quorum(lab: Lab) -> None:
    from pvelab.cli import main

    main(["twin", "partition", "pve3"])
    try:
        wait_until(lambda: quorum_view(lab, "pve3").get("quorate") is False, 30, "pve3 losing quorum")
        with pytest.raises(ResourceException) as err:
            api(lab, "pve3").cluster.options.put(description="written without quorum")
        assert err.value.status_code == 500 and "cluster not ready - no quorum?" in err.value.content
        api(lab, "pve1").cluster.options.put(description="written by the majority")
    finally:
        main(["twin", "heal"])
    wait_until(lambda: api(lab, "pve3").cluster.options.get().get("description") == "written by the majority", 60,
               "pve3 seeing the majority's write after heal")
