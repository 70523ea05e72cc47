"""Storage on the twin's nodes, as on a fresh PVE node: the installer's storage.cfg, pvesm, the
storage API through proxmoxer and pvesh, a dir storage that is really shared between nodes, and
/cluster/resources. The cluster comes from a fixture; the power-off test is audited."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from pvelab.pve.storage.config import INSTALLER_DEFAULT
from pvelab.twin.drive import fingerprint, pvecm_add, pvecm_create, ssh
from pvelab.twin.lab import Lab
from pvelab.twin.node_files import NODE_SHARED_DIR

from .conftest import api, audit_cluster, check_every_get, pve_version, wait_until

pytestmark = pytest.mark.lab
NODES = ("pve1", "pve2", "pve3")


def pvesm(lab: Lab, node: str, args: str) -> subprocess.CompletedProcess[str]:
    return ssh(lab, node, f"pvesm {args}")


@pytest.fixture(scope="module")
def standalone_views(lab: Lab) -> dict[str, str]:
    """What a fresh node shows before any cluster exists."""
    return {"storage.cfg": ssh(lab, "pve3", "cat /etc/pve/storage.cfg").stdout,
            "pvesm status": pvesm(lab, "pve3", "status").stdout}


@pytest.fixture(scope="module")
def cluster(lab: Lab, standalone_views: dict[str, str]) -> Lab:
    password = lab.require_record().root_password
    assert pvecm_create(lab, "pve1", "storclu").returncode == 0
    for node in ("pve2", "pve3"):
        joined = pvecm_add(lab, node, "pve1", password, fingerprint(lab, "pve1"))
        assert joined.returncode == 0, joined.stderr
    return lab


@pytest.fixture
def audited(cluster: Lab) -> Iterator[Lab]:
    yield cluster
    audit_cluster(cluster, NODES)


def test_a_fresh_node_has_the_installers_storage(standalone_views: dict[str, str]) -> None:
    assert standalone_views["storage.cfg"] == INSTALLER_DEFAULT
    lines = standalone_views["pvesm status"].splitlines()
    unit = " (KiB)" if pve_version() == "9" else ""
    assert lines[0].split() == ["Name", "Type", "Status", *f"Total{unit} Used{unit} Available{unit}".split(), "%"]
    assert [line.split()[:3] for line in lines[1:]] == [["local", "dir", "active"],
                                                       ["local-lvm", "lvmthin", "active"]]


def test_pvesm_alloc_list_path_free_on_the_emulated_lvmthin(cluster: Lab) -> None:
    out = pvesm(cluster, "pve2", "alloc local-lvm 120 vm-120-disk-0 1G")
    assert (out.returncode, out.stdout) == (0, "successfully created 'local-lvm:vm-120-disk-0'\n"), out.stderr
    listed = pvesm(cluster, "pve2", "list local-lvm").stdout.splitlines()
    assert listed[0].split() == ["Volid", "Format", "Type", "Size", "VMID"]
    assert listed[1].split() == ["local-lvm:vm-120-disk-0", "raw", "images", str(1 << 30), "120"]
    path = pvesm(cluster, "pve2", "path local-lvm:vm-120-disk-0").stdout.strip()
    assert path == "/dev/pve/vm-120-disk-0"
    assert ssh(cluster, "pve2", f"test -e {path} && stat -L -c %s {path}").stdout.strip() == str(1 << 30)
    freed = pvesm(cluster, "pve2", "free local-lvm:vm-120-disk-0")
    assert (freed.returncode, freed.stdout) == (0, "Removed volume 'local-lvm:vm-120-disk-0'\n"), freed.stderr
    assert pvesm(cluster, "pve2", "list local-lvm").stdout.splitlines()[1:] == []


@pytest.mark.parametrize("args,message", [
    ("alloc nope 120 vm-120-disk-0 1G", "storage 'nope' does not exist"),
    ("alloc local-lvm 99 vm-99-disk-0 1G", "vmid: value must have a minimum value of 100"),
    ("alloc local-lvm 120 vm-121-disk-0 1G", "illegal name 'vm-121-disk-0' - should be 'vm-120-*'"),
    ("alloc local-lvm 120 vm-120-disk-0 1T", "size: value does not match the regex pattern"),
    ("add lvmthin thin2 --vgname pve --thinpool data --content iso", "storage does not support content type 'none'"),
    ("add dir local --path /srv", "storage ID 'local' already defined"),
    ("free local-lvm:vm-120-disk-9", "Failed to find logical volume \"pve/vm-120-disk-9\""),
])
def test_bad_storage_input_gets_pves_error_and_changes_nothing(cluster: Lab, args: str, message: str) -> None:
    before = ssh(cluster, "pve1", "cat /etc/pve/storage.cfg; ls /var/lib/pvelab/lvmthin/pve/data 2>/dev/null").stdout
    out = pvesm(cluster, "pve1", args)
    assert out.returncode == 255 and message in out.stderr, out.stdout + out.stderr
    assert ssh(cluster, "pve1", "cat /etc/pve/storage.cfg; ls /var/lib/pvelab/lvmthin/pve/data 2>/dev/null"
               ).stdout == before


def test_a_shared_dir_storage_holds_the_same_files_on_every_node(cluster: Lab) -> None:
    added = pvesm(cluster, "pve1", f"add dir labshare --path {NODE_SHARED_DIR} --shared 1 --content images,backup")
    assert added.returncode == 0, added.stderr
    try:
        assert "dir: labshare" in ssh(cluster, "pve3", "cat /etc/pve/storage.cfg").stdout  # /etc/pve replicates it
        assert pvesm(cluster, "pve1", "alloc labshare 130 vm-130-disk-0.raw 64M").returncode == 0
        on_pve3 = pvesm(cluster, "pve3", "list labshare").stdout
        assert "labshare:130/vm-130-disk-0.raw raw     images" in on_pve3  # the same file, seen from another node
        shares = [e for e in api(cluster, "pve2").cluster.resources.get(type="storage") if e["storage"] == "labshare"]
        assert sorted(e["node"] for e in shares) == list(NODES) and all(e["shared"] == 1 for e in shares)
    finally:
        pvesm(cluster, "pve1", "free labshare:130/vm-130-disk-0.raw")
        pvesm(cluster, "pve1", "remove labshare")
    assert "labshare" not in ssh(cluster, "pve2", "cat /etc/pve/storage.cfg").stdout


def test_storage_api_answers_proxmoxer_and_pvesh(cluster: Lab) -> None:
    by_api = api(cluster, "pve1").nodes("pve2").storage.get()  # proxied to pve2
    assert sorted(s["storage"] for s in by_api) == ["local", "local-lvm"] and all(s["active"] == 1 for s in by_api)
    out = ssh(cluster, "pve2", "pvesh get /nodes/pve2/storage --output-format json")
    assert out.returncode == 0 and sorted(s["storage"] for s in json.loads(out.stdout)) == ["local", "local-lvm"]
    assert api(cluster, "pve1").storage("local-lvm").get()["thinpool"] == "data"
    assert api(cluster, "pve1").cluster.nextid.get() == 100


def test_every_get_still_matches_the_schema_with_storage(cluster: Lab) -> None:
    api(cluster, "pve3").nodes("pve3").storage("local-lvm").content.post(vmid=140, filename="vm-140-disk-0",
                                                                         size="4M")
    try:
        answered = check_every_get(cluster, "pve3")
        assert {"GET /cluster/resources", "GET /nodes/{node}/storage/{storage}/content/{volume}"} <= set(answered)
        assert {key: problems for key, problems in answered.items() if problems} == {}
    finally:
        pvesm(cluster, "pve3", "free local-lvm:vm-140-disk-0")


def test_cluster_resources_show_a_powered_off_node_and_its_storage(audited: Lab) -> None:
    full = api(audited, "pve1").cluster.resources.get()
    assert sorted(e["id"] for e in full if e["type"] == "node") == ["node/pve1", "node/pve2", "node/pve3"]
    assert all(e["status"] == "online" and e["maxmem"] > 0 for e in full if e["type"] == "node")
    assert len([e for e in full if e["type"] == "storage" and e["status"] == "available"]) == 6
    assert audited.power("pve3", "off") == "off"
    wait_until(lambda: any(e["id"] == "node/pve3" and e["status"] == "offline"
                           for e in api(audited, "pve1").cluster.resources.get(type="node")), 30,
               "pve1 showing pve3 offline")
    storage = {e["id"]: e["status"] for e in api(audited, "pve1").cluster.resources.get(type="storage")}
    assert storage["storage/pve3/local"] == "unknown" and storage["storage/pve1/local"] == "available"


def test_pve_storage_module_creates_changes_and_removes_a_storage(cluster: Lab) -> None:
    from .test_ansible_modules import api_args, module

    share = {**api_args(cluster, "pve2"), "storage": "modshare", "type": "dir", "path": NODE_SHARED_DIR,
             "shared": True, "content": ["images", "backup"]}
    preview = module(cluster, "pvelab.pve.pve_storage", share, check=True, diff=True)
    assert preview["changed"] is True and "modshare" not in ssh(cluster, "pve1", "cat /etc/pve/storage.cfg").stdout
    made = module(cluster, "pvelab.pve.pve_storage", share)
    assert made["changed"] is True, made
    assert "dir: modshare\n\tpath /mnt/lab-shared\n" in ssh(cluster, "pve3", "cat /etc/pve/storage.cfg").stdout
    assert module(cluster, "pvelab.pve.pve_storage", share)["changed"] is False
    moved = module(cluster, "pvelab.pve.pve_storage", {**share, "path": "/srv/elsewhere"})
    assert moved["_failed"] and "cannot change once it exists" in moved["msg"]
    gone = module(cluster, "pvelab.pve.pve_storage",
                  {**api_args(cluster, "pve1"), "storage": "modshare", "state": "absent"})
    assert gone["changed"] is True and "modshare" not in ssh(cluster, "pve2", "cat /etc/pve/storage.cfg").stdout


def test_community_proxmox_storage_modules_work_unchanged(cluster: Lab) -> None:
    """The collection users already have (community.proxmox 1.4.0, unpacked by setup.sh) against the twin."""
    from .test_ansible_modules import COMMUNITY_COLLECTIONS, api_args, community_module

    assert (COMMUNITY_COLLECTIONS / "ansible_collections" / "community" / "proxmox").is_dir(), "run scripts/setup.sh"
    auth = api_args(cluster, "pve1")
    login = {"api_host": auth["api_host"], "api_user": "root@pam", "api_password": auth["api_password"],
             "validate_certs": False}
    storages = community_module(cluster, "community.proxmox.proxmox_storage_info", login)
    assert not storages["_failed"], storages
    assert sorted(s["storage"] for s in storages["proxmox_storages"]) == ["local", "local-lvm"]
    content = community_module(cluster, "community.proxmox.proxmox_storage_contents_info",
                               {**login, "storage": "local", "node": "pve1"})
    assert not content["_failed"], content
    assert any(v["volid"] == "local:iso/pvelab-tiny.iso" for v in content["proxmox_storage_content"])
    join = community_module(cluster, "community.proxmox.proxmox_cluster_join_info", login)
    assert not join["_failed"] and join["cluster_join"]["nodelist"], join


def test_vmlist_and_nextid_see_guest_configs_on_any_node(cluster: Lab) -> None:
    from proxmoxer.core import ResourceException

    guest = "/etc/pve/nodes/pve2/qemu-server/100.conf"
    assert ssh(cluster, "pve2", f"echo 'memory: 256' > {guest}").returncode == 0
    try:
        wait_until(lambda: '"100"' in ssh(cluster, "pve1", "cat /etc/pve/.vmlist").stdout, 10,
                   "pve1's .vmlist listing VM 100 of pve2")
        assert json.loads(ssh(cluster, "pve3", "cat /etc/pve/.vmlist").stdout)["ids"]["100"]["node"] == "pve2"
        assert api(cluster, "pve1").cluster.nextid.get() == 101
        with pytest.raises(ResourceException) as err:
            api(cluster, "pve3").cluster.nextid.get(vmid=100)
        assert err.value.status_code == 400 and err.value.errors == {"vmid": "VM 100 already exists"}
    finally:
        ssh(cluster, "pve2", f"rm -f {guest}")
