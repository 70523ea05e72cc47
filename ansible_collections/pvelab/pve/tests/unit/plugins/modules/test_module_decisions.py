"""What each module decides, without a lab: create / no change / check mode / refusals, with a fake
API and a fake SSH runner (tests/unit/fake_pve.py). Check mode must refuse what a real run refuses,
say "would", and change nothing."""

from __future__ import annotations

from typing import Any, Self

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import (
    pve_api,
    pve_cluster_ops,
    pve_corosync_ops,
    pve_quorum_ops,
    pve_storage_ops,
)
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.module_utils.pve_module import run_module
from ansible_collections.pvelab.pve.plugins.modules import pve_cluster, pve_corosync, pve_quorum, pve_storage
from ansible_collections.pvelab.pve.tests.unit.plugins.fake_pve import FakeApi, FakeCluster, FakeSsh, module_params

params = module_params


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster()
    monkeypatch.setattr(FakeApi, "world", cluster, raising=False)
    monkeypatch.setattr(pve_cluster_ops, "PveApi", FakeApi)
    monkeypatch.setattr(pve_storage_ops, "PveApi", FakeApi)
    return cluster


def cluster_params(**given: Any) -> dict[str, Any]:
    return params(pve_cluster.ARGUMENT_SPEC, **{"api_host": "198.18.0.11", "api_password": "pw",
                                                "cluster_name": "labclu", **given})


# -- pve_cluster ----------------------------------------------------------------------------------
def test_create_on_a_standalone_node(world: FakeCluster) -> None:
    result = pve_cluster_ops.ensure_membership(cluster_params(links=["198.18.0.11"]), check_mode=False)
    assert (result["changed"], result["action"], result["task_log"][-1]) == (True, "created", "TASK OK")
    assert world.changes() == [("pve1", "POST", "/cluster/config",
                                {"clustername": "labclu", "nodeid": None, "votes": None, "link0": "198.18.0.11"})]
    assert result["membership"]["cluster"] == "labclu"


def test_create_reads_cluster_status_once_before_and_once_after(world: FakeCluster) -> None:
    pve_cluster_ops.ensure_membership(cluster_params(), check_mode=False)
    reads = [call for call in world.calls if call[2] == "/cluster/status"]
    assert len(reads) == 2


def test_create_in_check_mode_changes_nothing_and_says_would(world: FakeCluster) -> None:
    result = pve_cluster_ops.ensure_membership(cluster_params(), check_mode=True)
    assert result["changed"] is True and "would be created" in result["msg"]
    assert result["diff"]["before"]["cluster"] is None and result["diff"]["after"]["cluster"] == "labclu"
    assert world.changes() == []


def test_a_member_of_the_named_cluster_is_no_change(world: FakeCluster) -> None:
    world.form("labclu", "pve1", "pve2")
    for check_mode in (False, True):
        result = pve_cluster_ops.ensure_membership(cluster_params(), check_mode=check_mode)
        assert (result["changed"], result["action"]) == (False, "none")
    assert world.changes() == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_member_of_another_cluster_is_refused_even_in_check_mode(world: FakeCluster, check_mode: bool) -> None:
    world.form("other", "pve1")
    with pytest.raises(PveError, match="pve1 is already a member of cluster 'other'.*pvecm delnode"):
        pve_cluster_ops.ensure_membership(cluster_params(), check_mode=check_mode)
    assert world.changes() == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_joining_through_a_node_outside_any_cluster_is_refused(world: FakeCluster, check_mode: bool) -> None:
    with pytest.raises(PveError, match="join_host '198.18.0.11' is not in a cluster"):
        pve_cluster_ops.ensure_membership(cluster_params(api_host="198.18.0.12", join_host="198.18.0.11"),
                                          check_mode=check_mode)
    assert world.changes() == []


def test_join_through_any_member_of_the_cluster(world: FakeCluster) -> None:
    world.form("labclu", "pve1", "pve2")
    result = pve_cluster_ops.ensure_membership(cluster_params(api_host="198.18.0.13", join_host="198.18.0.12"),
                                               check_mode=False)
    assert (result["changed"], result["action"]) == (True, "joined")
    (node, method, path, sent), = world.changes()
    assert (node, method, path, sent["hostname"]) == ("pve3", "POST", "/cluster/config/join", "198.18.0.12")


def test_joining_an_inquorate_cluster_is_refused(world: FakeCluster) -> None:
    world.form("labclu", "pve1")
    world.quorate = False
    with pytest.raises(PveError, match="has no quorum"):
        pve_cluster_ops.ensure_membership(cluster_params(api_host="198.18.0.12", join_host="198.18.0.11"),
                                          check_mode=True)


def test_a_bad_cluster_name_is_refused_before_anything_is_read(world: FakeCluster) -> None:
    with pytest.raises(PveError, match="cluster_name 'name-longer-than-15' is not valid"):
        pve_cluster_ops.ensure_membership(cluster_params(cluster_name="name-longer-than-15"), check_mode=True)
    assert world.calls == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_removing_an_online_node_is_refused_even_in_check_mode(world: FakeCluster, check_mode: bool) -> None:
    world.form("labclu", "pve1", "pve2", "pve3")
    with pytest.raises(PveError, match="node 'pve3' is still online"):
        pve_cluster_ops.ensure_membership(cluster_params(state="absent", node="pve3"), check_mode=check_mode)
    assert world.changes() == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_removing_the_node_you_talk_to_is_refused_even_in_check_mode(world: FakeCluster, check_mode: bool) -> None:
    world.form("labclu", "pve1", "pve2", "pve3")
    world.online.discard("pve1")
    with pytest.raises(PveError, match="cannot remove 'pve1' through its own API"):
        pve_cluster_ops.ensure_membership(cluster_params(state="absent", node="pve1"), check_mode=check_mode)


def test_removing_an_offline_node(world: FakeCluster) -> None:
    world.form("labclu", "pve1", "pve2", "pve3")
    world.online.discard("pve3")
    preview = pve_cluster_ops.ensure_membership(cluster_params(state="absent", node="pve3"), check_mode=True)
    assert preview["changed"] is True and "would be removed" in preview["msg"] and world.changes() == []
    done = pve_cluster_ops.ensure_membership(cluster_params(state="absent", node="pve3"), check_mode=False)
    assert done["membership"]["nodes"] == ["pve1", "pve2"]
    assert world.changes() == [("pve1", "DELETE", "/cluster/config/nodes/pve3", {})]
    again = pve_cluster_ops.ensure_membership(cluster_params(state="absent", node="pve3"), check_mode=False)
    assert again["changed"] is False


def test_ssh_join_uses_the_timeout_option(world: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    world.form("labclu", "pve1")
    seen: dict[str, Any] = {}

    class Runner:
        host = "198.18.0.12"

        @classmethod
        def from_params(cls, p: dict[str, Any], host: str) -> Self:
            return cls()

        def run(self, command: str, stdin: str | None = None, timeout: float = 300) -> tuple[int, str, str]:
            seen.update(command=command, timeout=timeout)
            return 0, "successfully added node 'pve2' to cluster.\n", ""

        def close(self) -> None:
            seen["closed"] = True

    monkeypatch.setattr(pve_cluster_ops, "SshRunner", Runner)
    pve_cluster_ops.ensure_membership(cluster_params(api_host="198.18.0.12", join_host="198.18.0.11",
                                                     join_method="ssh", timeout=42), check_mode=False)
    assert seen["timeout"] == 42 and seen["command"].startswith("pvecm add 198.18.0.11 --fingerprint ")
    assert seen["closed"]


# -- pve_corosync ---------------------------------------------------------------------------------
def corosync(monkeypatch: pytest.MonkeyPatch, ssh: FakeSsh, check_mode: bool, **given: Any) -> dict[str, Any]:
    monkeypatch.setattr(pve_corosync_ops, "SshRunner", type("R", (), {"from_params": staticmethod(lambda p, h: ssh)}))
    return pve_corosync_ops.ensure(params(pve_corosync.ARGUMENT_SPEC, api_host="198.18.0.11", verify_timeout=1,
                                          **given), check_mode)


def test_corosync_priorities_applied_then_no_change(monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = FakeSsh()
    assert corosync(monkeypatch, ssh, False, link_priorities={"1": 20})["changed"] is False  # the fixture's own
    done = corosync(monkeypatch, ssh, False, link_priorities={"1": 25})
    assert done["changed"] is True and done["config_version"] == 4
    assert "knet_link_priority: 25" in ssh.conf and "config_version: 4" in ssh.conf
    again = corosync(monkeypatch, ssh, False, link_priorities={"1": 25})
    assert again == {"changed": False, "config_version": 4}


def test_corosync_check_mode_shows_the_diff_and_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = FakeSsh()
    preview = corosync(monkeypatch, ssh, True, totem={"token": 5000})
    assert preview["changed"] is True and preview["config_version"] == 4
    assert "token: 5000" in preview["diff"]["after"] and "token: 5000" not in preview["diff"]["before"]
    assert ssh.writes() == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_corosync_refuses_without_quorum_even_in_check_mode(monkeypatch: pytest.MonkeyPatch, check_mode: bool) -> None:
    ssh = FakeSsh(status="pvecm-status-inquorate.txt")
    with pytest.raises(PveError, match="is not quorate"):
        corosync(monkeypatch, ssh, check_mode, totem={"token": 5000})
    assert ssh.writes() == []


@pytest.mark.parametrize("given,message", [
    ({"link_priorities": {"1": "high"}}, "link_priorities value 'high' of link1 is not a number"),
    ({"link_priorities": {"fast": 5}}, "link_priorities key 'fast' is not a link number"),
    ({"link_priorities": {"7": 5}}, "link_priorities names link7"),
    ({"totem": {"token": {"a": 1}}}, "totem option 'token' must be a single value"),
    ({"totem": {"cluster_name": "x"}}, "totem option 'cluster_name' is managed by PVE"),
    ({"links": {"pve2": ["198.18.0.99", "198.18.1.99"]}}, "every link address of 'pve2' at once"),
])
def test_corosync_bad_values_are_clear_errors(monkeypatch: pytest.MonkeyPatch, given: dict[str, Any],
                                              message: str) -> None:
    ssh = FakeSsh()
    with pytest.raises(PveError, match=message):
        corosync(monkeypatch, ssh, True, **given)
    assert ssh.writes() == []


def test_corosync_timeout_after_the_file_was_replaced_reports_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = FakeSsh(corosync_takes_new_config=False)
    with pytest.raises(PveError, match="corosync.conf was replaced") as err:
        corosync(monkeypatch, ssh, False, totem={"token": 5000})
    assert err.value.result["changed"] is True and err.value.result["config_version"] == 4


class FakeModule:
    def __init__(self, check_mode: bool = False, diff: bool = False) -> None:
        self.params: dict[str, Any] = {}
        self.check_mode, self._diff = check_mode, diff
        self.warnings: list[str] = []
        self.exit: dict[str, Any] = {}

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def fail_json(self, **kwargs: Any) -> None:
        self.exit = {"failed": True, **kwargs}
        raise SystemExit(1)

    def exit_json(self, **kwargs: Any) -> None:
        self.exit = kwargs
        raise SystemExit(0)


def test_run_module_fails_with_the_partial_result() -> None:
    module = FakeModule()

    def work(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        raise PveError("timed out", {"changed": True, "config_version": 4, "diff": {"before": "a", "after": "b"}})

    with pytest.raises(SystemExit):
        run_module(module, work)
    assert module.exit["failed"] and module.exit["changed"] is True and module.exit["config_version"] == 4
    assert module.exit["msg"] == "timed out" and "PveError" in module.exit["exception"]
    assert "diff" not in module.exit  # only under --diff


# -- pve_quorum -----------------------------------------------------------------------------------
def quorum(monkeypatch: pytest.MonkeyPatch, ssh: FakeSsh, check_mode: bool, **given: Any) -> dict[str, Any]:
    monkeypatch.setattr(pve_quorum_ops, "SshRunner", type("R", (), {"from_params": staticmethod(lambda p, h: ssh)}))
    return pve_quorum_ops.set_expected(params(pve_quorum.ARGUMENT_SPEC, api_host="198.18.0.13", **given), check_mode)


@pytest.mark.parametrize("check_mode", [False, True])
def test_quorum_refuses_without_the_acknowledgement(monkeypatch: pytest.MonkeyPatch, check_mode: bool) -> None:
    ssh = FakeSsh(status="pvecm-status-inquorate.txt")
    with pytest.raises(PveError, match="accept_split_brain_risk: true"):
        quorum(monkeypatch, ssh, check_mode, expected=1)
    assert ssh.commands == []


def test_quorum_check_mode_says_would_and_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = FakeSsh(status="pvecm-status-inquorate.txt")
    result = quorum(monkeypatch, ssh, True, expected=1, accept_split_brain_risk=True)
    assert result["changed"] is True and result["quorate"] is True and "would be set to 1" in result["msg"]
    assert "would count as quorate" in result["warnings"][0] and "now counts" not in result["warnings"][0]
    assert ssh.expected is None


def test_quorum_applies_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = FakeSsh(status="pvecm-status-inquorate.txt")
    result = quorum(monkeypatch, ssh, False, expected=1, accept_split_brain_risk=True)
    assert ssh.expected == 1 and "now counts as quorate" in result["warnings"][0]


def test_quorum_no_change_when_expected_already_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    ssh = FakeSsh()
    result = quorum(monkeypatch, ssh, False, expected=3, accept_split_brain_risk=True)
    assert result["changed"] is False and ssh.expected is None


# -- the task waiter ------------------------------------------------------------------------------
class TaskApi(pve_api.PveApi):
    def __init__(self, exitstatus: str) -> None:
        super().__init__("198.18.0.11")
        self.exitstatus = exitstatus

    def get(self, path: str, **params: Any) -> Any:
        if path.endswith("/status"):
            return {"status": "stopped", "exitstatus": self.exitstatus}
        return [{"n": 1, "t": "WARN: something odd"}, {"n": 2, "t": f"TASK {self.exitstatus}"}]


@pytest.mark.parametrize("exitstatus", ["OK", "WARNINGS: 1"])
def test_a_task_with_warnings_is_a_success(exitstatus: str) -> None:
    log = TaskApi(exitstatus).wait_for_task("pve1", "UPID:pve1:x", timeout=1)
    assert log[-1] == f"TASK {exitstatus}"


def test_a_failed_task_raises_with_its_log() -> None:
    with pytest.raises(PveError, match="failed: cluster config already exists") as err:
        TaskApi("cluster config already exists").wait_for_task("pve1", "UPID:pve1:x", timeout=1)
    assert "WARN: something odd" in str(err.value)


# -- pve_storage ----------------------------------------------------------------------------------
def storage_params(**given: Any) -> dict[str, Any]:
    return params(pve_storage.ARGUMENT_SPEC, **{"api_host": "198.18.0.11", "api_password": "pw", **given})


SHARE = {"storage": "labshare", "type": "dir", "path": "/mnt/lab-shared", "shared": True,
         "content": ["images", "backup"]}


def test_storage_created_then_no_change(world: FakeCluster) -> None:
    preview = pve_storage_ops.ensure(storage_params(**SHARE), check_mode=True)
    assert preview["changed"] is True and "would be created" in preview["msg"] and world.changes() == []
    made = pve_storage_ops.ensure(storage_params(**SHARE), check_mode=False)
    assert made["config"] == {"type": "dir", "path": "/mnt/lab-shared", "shared": "1", "content": "backup,images"}
    assert world.changes() == [("pve1", "POST", "/storage", {
        "storage": "labshare", "type": "dir", "path": "/mnt/lab-shared", "shared": "1", "content": "backup,images"})]
    again = pve_storage_ops.ensure(storage_params(**SHARE), check_mode=False)
    assert again["changed"] is False and len(world.changes()) == 1


def test_storage_update_sends_only_the_difference_with_the_digest(world: FakeCluster) -> None:
    result = pve_storage_ops.ensure(storage_params(storage="local", content=["backup", "iso", "vztmpl",
                                                                             "snippets"]), check_mode=False)
    assert result["diff"]["before"]["content"] == "backup,iso,vztmpl"
    assert world.changes() == [("pve1", "PUT", "/storage/local",
                                        {"digest": "d" * 40, "content": "backup,iso,snippets,vztmpl"})]


@pytest.mark.parametrize("given,message", [
    ({"storage": "local", "path": "/srv"}, "path of storage 'local' cannot change once it exists"),
    ({"storage": "local-lvm", "type": "dir"}, "storage 'local-lvm' is a 'lvmthin' storage, not 'dir'"),
    ({"storage": "local-lvm", "shared": True}, "shared does not apply to a 'lvmthin' storage"),
    ({"storage": "new"}, "storage 'new' does not exist yet: give its type"),
    ({"storage": "new", "type": "lvmthin", "vgname": "pve"}, "needs thinpool to be created"),
    ({"storage": "san", "type": "iscsidirect", "portal": "198.18.0.5"}, "needs target to be created"),
    ({"storage": "san", "type": "iscsidirect", "portal": "198.18.0.5", "target": "iqn.x:y", "shared": True},
     "shared does not apply to a 'iscsidirect' storage"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_storage_refusals_come_before_check_mode(world: FakeCluster, given: dict[str, Any], message: str,
                                                 check_mode: bool) -> None:
    with pytest.raises(PveError, match=message):
        pve_storage_ops.ensure(storage_params(**given), check_mode=check_mode)
    assert world.changes() == []


def test_an_iscsidirect_storage_is_made_with_its_portal_and_target(world: FakeCluster) -> None:
    san = {"storage": "san", "type": "iscsidirect", "portal": "198.18.0.5", "target": "iqn.2026-12.test.pvelab:nas.s1",
           "content": ["images"]}
    pve_storage_ops.ensure(storage_params(**san), check_mode=False)
    assert world.changes() == [("pve1", "POST", "/storage", {
        "storage": "san", "type": "iscsidirect", "portal": "198.18.0.5", "target": "iqn.2026-12.test.pvelab:nas.s1",
        "content": "images"})]
    with pytest.raises(PveError, match="target of storage 'san' cannot change once it exists"):
        pve_storage_ops.ensure(storage_params(**{**san, "target": "iqn.2026-12.test.pvelab:nas.s2"}), False)


def test_an_nfs_storage_is_made_with_its_server_and_export_and_pves_path_stays(world: FakeCluster) -> None:
    nas = {"storage": "nas", "type": "nfs", "server": "198.18.0.5", "export": "/vmstore", "content": ["iso", "backup"],
           "mount_options": "vers=3"}
    pve_storage_ops.ensure(storage_params(**nas), check_mode=False)
    assert world.changes() == [("pve1", "POST", "/storage", {
        "storage": "nas", "type": "nfs", "server": "198.18.0.5", "export": "/vmstore", "content": "backup,iso",
        "options": "vers=3"})]
    world.storages["nas"]["path"] = "/mnt/pve/nas"  # what PVE chose
    assert pve_storage_ops.ensure(storage_params(**nas), check_mode=False)["changed"] is False
    for changed, message in (({"export": "/other"}, "export of storage 'nas' cannot change"),
                             ({"path": "/mnt/elsewhere"}, "path of storage 'nas' cannot change")):
        with pytest.raises(PveError, match=message):
            pve_storage_ops.ensure(storage_params(**{**nas, **changed}), check_mode=True)
    with pytest.raises(PveError, match="a 'nfs' storage needs export to be created"):
        pve_storage_ops.ensure(storage_params(storage="nas2", type="nfs", server="198.18.0.5"), check_mode=True)


def test_storage_absent(world: FakeCluster) -> None:
    assert pve_storage_ops.ensure(storage_params(storage="nope", state="absent"), False)["changed"] is False
    preview = pve_storage_ops.ensure(storage_params(storage="local-lvm", state="absent"), True)
    assert preview["changed"] is True and "would be removed" in preview["msg"] and world.changes() == []
    pve_storage_ops.ensure(storage_params(storage="local-lvm", state="absent"), False)
    assert "local-lvm" not in world.storages
