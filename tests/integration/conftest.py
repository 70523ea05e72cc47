"""Real twin labs for the integration tests, always torn down, and the audits that run after every
fault test (as pacemaker's CTS audits after each test): no test relies on what another left.

The tests never touch a lab they did not make: every lab they build is a named one of their own
(`pvelab-ci` by default, `$PVELAB_TEST_LAB` to choose), so the default lab, or a class of named labs,
that a user brought up stays up and unchanged. PVELAB_LAB is set to that name for the whole run, so the
CLI, the inventory plugin, molecule and ansible-playbook that the tests start all find the tests' lab."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pvelab.poll import wait_for
from pvelab.twin.drive import guest_page, quorum_view, ssh
from pvelab.twin.lab import Lab
from pvelab.twin.spec import LabSpec

TEST_LAB = os.environ.get("PVELAB_TEST_LAB", "pvelab-ci")
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # ansible-playbook, molecule, pvelab: the run's own virtualenv


@pytest.fixture(scope="session", autouse=True)
def tests_use_their_own_lab() -> Iterator[None]:
    """Everything the lab tests start (the CLI, Ansible, molecule) finds the tests' lab, never the user's."""
    before = os.environ.get("PVELAB_LAB")
    os.environ["PVELAB_LAB"] = TEST_LAB
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PVELAB_LAB", None)
        else:
            os.environ["PVELAB_LAB"] = before


def own_lab(name: str = TEST_LAB) -> Lab:
    """A named lab of the tests' own. One left behind by an interrupted run is the tests' too: taken down."""
    the_lab = Lab.named(name, log=print)
    if the_lab.paths.root.exists() or the_lab.leftovers():
        print(f"taking down the test lab '{name}' an earlier run left behind")
        the_lab.down(quiet=True)
    return the_lab


def start_lab(pve_version: str, name: str = TEST_LAB, **spec: Any) -> Lab:
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (namespaces, bridges, mounts): run sudo ./scripts/test.sh")
    the_lab = own_lab(name)
    try:
        the_lab.up(LabSpec(node_count=spec.pop("node_count", 3), pve_version=pve_version, **spec))
    except BaseException:
        the_lab.down(quiet=True)
        raise
    return the_lab


def lab_addr(lab: Lab, host: int, link: int | None = 0) -> str:
    """Address `host` (the last octet) on one of the lab's links (None: the BMC network): link 0 is
    vmbr0, the management LAN that guests join too. Labs differ only in their subnets, so tests name
    hosts, not addresses."""
    return str(lab.require_record().spec.subnet(link).network_address + host)


def lab_subnet(lab: Lab, link: int = 0) -> ipaddress.IPv4Network:
    return lab.require_record().spec.subnet(link)


class GuestAddresses:
    """Guests' addresses on the tests' lab's management LAN, by key ({vmid: last octet}): read when
    used, since the lab's subnet is known only once it is up."""

    def __init__(self, hosts: dict[int, int], name: str = TEST_LAB) -> None:
        self.hosts, self.name = hosts, name

    def __getitem__(self, key: int) -> str:
        return lab_addr(Lab.named(self.name), self.hosts[key])


def pve_version() -> str:
    """The PVE major every lab of this run presents: PVELAB_PVE_VERSION (8: Debian 12 nodes, 9: Debian
    13 nodes), or the twin's default. scripts/test.sh runs the lab suite on 9 and the tests marked pve8 on 8."""
    version = os.environ.get("PVELAB_PVE_VERSION", LabSpec.pve_version)
    if version not in ("8", "9"):
        pytest.fail(f"PVELAB_PVE_VERSION is '{version}': use 8 or 9")
    return version


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A fresh 3-node lab per test module, torn down after it even when tests fail."""
    the_lab = start_lab(pve_version())
    try:
        yield the_lab
    finally:
        the_lab.down(quiet=True)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               explain: Callable[[], str] | None = None) -> float:
    """Poll until predicate() holds; return the seconds it took, or fail saying what never happened
    (and, given `explain`, what the lab shows then)."""
    try:
        return wait_for(predicate, timeout, what)
    except TimeoutError as exc:
        pytest.fail(str(exc) + (f"\n{explain()}" if explain else ""))


def wait_for_task(client: Any, node: str, upid: str, timeout: float = 60) -> dict[str, Any]:
    """Wait for a task started through the API to stop; its status."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(client.nodes(node).tasks(upid).status.get())
        return found.get("status") == "stopped"

    wait_until(done, timeout, f"task {upid}")
    return found


def guest_state(lab: Lab, node: str, vmid: int, address: str) -> str:
    """What a guest that does not do what a test waits for shows: its page, QEMU's view, its console
    and the node's load."""
    page = guest_page(address)
    shown = ssh(lab, node, f"qm status {vmid} --verbose | grep -E '^(status|qmpstatus|lock|io-status)'; "
                           f"echo '-- console'; tail -c 2000 /var/run/qemu-server/{vmid}.console; "
                           "echo '-- load'; cat /proc/loadavg")
    return f"VM {vmid} on {node}: page {page or 'not answering'}\n{shown.stdout}{shown.stderr}"


def audit_hardware(lab: Lab) -> None:
    """Every node powered on, running (not frozen), answering SSH and the API; no cut, no delay."""
    lab.heal()
    for status in lab.status():
        if status.power == "off":
            lab.power(status.name, "on", cause="test audit")
        elif status.frozen:
            lab.freeze(status.name, False)
    for node in lab.require_record().spec.nodes:
        wait_until(lambda n=node: lab.node_ready(n), 120, f"{node.name} answering SSH and the API")


def audit_cluster(lab: Lab, members: tuple[str, ...]) -> None:
    """The hardware audit, then every member quorate with all members, and one corosync.conf everywhere."""
    audit_hardware(lab)
    for node in members:
        wait_until(lambda n=node: quorum_view(lab, n).get("quorate") is True
                   and quorum_view(lab, n).get("nodes") == len(members), 90, f"{node} quorate with {members}")
    wait_until(lambda: len({ssh(lab, n, "cat /etc/pve/corosync.conf").stdout for n in members}) == 1, 30,
               "one corosync.conf on every member")


def api(lab: Lab, node: str, password: str | None = None) -> Any:
    """A proxmoxer client of `node`'s API, logged in as root@pam (with the lab's password by default)."""
    from proxmoxer import ProxmoxAPI

    spec = lab.require_record().spec.node(node)
    return ProxmoxAPI(spec.link_addr(0), user="root@pam", password=password or lab.require_record().root_password,
                      verify_ssl=False, timeout=30)


def client_as(lab: Lab, node: str, user: str, password: str | None = None, token: tuple[str, str] | None = None
              ) -> Any:
    """A proxmoxer client of `node`'s API as `user`, with a password or with a token (name, secret)."""
    from proxmoxer import ProxmoxAPI

    address = lab.require_record().spec.node(node).link_addr(0)
    if token:
        return ProxmoxAPI(address, user=user, token_name=token[0], token_value=token[1], verify_ssl=False, timeout=30)
    return ProxmoxAPI(address, user=user, password=password, verify_ssl=False, timeout=30)


def check_every_get(lab: Lab, node: str) -> dict[str, list[str]]:
    """GET every endpoint the twin serves on `node` (through its API, as proxmoxer does) and validate each
    answer against the schema's `returns`: {path: problems} for the ones answered; PVE's own refusals
    (424 outside a cluster, say) are not answers and are left out."""
    from proxmoxer.core import ResourceException

    from pvelab.pve.api.schema import endpoints, returns_problems

    record = lab.require_record()
    client = api(lab, node)
    values = {"{node}": node, "{userid}": "root@pam", "{storage}": "local-lvm", "{iface}": "vmbr0",
              "{service}": "pveproxy",
              "{upid}": next((t["upid"] for t in client.nodes(node).tasks.get()), None),
              "{volume}": next((v["volid"] for v in client.nodes(node).storage("local-lvm").content.get()), None),
              "{vmid}": next((str(vm["vmid"]) for vm in client.nodes(node).qemu.get()), None),
              "{id}": next((job["id"] for job in client.cluster.backup.get()), None),
              "{sid}": next((r["sid"] for r in client.cluster.ha.resources.get()), None),
              "{rule}": next((r["rule"] for r in client.cluster.ha.rules.get()), None)
              if record.spec.pve_version != "8" else None,
              "{group}": next((g["group"] for g in client.cluster.ha.groups.get()), None)
              if record.spec.pve_version == "8" else None,
              "{name}": ceph_pool(client, node),
              "{groupid}": next((g["groupid"] for g in client.access.groups.get()), None),
              "{roleid}": "PVEAuditor", "{realm}": "pve",
              "{tokenid}": next((t["tokenid"] for t in client.access.users("root@pam").token.get()), None),
              "{poolid}": next((p["poolid"] for p in client.pools.get()), None)}
    values["{snapname}"] = next((s["name"] for s in client.nodes(node).qemu(values["{vmid}"]).snapshot.get()
                                 if s["name"] != "current"), None) if values["{vmid}"] else None
    ct = next((str(c["vmid"]) for c in client.nodes(node).lxc.get()), None)
    ct_snapname = next((s["name"] for s in client.nodes(node).lxc(ct).snapshot.get() if s["name"] != "current"),
                       None) if ct else None
    answered: dict[str, list[str]] = {}
    for key, endpoint in endpoints(record.spec.pve_version).items():
        these = {**values, "{vmid}": ct, "{snapname}": ct_snapname} if "/lxc/" in endpoint.template else values
        if endpoint.method != "GET" or any(k in endpoint.template and v is None for k, v in these.items()):
            continue
        path, params = endpoint.template, {}
        if path.endswith("/prunebackups"):  # a storage holding backups, and a policy to mark them by
            these, params = {**these, "{storage}": "local"}, {"prune-backups": "keep-last=1"}
        if path.endswith("/feature"):  # the feature asked about is required
            params = {"feature": "clone"}
        if path.endswith("/scan/iscsi"):  # the lab's storage server's portal, else one where nothing listens
            nas = record.spec.nas
            params = {"portal": nas.link_addr(0) if nas else record.spec.host_addr(0)}
        if path.endswith("/scan/nfs"):  # the lab's storage server's exports (without one: nothing to ask)
            if record.spec.nas is None:
                continue
            params = {"server": record.spec.nas.link_addr(0)}
        if path.endswith("/extractconfig"):  # a backup to read, where the node has one
            backups = [v["volid"] for s in client.nodes(node).storage.get(content="backup")
                       for v in client.nodes(node).storage(s["storage"]).content.get(content="backup")]
            if not backups:
                continue
            params = {"volume": backups[0]}
        for placeholder, value in these.items():
            path = path.replace(placeholder, value or "")
        try:
            data = client(path.lstrip("/")).get(**params)
        except ResourceException as exc:
            if exc.status_code in (424, 501) or any(text in str(exc) for text in PVE_REFUSALS):
                continue  # PVE's own refusals (outside a cluster; HA groups on PVE 9; Ceph not set up)
            raise
        answered[key] = returns_problems(endpoint.info.get("returns", {}), data)
    return answered


def ceph_pool(client: Any, node: str) -> str | None:
    """A Ceph pool's name, or None where Ceph is not set up (its GETs answer PVE's refusal then)."""
    try:
        return next((p["pool_name"] for p in client.nodes(node).ceph.pool.get()), None)
    except Exception:  # noqa: BLE001 - any refusal means no pool to ask about
        return None


PVE_REFUSALS = ("ha groups have been migrated to rules", "pveceph configuration not initialized",
                "rados_connect failed")


def guest_ids(lab: Lab) -> dict[str, dict[str, Any]]:
    """pmxcfs's .vmlist as pve1 shows it: {vmid: {node, type, version}}."""
    return dict(json.loads(ssh(lab, "pve1", "cat /etc/pve/.vmlist").stdout)["ids"])


def backup_job_run_once(lab: Lab, job_id: str, **options: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A minutely backup job, deleted as soon as its first run has started (so it runs exactly once,
    however long that run takes): the job as /cluster/backup showed it, and its vzdump tasks, waited for."""
    client = api(lab, "pve1")
    client.cluster.backup.post(id=job_id, schedule="minutely", **options)
    try:
        job = dict(client.cluster.backup(job_id).get())

        def job_tasks() -> list[dict[str, Any]]:
            return [t for t in client.cluster.tasks.get()
                    if t["type"] == "vzdump" and t["starttime"] >= job["next-run"]]

        wait_until(lambda: bool(job_tasks()), 130, f"job {job_id}'s first run")
    finally:
        client.cluster.backup(job_id).delete()
    wait_until(lambda: all(t["status"] == "stopped" for t in job_tasks()), 300, f"job {job_id}'s vzdump tasks")
    return job, job_tasks()

