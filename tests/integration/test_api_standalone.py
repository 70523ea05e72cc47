"""The REST API of nodes outside any cluster, with proxmoxer, on nodes of the run's
PVE version: version, logins, PVE's answers outside a cluster, parameter checks, what a student
sees first on a fresh node, a bridge made and removed through the network API, and the permission
matrix (every served method and path, three callers without write rights). Nothing here changes a node
beyond the accounts the matrix adds (the bridge is gone again), so the tests hold in any order."""

from __future__ import annotations

import pytest
from proxmoxer.core import AuthenticationError, ResourceException

from pvelab.procfs import cpuinfo
from pvelab.twin.drive import ssh
from pvelab.twin.lab import Lab

from .conftest import api, check_every_get, client_as, pve_version, wait_for_task

pytestmark = [pytest.mark.lab, pytest.mark.smoke, pytest.mark.pve8]


def test_version_reports_the_chosen_pve_major(lab: Lab) -> None:
    version = pve_version()
    assert lab.require_record().spec.pve_version == version
    data = api(lab, "pve1").version.get()
    assert data["release"].startswith(version + ".")
    assert ssh(lab, "pve1", "pveversion").stdout.startswith(f"pve-manager/{version}.")
    debian = {"8": "12", "9": "13"}[version]  # PVE 8 sits on Debian 12 (bookworm), PVE 9 on 13 (trixie)
    assert f'VERSION_ID="{debian}"' in ssh(lab, "pve1", "cat /etc/os-release").stdout


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


def test_cluster_config_outside_a_cluster_answers_like_pve(lab: Lab) -> None:
    """PVE answers null for totem and [] for nodes there (community.proxmox's proxmox_cluster reads totem
    before it creates a cluster)."""
    assert api(lab, "pve1").cluster.config.totem.get() is None
    assert api(lab, "pve1").cluster.config.nodes.get() == []


def test_every_get_answers_as_the_schema_says_on_a_standalone_node(lab: Lab) -> None:
    answered = check_every_get(lab, "pve2")
    assert {"GET /version", "GET /nodes/{node}/status", "GET /cluster/status", "GET /cluster/config/totem",
            "GET /cluster/config/nodes", "GET /nodes"} <= set(answered)
    assert {key: problems for key, problems in answered.items() if problems} == {}


def test_a_fresh_node_shows_what_a_fresh_pve_node_shows(lab: Lab) -> None:
    """No failed unit, PVE's package list with versions, the host's real CPU in the node's status."""
    failed = ssh(lab, "pve1", "systemctl --failed --plain --no-legend")
    assert failed.returncode == 0 and failed.stdout.strip() == "", failed.stdout
    verbose = ssh(lab, "pve1", "pveversion -v").stdout.splitlines()
    assert verbose[0].startswith(f"proxmox-ve: {pve_version()}.") and "(running kernel: " in verbose[0]
    assert verbose[1].startswith(f"pve-manager: {pve_version()}.") and "(running version: " in verbose[1]
    assert any(line.startswith("corosync: 3.") for line in verbose), verbose
    assert any(line.startswith("pve-qemu-kvm: ") for line in verbose) and len(verbose) > 10, verbose
    cpu = api(lab, "pve1").nodes("pve1").status.get()["cpuinfo"]
    host = cpuinfo()
    assert (cpu["model"], cpu["cpus"], cpu["mhz"]) == (host["model"], host["cpus"], host["mhz"]) != ("lab twin", 0, "0")


@pytest.mark.skipif(pve_version() != "9", reason="lab time: runs once per CI run, on PVE 9 nodes (the network code "
                                                "is the same on 8, where it passed in run S)")
def test_a_bridge_made_through_the_network_api_exists_once_the_network_is_reloaded(lab: Lab) -> None:
    """PVE's flow: the edit waits in interfaces.new (listed, not yet in the kernel), a reload (a
    srvreload task) makes the bridge with its address, deleting it and reloading removes it again."""
    network = api(lab, "pve3").nodes("pve3").network
    address = "198.19.250.13/24"  # lab space no lab uses; nothing is ever sent there
    network.post(iface="vmbr9", type="bridge", cidr=address, autostart=1, comments="made by a test")
    assert network("vmbr9").get()["cidr"] == address
    assert ssh(lab, "pve3", "ip link show vmbr9").returncode != 0  # pending until the reload
    assert "+auto vmbr9" in ssh(lab, "pve3", "diff -u /etc/network/interfaces /etc/network/interfaces.new").stdout
    status = wait_for_task(api(lab, "pve3"), "pve3", network.put())
    assert status["exitstatus"] == "OK" and status["type"] == "srvreload", status
    shown = ssh(lab, "pve3", "ip -o addr show dev vmbr9; ip -d link show vmbr9").stdout
    assert f"inet {address}" in shown and "bridge" in shown, shown
    assert ssh(lab, "pve3", "test ! -e /etc/network/interfaces.new && grep -c vmbr9 /etc/network/interfaces"
               ).stdout.strip() == "2"  # auto + iface lines, now running
    network("vmbr9").delete()
    assert wait_for_task(api(lab, "pve3"), "pve3", network.put())["exitstatus"] == "OK"
    assert ssh(lab, "pve3", "ip link show vmbr9").returncode != 0
    assert {i["iface"] for i in network.get(type="any_bridge")} == {"vmbr0"}


def test_the_node_pages_show_the_node_itself(lab: Lab) -> None:
    """Services as systemd has them (a restart is a srvrestart task), the journal's range with its
    cursors, the system log's total, the time zone, DNS and hosts as the node's files hold them."""
    node = api(lab, "pve2").nodes("pve2")
    services = {s["service"]: s for s in node.services.get()}
    assert services["pveproxy"]["state"] == "running" and services["pve-cluster"]["active-state"] == "active"
    assert services["pvedaemon"]["unit-state"] == "not-found"  # the twin's pveproxy serves its calls too
    status = wait_for_task(api(lab, "pve2"), "pve2", node.services("pvescheduler").restart.post())
    assert (status["exitstatus"], status["type"]) == ("OK", "srvrestart"), status
    assert node.services("pvescheduler").state.get()["state"] == "running"
    lines = node.journal.get(lastentries=20)
    assert lines[0].startswith("s=") and lines[-1].startswith("s=") and len(lines) == 22, lines
    assert any("pve2 " in line for line in lines[1:-1])
    assert node.syslog.get(limit=5)[0]["n"] == 1
    assert node.time.get()["timezone"] == ssh(lab, "pve2", "timedatectl show -p Timezone --value").stdout.strip()
    assert "pve2" in node.hosts.get()["data"]
    assert node.subscription.get()["status"] == "notfound"


@pytest.mark.skipif(pve_version() != "9", reason="lab time: runs once per CI run, on PVE 9 nodes (the network code "
                                                "is the same on 8, where it passed in run S)")
def test_the_network_module_makes_an_isolated_bridge_once_and_removes_it(lab: Lab) -> None:
    """pvelab.pve.pve_network as a nested lab uses it: a bridge without ports, applied; the same again
    changes nothing; check mode shows a change and makes none; absent takes it from the kernel too."""
    from .test_ansible_modules import api_args, module

    bridge = {**api_args(lab, "pve3"), "node": "pve3", "iface": "vmbr7", "bridge_ports": [],
              "comments": "student7 link0"}
    made = module(lab, "pvelab.pve.pve_network", bridge, diff=True)
    assert made["changed"] and not made["_failed"] and made["reload_log"][-1] == "TASK OK", made
    assert ssh(lab, "pve3", "ip -d link show vmbr7").stdout.count("bridge") >= 1
    assert module(lab, "pvelab.pve.pve_network", bridge)["changed"] is False
    preview = module(lab, "pvelab.pve.pve_network", {**bridge, "cidr": "198.19.251.13/24"}, check=True)
    assert preview["changed"] and "would be changed" in preview["msg"]
    assert "cidr" not in api(lab, "pve3").nodes("pve3").network("vmbr7").get()
    gone = module(lab, "pvelab.pve.pve_network", {**bridge, "state": "absent"})
    assert gone["changed"] and ssh(lab, "pve3", "ip link show vmbr7").returncode != 0


STUDENT_PASSWORD = "stranger-pass"  # noqa: S105 - a lab account's password


@pytest.fixture(scope="module")
def accounts(lab: Lab) -> dict[str, str]:
    """A user without any right, the grader's privsep PVEAuditor token, a privsep token without ACLs."""
    root = api(lab, "pve1")
    root.access.users.post(userid="stranger@pve", password=STUDENT_PASSWORD)
    root.access.users.post(userid="grader@pve", comment="the grader")
    grade = root.access.users("grader@pve").token("grade").post(privsep=1)
    root.access.acl.put(path="/", users="grader@pve", roles="PVEAuditor")
    root.access.acl.put(path="/", tokens="grader@pve!grade", roles="PVEAuditor")
    bare = root.access.users("grader@pve").token("bare").post(privsep=1)
    return {"grade": grade["value"], "bare": bare["value"]}


# Handlers of `user: all` methods that check for themselves, as the schema's descriptions say: the task
# of another user needs Sys.Audit on its node (the sample task is root@pam's); reading a volume needs a
# right on its storage (the sample is an ISO volume, no guest's).
HANDLER_CHECKS = {("GET", "/nodes/{node}/tasks/{upid}/status"): "Sys.Audit",
                  ("GET", "/nodes/{node}/tasks/{upid}/log"): "Sys.Audit",
                  ("GET", "/nodes/{node}/storage/{storage}/content/{volume}"): "Datastore.Audit",
                  # a replication job's guest is in its id (VMID-N): VM.Audit on /vms/VMID
                  ("GET", "/cluster/replication/{id}"): "VM.Audit",
                  ("GET", "/nodes/{node}/replication/{id}/status"): "VM.Audit",
                  ("GET", "/nodes/{node}/replication/{id}/log"): "VM.Audit"}


WRITES_OPEN_TO = {("PUT", "/nodes/{node}/storage/{storage}/content/{volume}"): ("Datastore.Audit",
                                                                                  "Datastore.AllocateSpace")}


# what one endpoint needs beside the shared body to get past PVE's parameter check to its own
BODY_FOR = {("POST", "/cluster/replication"): {"id": "201-0", "target": "pve1", "type": "local"}}


def test_the_permission_matrix_over_http(lab: Lab, accounts: dict[str, str]) -> None:
    """Every served method and path, called on pve1 as a user without rights, as a privilege-separated
    token without ACLs and as the grader's PVEAuditor token: PVE's 403 exactly where the schema's
    permissions say so (write methods open to `all` check in their handlers and refuse all three)."""
    from pvelab.pve.api.schema import endpoints
    from tests.access_matrix import AUDITOR_PRIVS, expected_allowed

    upid = "UPID:pve1:00000001:00000001:00000001:qmstart:100:root@pam:"  # root's (the handler checks the owner)
    values = {"node": "pve1", "vmid": "201", "storage": "local", "userid": "grader@pve", "tokenid": "grade",
              "poolid": "lab1", "groupid": "nogroup", "roleid": "PVEAuditor", "realm": "pve", "upid": upid,
              "volume": "local:iso%2Fnone.iso", "id": "201-0", "sid": "vm:201", "rule": "norule", "group": "nogroup",
              "name": "nopool", "monid": "pve1", "osdid": "0", "flag": "noout", "iface": "vmbr0",
              "service": "pveproxy"}
    body = {"vmid": 299, "ostemplate": "local:vztmpl/none.tar.zst", "poolid": "lab1", "userid": "grader@pve",
            "path": "/", "roles": "PVEAuditor", "users": "stranger@pve", "password": "new-password"}
    callers = {"stranger@pve": (client_as(lab, "pve1", "stranger@pve", STUDENT_PASSWORD), frozenset()),
               "grader@pve!bare": (client_as(lab, "pve1", "grader@pve", token=("bare", accounts["bare"])),
                                   frozenset()),
               "grader@pve!grade": (client_as(lab, "pve1", "grader@pve", token=("grade", accounts["grade"])),
                                    AUDITOR_PRIVS[pve_version()])}
    served = [e for e in endpoints(pve_version()).values()
              if (e.permissions or {}).get("user") != "world"]  # the login box's calls need no credentials
    wrong = []
    for endpoint in served:
        path = endpoint.template
        for name, value in values.items():
            path = path.replace(f"{{{name}}}", value)
        for caller, (client, privs) in callers.items():
            expected = expected_allowed(endpoint.permissions, privs)
            if (endpoint.permissions or {}).get("user") == "all" and endpoint.method != "GET":
                # create, restore, vzdump, volume delete: none of the three may; an ISO's attributes
                # (none given): read access to its storage is enough, as PVE's check_volume_access says
                enough = WRITES_OPEN_TO.get((endpoint.method, endpoint.template), ())
                expected = any(priv in privs for priv in enough)
            handler_priv = HANDLER_CHECKS.get((endpoint.method, endpoint.template))
            if handler_priv and handler_priv not in privs:
                expected = False
            if not endpoint.allowtoken and "!" in caller:
                expected = False
            try:
                given = {k: v for k, v in {**body, **BODY_FOR.get((endpoint.method, endpoint.template), {})}.items()
                         if k in endpoint.properties}  # valid, so the handler runs
                getattr(client(path.lstrip("/")), endpoint.method.lower())(
                    **({} if endpoint.method in ("GET", "DELETE") else given))
                allowed = True
            except ResourceException as exc:
                allowed = exc.status_code != 403
            if allowed != expected:
                wrong.append(f"{endpoint.method} {endpoint.template} as {caller}: "
                             f"{'allowed' if allowed else '403'}, expected {'allowed' if expected else '403'}")
    assert len(served) >= 150
    assert wrong == [], "\n".join(wrong)
    assert "qemu/299" not in {r["id"] for r in api(lab, "pve1").cluster.resources.get()}  # nothing was made
