"""The access modules (pve_user, pve_group, pve_role, pve_acl, pve_token, pve_pool) against the real
access handlers in-process, on a node's files in a temporary directory: idempotent, check mode that
changes nothing and tells the truth, diffs, refusals before the check-mode return."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_access_ops as ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_acl, pve_group, pve_pool, pve_role, pve_token, pve_user
from pvelab.pve.access import store
from pvelab.pve.resources import pools
from tests.unit.test_access_api import call, node  # noqa: F401 - the fixture of a node's files


class InProcessApi:
    """PveApi's calls answered by the access handlers, as root@pam (the modules' usual login)."""

    def __init__(self, major: str) -> None:
        self.major = major

    def get(self, path: str, /, **params: Any) -> Any:
        return call("GET", path, params)

    def post(self, path: str, /, **params: Any) -> Any:
        return call("POST", path, params)

    def put(self, path: str, /, **params: Any) -> Any:
        return call("PUT", path, params)

    def delete(self, path: str, /, **params: Any) -> Any:
        return call("DELETE", path, params)

    def major_version(self) -> int:
        return int(self.major)


GUESTS = (110, 120)  # the cluster's guests (a pool lists only guests that exist, as PVE's does)


@pytest.fixture
def api(node: str, monkeypatch: pytest.MonkeyPatch) -> InProcessApi:  # noqa: F811
    fake = InProcessApi(node)
    monkeypatch.setattr(ops.PveApi, "from_params", classmethod(lambda cls, params, host=None: fake))
    monkeypatch.setattr(pools, "per_node", lambda ctx, sections: {})
    monkeypatch.setattr(pools, "guest_entries", lambda nodes: [
        {"id": f"qemu/{vmid}", "vmid": vmid, "type": "qemu", "node": "pve1", "status": "running"} for vmid in GUESTS])
    monkeypatch.setattr(pools.storage_config, "read", lambda: {})
    monkeypatch.setattr(pools.guest_store, "vmlist", lambda: {vmid: {"node": "pve1"} for vmid in GUESTS})
    return fake


def params(module: Any, **given: Any) -> dict[str, Any]:
    spec = module.ARGUMENT_SPEC
    return {name: given.get(name, option.get("default")) for name, option in spec.items()}


def run_twice(ensure: Any, p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Check mode, then for real, then again: (checked, done, again)."""
    before = store.USER_CFG.read_text() if store.USER_CFG.exists() else ""
    checked = ensure(p, True)
    assert (store.USER_CFG.read_text() if store.USER_CFG.exists() else "") == before, "check mode wrote"
    done = ensure(p, False)
    return checked, done, ensure(p, False)


def test_a_students_account_pool_and_acl_converge_and_stay(api: InProcessApi) -> None:
    checked, done, again = run_twice(ops.ensure_group, params(pve_group, groupid="students", comment="PVE-101"))
    assert checked["changed"] and done["changed"] and not again["changed"]
    user = params(pve_user, userid="student1@pve", password="student-pass", groups=["students"], comment="S1")
    checked, done, again = run_twice(ops.ensure_user, user)
    assert checked["changed"] and checked["diff"]["after"]["groups"] == ["students"] and not again["changed"]
    assert done["diff"] == checked["diff"]
    pool = params(pve_pool, poolid="lab1", vms=[110, 120], comment="student1")
    checked, done, again = run_twice(ops.ensure_pool, pool)
    assert checked["diff"]["after"]["vms"] == [110, 120] and not again["changed"]
    acl = params(pve_acl, path="/pool/lab1", roles=["PVEVMUser"], users=["student1@pve"])
    checked, done, again = run_twice(ops.ensure_acl, acl)
    assert checked["changed"] and not again["changed"]
    assert "acl:1:/pool/lab1:student1@pve:PVEVMUser:" in store.USER_CFG.read_text()
    shrunk = ops.ensure_pool(params(pve_pool, poolid="lab1", vms=[120]), False)
    assert shrunk["diff"]["before"]["vms"] == [110, 120] and shrunk["diff"]["after"]["vms"] == [120]
    changed = ops.ensure_user(params(pve_user, userid="student1@pve", comment="moved", groups=[]), False)
    assert changed["diff"]["after"] == {**changed["diff"]["before"], "comment": "moved", "groups": []}
    gone = ops.ensure_acl(params(pve_acl, path="/pool/lab1", roles=["PVEVMUser"], users=["student1@pve"],
                                 state="absent"), False)
    assert gone["changed"] and "acl:" not in store.USER_CFG.read_text()


def test_a_token_secret_comes_once_and_a_role_is_exact(api: InProcessApi) -> None:
    ops.ensure_user(params(pve_user, userid="grader@pve"), False)
    token = params(pve_token, userid="grader@pve", tokenid="grade")
    checked, done, again = run_twice(ops.ensure_token, token)
    assert "secret" not in checked and len(done["secret"]) == 36 and "secret" not in again
    assert store.read_token_secrets()["grader@pve!grade"] == done["secret"]
    role = params(pve_role, roleid="PowerOnly", privs=["VM.PowerMgmt", "VM.Audit"])
    checked, done, again = run_twice(ops.ensure_role, role)
    assert checked["diff"]["after"] == {"privs": ["VM.Audit", "VM.PowerMgmt"]} and not again["changed"]
    assert ops.ensure_token({**token, "state": "absent"}, False)["changed"]
    assert "grader@pve!grade" not in store.read_token_secrets()


@pytest.mark.parametrize(("ensure", "module", "given", "message"), [
    (ops.ensure_user, pve_user, {"userid": "student1"}, "needs its realm"),
    (ops.ensure_user, pve_user, {"userid": "s@pve", "groups": ["nope"]}, "group nope does not exist"),
    (ops.ensure_role, pve_role, {"roleid": "PVEAuditor", "privs": ["VM.Audit"]}, "built-in roles"),
    (ops.ensure_role, pve_role, {"roleid": "Mine", "privs": ["VM.Nope"]}, "unknown privilege VM.Nope"),
    (ops.ensure_acl, pve_acl, {"path": "/", "roles": ["PVEAuditor"]}, "at least one of users, groups or tokens"),
    (ops.ensure_acl, pve_acl, {"path": "/", "roles": ["Nope"], "users": ["root@pam"]}, "role Nope does not exist"),
    (ops.ensure_token, pve_token, {"userid": "ghost@pve", "tokenid": "t1"}, "user 'ghost@pve' does not exist"),
])
def test_refusals_come_before_check_mode_and_name_the_fix(api: InProcessApi, ensure: Any, module: Any,
                                                          given: dict[str, Any], message: str) -> None:
    with pytest.raises(PveError, match=message):
        ensure(params(module, **given), True)
