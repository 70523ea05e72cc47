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

from .conftest import (
    api,
    audit_cluster,
    check_every_get,
    client_as,
    lab_addr,
    pve_version,
    wait_for_task,
    wait_until,
)

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


def test_the_cluster_log_shows_one_nodes_tasks_on_every_node(lab: Lab, apiclu: dict[str, Any]) -> None:
    """pmxcfs's cluster log: a task on pve2 (its start and end) and a login on pve1, read on pve3."""
    upid = api(lab, "pve2").nodes("pve2").services("pvescheduler").reload.post()
    assert wait_for_task(api(lab, "pve2"), "pve2", upid)["exitstatus"] == "OK"
    wanted = {f"starting task {upid}", f"end task {upid} OK", "successful auth for user 'root@pam'"}

    def logged() -> bool:
        return wanted <= {e["msg"] for e in api(lab, "pve3").cluster.log.get(max=200)}

    wait_until(logged, 30, "pve2's task in pve3's cluster log")
    entry = next(e for e in api(lab, "pve1").cluster.log.get(max=200) if e["msg"] == f"end task {upid} OK")
    assert (entry["node"], entry["user"], entry["tag"], entry["pri"]) == ("pve2", "root@pam", "pvedaemon", 6)
    assert entry["id"] == f"{entry['uid']}:pve2"


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


# -- access control: a class's accounts, as PVE checks them ------------------------------------------
STUDENT_PASSWORD = "student1-pass"  # noqa: S105 - a lab account's password


@pytest.fixture(scope="module")
def classroom(lab: Lab, apiclu: dict[str, Any]) -> dict[str, Any]:
    """A student limited to pool lab1 (VM 201 in it, VM 202 not) and the grader's PVEAuditor token, made
    through the API (the permission matrix, on a standalone node, is in test_api_standalone.py)."""
    root = api(lab, "pve1")
    root.pools.post(poolid="lab1", comment="student1's lab")
    for vmid, pool in ((201, {"pool": "lab1"}), (202, {})):
        assert wait_for_task(root, "pve1", root.nodes("pve1").qemu.post(vmid=vmid, memory=64, **pool))[
            "exitstatus"] == "OK"
    root.access.users.post(userid="student1@pve", password=STUDENT_PASSWORD)
    root.access.acl.put(path="/pool/lab1", users="student1@pve", roles="PVEVMUser")
    root.access.users.post(userid="grader@pve", comment="the grader")
    grade = root.access.users("grader@pve").token("grade").post(privsep=1)
    root.access.acl.put(path="/", users="grader@pve", roles="PVEAuditor")
    root.access.acl.put(path="/", tokens="grader@pve!grade", roles="PVEAuditor")
    return {"grade": grade["value"]}


def test_a_pool_student_starts_and_stops_only_the_pools_guests(lab: Lab, classroom: dict[str, Any]) -> None:
    student = client_as(lab, "pve1", "student1@pve", STUDENT_PASSWORD)
    started = wait_for_task(student, "pve1", student.nodes("pve1").qemu(201).status.start.post())
    assert started["exitstatus"] == "OK" and started["user"] == "student1@pve"
    assert wait_for_task(student, "pve1", student.nodes("pve1").qemu(201).status.stop.post())["exitstatus"] == "OK"
    with pytest.raises(ResourceException) as refused:
        student.nodes("pve1").qemu(202).status.start.post()
    assert refused.value.status_code == 403
    assert "Permission check failed (/vms/202, VM.PowerMgmt)" in str(refused.value)
    seen = {r["id"]: r for r in student.cluster.resources.get()}
    assert "qemu/201" in seen and "qemu/202" not in seen and not any(i.startswith("storage/") for i in seen)
    assert {r["node"] for r in seen.values() if r["type"] == "node"} == set(NODES)
    assert all("maxmem" not in r for r in seen.values() if r["type"] == "node")  # no Sys.Audit: no figures
    assert [vm["vmid"] for vm in student.nodes("pve1").qemu.get()] == [201]
    everything = {r["id"] for r in api(lab, "pve2").cluster.resources.get()}
    assert {"qemu/201", "qemu/202", "pool/lab1"} <= everything


def test_community_proxmox_access_modules_work_unchanged_with_a_token(lab: Lab, classroom: dict[str, Any]) -> None:
    """proxmox_user_info, proxmox_domain_info and proxmox_group_info (community.proxmox 1.4.0), logged in
    with the grader's PVEAuditor token, as their users most often connect."""
    from .test_ansible_modules import community_module

    login = {"api_host": lab.require_record().spec.node("pve2").link_addr(0), "api_user": "grader@pve",
             "api_token_id": "grade", "api_token_secret": classroom["grade"], "validate_certs": False}
    users = community_module(lab, "community.proxmox.proxmox_user_info", login)
    assert not users["_failed"], users
    assert {"root@pam", "student1@pve", "grader@pve"} <= {u["userid"] for u in users["proxmox_users"]}
    domains = community_module(lab, "community.proxmox.proxmox_domain_info", login)
    assert not domains["_failed"] and {d["realm"] for d in domains["proxmox_domains"]} == {"pam", "pve"}, domains
    api(lab, "pve1").access.groups.post(groupid="students", comment="the class")
    groups = community_module(lab, "community.proxmox.proxmox_group_info", login)
    assert not groups["_failed"] and "students" in {g["groupid"] for g in groups["proxmox_groups"]}, groups


def test_pveum_lists_the_class_and_a_deleted_token_stops_at_once(lab: Lab, classroom: dict[str, Any]) -> None:
    listed = ssh(lab, "pve3", "pveum user list --output-format json")
    assert listed.returncode == 0, listed.stderr
    assert {"student1@pve", "grader@pve", "root@pam"} <= {u["userid"] for u in json.loads(listed.stdout)}
    perms = ssh(lab, "pve3", "pveum user permissions student1@pve --path /vms/201")
    assert "VM.PowerMgmt" in perms.stdout and "Permissions marked with '(*)'" in perms.stdout, perms.stderr
    made = ssh(lab, "pve2", "pveum user token add grader@pve once --privsep 0 --output-format json")
    secret = json.loads(made.stdout)["value"]
    token = client_as(lab, "pve3", "grader@pve", token=("once", secret))
    assert token.version.get()["release"]
    assert ssh(lab, "pve1", "pveum user token delete grader@pve once").returncode == 0
    with pytest.raises(ResourceException) as gone:
        token.version.get()
    assert gone.value.status_code == 401
    assert "grader@pve!once" not in ssh(lab, "pve3", "cat /etc/pve/priv/token.cfg").stdout
