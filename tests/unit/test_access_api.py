"""Access control through its API handlers and the Guard, on a node's files kept in a temporary
directory: who may log in, what each caller may call (checked from the schema's permissions objects,
as the API server checks them), PVE's refusals that write nothing, user.cfg as PVE writes it, and
pveum's tables. The lab suite proves the same over HTTP against real nodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve import version
from pvelab.pve.access import api as access_api
from pvelab.pve.access import guard, pveum, store
from pvelab.pve.api import auth, schema
from pvelab.pve.api.routes import ApiException, Caller, Context, handler_for
from pvelab.pve.cluster import locks
from tests.access_matrix import AUDITOR_PRIVS, expected_allowed

ROOT = Caller("root@pam")
LINUX_SHADOW = "root:$5$saltsalt$Yy2.2bj3M1F.rK3w0GQ.zQuNbmDpFKjq4Lrl5a4b7e7:19000:0:99999:7:::\n"


@pytest.fixture(params=["9", "8"])
def node(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A node's /etc/pve (and its /etc/passwd, /etc/shadow) under tmp_path, for PVE 9 and PVE 8."""
    (tmp_path / "priv" / "lock").mkdir(parents=True)
    for name, path in (("USER_CFG", "user.cfg"), ("DOMAINS_CFG", "domains.cfg"), ("SHADOW_CFG", "priv/shadow.cfg"),
                       ("TOKEN_CFG", "priv/token.cfg")):
        monkeypatch.setattr(store, name, tmp_path / path)
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nstudent:x:1000:1000::/home/s:/bin/sh\n")
    (tmp_path / "shadow").write_text(LINUX_SHADOW)
    monkeypatch.setattr(store, "LINUX_PASSWD", tmp_path / "passwd")
    monkeypatch.setattr(store, "LINUX_SHADOW", tmp_path / "shadow")
    monkeypatch.setattr(locks, "LOCK_DIR", tmp_path / "priv" / "lock")
    monkeypatch.setattr(version, "major", lambda: request.param)
    monkeypatch.setattr(auth, "_key", lambda: b"k" * 32)
    store._parsed.clear()
    yield request.param


def call(method: str, path: str, params: dict[str, Any] | None = None, caller: Caller = ROOT) -> Any:
    """As the API server: the endpoint from the schema, the Guard's check, the parameters verified."""
    found = schema.match(version.major(), method, path)
    assert found is not None, path
    endpoint, values = found
    given = {**(params or {}), **values}
    guard.AccessGuard().check(caller, endpoint.permissions, given)
    typed = schema.verify(endpoint, given, form=False)
    return handler_for(method, endpoint.template, path)(Context(caller, "pve1"), typed)


def refused(method: str, path: str, params: dict[str, Any] | None = None, caller: Caller = ROOT) -> ApiException:
    with pytest.raises((ApiException, schema.ParamError)) as caught:
        call(method, path, params, caller)
    if isinstance(caught.value, schema.ParamError):
        return ApiException(400, "Parameter verification failed.", caught.value.errors)
    return caught.value


def class_setup() -> None:
    """A student limited to a pool holding VM 100, an auditor token, a privsep token without ACLs."""
    call("POST", "/access/users", {"userid": "student1@pve", "password": "student-pass"})
    call("POST", "/pools", {"poolid": "lab1", "comment": "student1's lab"})
    pools = "/pools" if version.major() == "9" else "/pools/lab1"
    call("PUT", pools, {"poolid": "lab1", "vms": "100"})
    call("PUT", "/access/acl", {"path": "/pool/lab1", "users": "student1@pve", "roles": "PVEVMUser"})
    call("POST", "/access/users", {"userid": "grader@pve"})
    call("POST", "/access/users/grader@pve/token/grade", {"privsep": 1})
    call("PUT", "/access/acl", {"path": "/", "tokens": "grader@pve!grade", "roles": "PVEAuditor"})
    call("PUT", "/access/acl", {"path": "/", "users": "grader@pve", "roles": "PVEAuditor"})
    call("POST", "/access/users/grader@pve/token/bare", {"privsep": 1})


def test_a_fresh_node_writes_user_cfg_as_pve_does(node: str) -> None:
    call("POST", "/access/users", {"userid": "alice@pve", "firstname": "Alice", "lastname": "Müller",
                                   "comment": "Ops: on-call 100%", "email": "alice@example.com"})
    call("POST", "/access/groups", {"groupid": "admins", "comment": "System Administrators"})
    call("PUT", "/access/users/alice@pve", {"groups": "admins"})
    call("POST", "/access/roles", {"roleid": "VM_Power", "privs": "VM.PowerMgmt,VM.Console"})
    call("PUT", "/access/acl", {"path": "/", "groups": "admins", "roles": "Administrator"})
    call("PUT", "/access/acl", {"path": "/vms/100", "users": "alice@pve", "roles": "VM_Power", "propagate": 0})
    assert store.USER_CFG.read_text() == (
        "user:alice@pve:1:0:Alice:M%C3%BCller:alice@example.com:Ops%3A on-call 100%25::\n"
        "user:root@pam:1:0::::::\n\n"
        "group:admins:alice@pve:System Administrators:\n\n\n"
        "role:VM_Power:VM.Console,VM.PowerMgmt:\n\n"
        "acl:1:/:@admins:Administrator:\n"
        "acl:0:/vms/100:alice@pve:VM_Power:\n")


def test_a_pool_student_may_use_only_the_pools_guests(node: str) -> None:
    class_setup()
    student = Caller("student1@pve")
    check = guard.AccessGuard().check
    endpoint = schema.match(node, "POST", "/nodes/pve1/qemu/100/status/start")[0]  # type: ignore[index]
    check(student, endpoint.permissions, {"node": "pve1", "vmid": "100"})
    with pytest.raises(ApiException) as other:
        check(student, endpoint.permissions, {"node": "pve1", "vmid": "101"})
    assert other.value.status == 403 and str(other.value) == "Permission check failed (/vms/101, VM.PowerMgmt)"
    assert guard.checker_for("student1@pve")("/vms/100", ["VM.Audit"])
    assert not guard.checker_for("student1@pve")("/vms/101", ["VM.Audit"])
    assert guard.AccessGuard().login("student1@pve", "student-pass") == "student1@pve"
    with pytest.raises(auth.AuthError, match="authentication failure"):
        guard.AccessGuard().login("student1@pve", "wrong-password")


def test_an_auditor_token_reads_and_a_privsep_token_without_acl_does_nothing(node: str) -> None:
    class_setup()
    secrets = store.read_token_secrets()
    auditor = guard.AccessGuard().token(f"grader@pve!grade={secrets['grader@pve!grade']}")
    assert auditor == Caller("grader@pve", "grade")
    assert call("GET", "/access/permissions", {}, auditor)["/"]["Sys.Audit"] == 1
    assert refused("PUT", "/cluster/options", {"keyboard": "de"}, auditor).status == 403
    bare = guard.AccessGuard().token(f"grader@pve!bare={secrets['grader@pve!bare']}")
    assert refused("GET", "/cluster/status", {}, bare).status == 403
    with pytest.raises(auth.AuthError):
        guard.AccessGuard().token("grader@pve!grade=00000000-0000-0000-0000-000000000000")
    call("DELETE", "/access/users/grader@pve/token/grade")
    with pytest.raises(auth.AuthError):  # a deleted token stops working at once
        guard.AccessGuard().token(f"grader@pve!grade={secrets['grader@pve!grade']}")
    assert "grader@pve!grade" not in store.USER_CFG.read_text()


@pytest.mark.parametrize(("method", "path", "params", "status", "message"), [
    ("PUT", "/access/acl", {"path": "/", "users": "root@pam", "roles": "NoSuchRole"}, 500,
     "ACL update failed: role 'NoSuchRole' does not exist"),
    ("PUT", "/access/acl", {"path": "/vms/x y", "users": "root@pam", "roles": "PVEAuditor"}, 400, ""),
    ("PUT", "/access/acl", {"path": "/nonsense", "users": "root@pam", "roles": "PVEAuditor"}, 400, ""),
    ("POST", "/access/users", {"userid": "bob@nowhere"}, 500,
     "create user failed: auth domain 'nowhere' does not exist"),
    ("POST", "/access/users", {"userid": "bob@pve", "password": "short"}, 400, ""),
    ("POST", "/access/users", {"userid": "nobody@pam"}, 500, "does not exist on this node"),
    ("POST", "/access/users/ghost@pve/token/tok", {}, 500, "no such user ('ghost@pve')"),
    ("POST", "/access/roles", {"roleid": "Mine", "privs": "VM.Nonsense"}, 500,
     "create role failed: invalid privilege 'VM.Nonsense'"),
    ("POST", "/access/roles", {"roleid": "PVEMine"}, 400, ""),
    ("PUT", "/access/roles/PVEAuditor", {"privs": "VM.Audit"}, 500,
     "auto-generated role 'PVEAuditor' cannot be modified"),
    ("DELETE", "/access/groups/nope", {}, 500, "delete group failed: group 'nope' does not exist"),
])
def test_bad_input_gets_pves_error_and_writes_nothing(node: str, method: str, path: str, params: dict[str, Any],
                                                      status: int, message: str) -> None:
    call("POST", "/access/users", {"userid": "carol@pve"})
    before = store.USER_CFG.read_text()
    error = refused(method, path, params)
    assert error.status == status and message in str(error) + json.dumps(error.errors)
    assert store.USER_CFG.read_text() == before


def test_a_user_without_rights_may_hand_out_nothing(node: str) -> None:
    class_setup()
    student = Caller("student1@pve")
    error = refused("PUT", "/access/acl", {"path": "/vms/100", "users": "grader@pve", "roles": "PVEVMAdmin"}, student)
    assert error.status == 403
    assert refused("POST", "/access/users", {"userid": "mallory@pve"}, student).status == 403
    assert refused("PUT", "/access/password", {"userid": "grader@pve", "password": "new-password"}, student).status \
        == 403
    call("PUT", "/access/password", {"userid": "student1@pve", "password": "changed-pass"}, student)
    assert guard.AccessGuard().login("student1@pve", "changed-pass") == "student1@pve"


def test_lists_show_what_the_caller_may_see(node: str) -> None:
    class_setup()
    student = Caller("student1@pve")
    assert [u["userid"] for u in call("GET", "/access/users", {}, student)] == ["student1@pve"]
    assert len(call("GET", "/access/users", {})) == 3
    assert call("GET", "/pools", {}, student) == []  # PVEVMUser holds no Pool.Audit
    assert [p["poolid"] for p in call("GET", "/pools", {}, Caller("grader@pve"))] == ["lab1"]
    assert call("GET", "/access/acl", {}, student) == []


def test_pveum_prints_its_tables_as_pve(node: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pveum.main(["user", "list"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[1].split("│")[1:-1] == [
        " userid   ", " comment ", " email ", " enable ", " expire ", " firstname ", " groups ", " keys ",
        " lastname ", " realm-type ", " tfa-locked-until ", " tokens ", " totp-locked "]
    assert "│ root@pam │         │       │ 1      │      0 │" in table
    assert pveum.main(["user", "list", "--output-format", "json"]) == 0
    assert capsys.readouterr().out == '[{"enable":1,"expire":0,"realm-type":"pam","userid":"root@pam"}]\n'
    assert pveum.main(["useradd", "dave@pve", "--comment", "x"]) == 0
    assert pveum.main(["user", "token", "add", "dave@pve", "ci", "--privsep", "0"]) == 0
    assert "│ full-tokenid │ dave@pve!ci" in capsys.readouterr().out
    assert pveum.main(["acl", "modify", "/", "--roles", "PVEAuditor", "--users", "dave@pve"]) == 0
    assert pveum.main(["user", "permissions", "dave@pve", "--path", "/"]) == 0
    out = capsys.readouterr().out
    assert "Sys.Audit (*)" in out and out.endswith("Permissions marked with '(*)' have the 'propagate' flag set.\n")
    assert pveum.main(["role", "add", "Bad", "--privs", "Nope.Nope"]) == 255
    assert "create role failed: invalid privilege 'Nope.Nope'" in capsys.readouterr().err


def test_access_access_paths_pve9_adds_fabrics(node: str) -> None:
    assert access_api.check_path("/sdn/fabrics/f1", node) is (node == "9")
    assert access_api.check_path("/vms/100", node) and not access_api.check_path("/vms/99", node)


# -- the permission matrix: every served endpoint, four callers, expectations from the schema alone --
def served(major: str) -> list[schema.Endpoint]:
    from pvelab.pve.api.routes import handlers

    known = handlers()
    return [e for key, e in sorted(schema.endpoints(major).items()) if key in known]


def sample_params(endpoint: schema.Endpoint) -> dict[str, Any]:
    values = {"node": "pve1", "vmid": "100", "storage": "local", "userid": "grader@pve", "poolid": "lab1",
              "tokenid": "grade", "groupid": "g1", "roleid": "PVEAuditor", "realm": "pve", "path": "/vms/100"}
    return {name: values.get(name, "x") for name in endpoint.properties if name in values}


def test_the_permission_matrix_covers_every_served_endpoint(node: str) -> None:
    class_setup()
    secrets = store.read_token_secrets()
    auditor = guard.AccessGuard().token(f"grader@pve!grade={secrets['grader@pve!grade']}")
    bare = guard.AccessGuard().token(f"grader@pve!bare={secrets['grader@pve!bare']}")
    call("POST", "/access/users", {"userid": "stranger@pve"})
    stranger = Caller("stranger@pve")
    endpoints = served(node)
    assert len(endpoints) >= 150
    wrong = []
    for endpoint in endpoints:
        params = {**sample_params(endpoint), "node": "pve1"}
        for caller, privs in ((stranger, frozenset()), (bare, frozenset()), (auditor, AUDITOR_PRIVS[node]),
                              (ROOT, None)):
            expected = expected_allowed(endpoint.permissions, privs)
            try:
                guard.AccessGuard().check(caller, endpoint.permissions, params)
                allowed = True
            except ApiException as exc:
                allowed = exc.status != 403
            if allowed != expected:
                wrong.append((endpoint.method, endpoint.template, caller.name, allowed))
    assert wrong == []


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve" / "access"


def test_a_user_cfg_written_by_pve_reads_and_writes_back_byte_for_byte(node: str) -> None:
    from pvelab.pve.access import usercfg

    text = (FIXTURES / "user.cfg").read_text()
    cfg = usercfg.parse(text, node)
    assert cfg.warnings == [] and usercfg.write(cfg) == text
    assert cfg.users["alice@pve"]["lastname"] == "Müller" and cfg.vms == {100: "dev", 101: "dev"}
    assert cfg.pools["dev"]["pools"] == {"dev/qa"} and cfg.users["alice@pve"]["tokens"]["monitoring"]["privsep"] == 1


def test_pveum_user_list_on_a_fresh_node_is_pves_table(node: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pveum.main(["user", "list"]) == 0
    assert capsys.readouterr().out == (FIXTURES / "pveum-user-list.txt").read_text()


def test_a_disabled_or_expired_user_cannot_log_in_and_its_ticket_stops(node: str) -> None:
    call("POST", "/access/users", {"userid": "eve@pve", "password": "eve-password"})
    assert guard.AccessGuard().login("eve@pve", "eve-password") == "eve@pve"
    guard.AccessGuard().still_valid("eve@pve")
    call("PUT", "/access/users/eve@pve", {"enable": 0})
    with pytest.raises(auth.AuthError, match="authentication failure"):
        guard.AccessGuard().login("eve@pve", "eve-password")
    with pytest.raises(auth.AuthError, match="Authentication failed!"):
        guard.AccessGuard().still_valid("eve@pve")
    call("PUT", "/access/users/eve@pve", {"enable": 1, "expire": 1})  # expired in 1970
    with pytest.raises(auth.AuthError):
        guard.AccessGuard().login("eve@pve", "eve-password")
    call("PUT", "/access/users/eve@pve", {"expire": 0})
    ticket = auth.make_ticket("eve@pve")
    assert guard.AccessGuard().login("eve@pve", ticket) == "eve@pve"  # a ticket renews itself
    with pytest.raises(auth.AuthError):
        guard.AccessGuard().login("root@pam", ticket)  # but is no one else's
