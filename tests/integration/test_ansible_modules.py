"""The Ansible modules against a twin lab: check mode, diff, idempotence, refusals. The cluster is
formed by the modules in a fixture (whose results the tests check), so tests hold in any order;
test_verify_checklist.py breaks a cluster on purpose, on its own lab."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pvelab.twin.drive import quorum_view, ssh
from pvelab.twin.lab import Lab

from .conftest import BIN, REPO, lab_addr

pytestmark = pytest.mark.lab


def ansible_env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", ANSIBLE_NOCOLOR="1")


# community.proxmox 1.4.0 as setup.sh unpacks it: the collection users already have
COMMUNITY_COLLECTIONS = REPO / ".venv" / "collections"


def module(lab: Lab, name: str, args: dict[str, Any], check: bool = False, diff: bool = False,
           collections: Path | None = None) -> dict[str, Any]:
    """Run one module on the controller, as the roles do: its result, with the printed diff as `_diff`
    and whether it failed as `_failed`; `collections`: where Ansible finds collections besides ours."""
    argv = [str(BIN / "ansible"), "localhost", "-m", name, "-a", json.dumps(args)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    env = {**ansible_env(), **({"ANSIBLE_COLLECTIONS_PATH": str(collections)} if collections else {})}
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          check=False, stdin=subprocess.DEVNULL)  # ansible refuses a non-blocking stdin
    head, sep, body = proc.stdout.partition("localhost | ")
    assert sep, proc.stdout + proc.stderr
    status, _, payload = body.partition(" => ")
    return {**json.loads(payload), "_diff": head, "_failed": status.startswith("FAILED")}


def api_args(lab: Lab, node: str) -> dict[str, Any]:
    record = lab.require_record()
    return {"api_host": record.spec.node(node).link_addr(0), "api_password": record.root_password}


def ssh_args(lab: Lab) -> dict[str, Any]:
    return {"ssh_key_file": str(lab.paths.ssh_key), "ssh_known_hosts_file": str(lab.paths.known_hosts)}


def links(lab: Lab, node: str) -> list[str]:
    spec = lab.require_record().spec.node(node)
    return [spec.link_addr(0), spec.link_addr(1)]


@pytest.fixture(scope="module")
def modclu(lab: Lab) -> dict[str, Any]:
    """The module run as a playbook would: a check-mode preview on standalone pve1, the create, the same
    again, then pve2 joining through the API and pve3 over SSH. Each result, for the tests."""
    create = {**api_args(lab, "pve1"), "cluster_name": "modclu", "links": links(lab, "pve1")}
    join = {"cluster_name": "modclu", "join_host": lab_addr(lab, 11)}
    steps = {"preview": module(lab, "pvelab.pve.pve_cluster", create, check=True, diff=True),
             "info before": module(lab, "pvelab.pve.pve_cluster_info", api_args(lab, "pve1"))}
    steps["create"] = module(lab, "pvelab.pve.pve_cluster", create)
    steps["create again"] = module(lab, "pvelab.pve.pve_cluster", create)
    steps["api join"] = module(lab, "pvelab.pve.pve_cluster",
                               {**api_args(lab, "pve2"), **join, "links": links(lab, "pve2")})
    steps["ssh join"] = module(lab, "pvelab.pve.pve_cluster", {**api_args(lab, "pve3"), **ssh_args(lab), **join,
                                                    "join_method": "ssh", "links": links(lab, "pve3")})
    return steps


def test_check_mode_changes_nothing(modclu: dict[str, Any]) -> None:
    preview = modclu["preview"]
    assert preview["changed"] is True and preview["action"] == "created" and "would be created" in preview["msg"]
    assert '-    "cluster": null,' in preview["_diff"] and '+    "cluster": "modclu",' in preview["_diff"]
    info = modclu["info before"]
    assert info["in_cluster"] is False and info["changed"] is False


def test_create_then_again_is_no_change(modclu: dict[str, Any]) -> None:
    first, again = modclu["create"], modclu["create again"]
    assert first["changed"] is True and first["task_log"][-1] == "TASK OK", first
    assert again["changed"] is False and again["membership"]["cluster"] == "modclu"


def test_join_through_the_api_and_over_ssh(lab: Lab, modclu: dict[str, Any]) -> None:
    assert modclu["api join"]["changed"] is True and modclu["api join"]["action"] == "joined", modclu["api join"]
    assert modclu["ssh join"]["changed"] is True, modclu["ssh join"]
    assert "successfully added node 'pve3' to cluster." in modclu["ssh join"]["task_log"]
    assert quorum_view(lab, "pve1")["nodes"] == 3


def test_a_node_of_another_cluster_is_refused_with_the_fix(lab: Lab, modclu: dict[str, Any]) -> None:
    result = module(lab, "pvelab.pve.pve_cluster", {**api_args(lab, "pve2"), "cluster_name": "other"})
    assert result["_failed"]
    assert "pve2 is already a member of cluster 'modclu'" in result["msg"]
    assert "pvecm delnode" in result["msg"]


def test_wrong_password_says_what_to_check(lab: Lab, modclu: dict[str, Any]) -> None:
    result = module(lab, "pvelab.pve.pve_cluster_info", {**api_args(lab, "pve1"), "api_password": "wrong"})
    assert result["_failed"] and "authentication failure" in result["msg"]
    assert "check api_password" in result["msg"]


def test_cluster_info_reads_votes_and_links(lab: Lab, modclu: dict[str, Any]) -> None:
    info = module(lab, "pvelab.pve.pve_cluster_info", {**api_args(lab, "pve2"), **ssh_args(lab)})
    assert (info["cluster_name"], info["quorate"], info["expected_votes"], info["total_votes"]) == (
        "modclu", True, 3, 3)
    assert [n["name"] for n in info["nodes"]] == ["pve1", "pve2", "pve3"]
    assert info["link_status"]["link1"]["1"] == "connected"
    assert info["pve_major"] == int(lab.require_record().spec.pve_version)


def test_corosync_priorities_and_totem_then_no_change(lab: Lab, modclu: dict[str, Any]) -> None:
    args = {"api_host": lab_addr(lab, 11), **ssh_args(lab), "link_priorities": {"0": 5, "1": 25},
            "totem": {"token": 4000}}
    preview = module(lab, "pvelab.pve.pve_corosync", args, check=True, diff=True)
    assert preview["changed"] is True and "+    knet_link_priority: 25" in preview["_diff"]
    applied = module(lab, "pvelab.pve.pve_corosync", args)
    assert applied["changed"] is True and applied["config_version"] == preview["config_version"], applied
    assert module(lab, "pvelab.pve.pve_corosync", args)["changed"] is False


def test_corosync_refuses_moving_every_link_of_a_node(lab: Lab, modclu: dict[str, Any]) -> None:
    result = module(lab, "pvelab.pve.pve_corosync", {"api_host": lab_addr(lab, 11), **ssh_args(lab),
                                          "links": {"pve2": [lab_addr(lab, 99), lab_addr(lab, 99, 1)]}})
    assert result["_failed"] and "every link address of 'pve2' at once" in result["msg"]


def test_quorum_needs_the_acknowledgement(lab: Lab, modclu: dict[str, Any]) -> None:
    refused = module(lab, "pvelab.pve.pve_quorum", {"api_host": lab_addr(lab, 13), **ssh_args(lab), "expected": 1})
    assert refused["_failed"] and "accept_split_brain_risk: true" in refused["msg"]
    same = module(lab, "pvelab.pve.pve_quorum", {"api_host": lab_addr(lab, 13), **ssh_args(lab), "expected": 3,
                                      "accept_split_brain_risk": True})
    assert same["changed"] is False
    preview = module(lab, "pvelab.pve.pve_quorum", {"api_host": lab_addr(lab, 13), **ssh_args(lab), "expected": 1,
                                         "accept_split_brain_risk": True}, check=True)
    assert preview["changed"] is True and "would be set to 1" in preview["msg"]
    assert quorum_view(lab, "pve3")["expected_votes"] == 3  # check mode changed nothing




def test_verify_passes_on_the_formed_cluster(lab: Lab, modclu: dict[str, Any]) -> None:
    out = verify(lab)
    assert out.returncode == 0, out.stdout[-3000:]
    assert re.search(r"\b(\d+) passed\b", out.stdout) and " failed" not in out.stdout, out.stdout[-3000:]


def verify(lab: Lab, *extra: str) -> subprocess.CompletedProcess[str]:
    """The cluster checks of the verify suite (this module forms a cluster only; the course lab's
    checks run in the molecule `ha` scenario, on a lab site.yml built)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           str(REPO / "tests" / "verify" / "test_cluster.py"),
                           "--connection=ansible", f"--ansible-inventory={REPO / 'inventory' / 'twin'}",
                           "--hosts=pve_nodes", *extra], cwd=REPO, env=ansible_env(), capture_output=True, text=True,
                          timeout=600, check=False)


USER_PLAYBOOK = """\
# A user's own playbook: the collection by its fully qualified names, the connection set once.
- name: A storage and a guest on the class cluster
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/pvelab.pve.api:
      api_host: "{{ node_address }}"
      api_password: "{{ root_password }}"
  tasks:
    - name: Read the cluster
      pvelab.pve.pve_cluster_info:
      register: cluster

    - name: The VM gone first, when removing (its disk is on the storage)
      pvelab.pve.pve_guest:
        vmid: 150
        state: absent
      when: wanted == 'absent'

    - name: A directory storage for guest disks
      pvelab.pve.pve_storage:
        storage: userdir
        type: dir
        path: /srv/userdir
        content: [images]
        nodes: [pve1]
        state: "{{ wanted }}"

    - name: A stopped VM with a small disk on it
      pvelab.pve.pve_guest:
        vmid: 150
        node: pve1
        name: user150
        memory: 128
        disk_storage: userdir
        disk_size: 0.0625
        state: "{{ wanted }}"
      when: wanted == 'present'

    - name: Say which cluster it was
      ansible.builtin.debug:
        msg: "cluster {{ cluster.cluster_name }} with {{ cluster.nodes | length }} nodes"
"""


def test_a_users_playbook_uses_the_installed_collection(lab: Lab, modclu: dict[str, Any], tmp_path: Path) -> None:
    """The built collection installed into an empty collections path, and a playbook in an empty folder
    outside the repository calling three modules by FQCN with one module_defaults group: no ansible.cfg,
    library or plugin path of this repository is involved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"))
    built = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path)],
                           cwd=REPO / "ansible_collections" / "pvelab" / "pve", env=env, capture_output=True,
                           text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = tmp_path.glob("pvelab-pve-*.tar.gz")
    installed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-p",
                                str(tmp_path / "collections"), str(tarball)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    shipped = tmp_path / "collections" / "ansible_collections" / "pvelab" / "pve" / "plugins" / "module_utils"
    assert not (shipped / "pvecm_output.py").is_symlink() and "def parse_status" in (
        shipped / "pvecm_output.py").read_text()  # a real copy of the file pvelab/ shares, not a link
    user_dir = tmp_path / "my-playbooks"
    user_dir.mkdir()
    (user_dir / "class.yml").write_text(USER_PLAYBOOK)
    record = lab.require_record()

    listed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "pvelab.pve"], cwd=user_dir, env=env,
                            capture_output=True, text=True, timeout=120, check=False).stdout
    assert str(tmp_path / "collections") in listed and str(REPO) not in listed, listed  # only the installed copy
    doc = subprocess.run([str(BIN / "ansible-doc"), "pvelab.pve.pve_cluster"], cwd=user_dir, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert doc.returncode == 0 and "api_host" in doc.stdout and "join_method" in doc.stdout, doc.stderr

    def play(wanted: str) -> str:
        # the controller's Python, the one with proxmoxer (a user names theirs in the inventory the same way)
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "class.yml",
                               "-e", f"ansible_python_interpreter={sys.executable}",
                               "-e", f"node_address={record.spec.node('pve1').link_addr(0)}",
                               "-e", f"root_password={record.root_password}", "-e", f"wanted={wanted}"],
                              cwd=user_dir, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc.stdout

    made = play("present")
    assert "cluster modclu with 3 nodes" in made and re.search(r"localhost\s+: ok=\d+\s+changed=2\b", made), made
    assert "dir: userdir" in ssh(lab, "pve2", "cat /etc/pve/storage.cfg").stdout
    assert "scsi0: userdir:" in ssh(lab, "pve1", "cat /etc/pve/qemu-server/150.conf").stdout
    again = play("present")
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", again), again  # idempotent
    play("absent")  # leaves the cluster as the other tests expect it
    assert "userdir" not in ssh(lab, "pve1", "cat /etc/pve/storage.cfg").stdout
    assert ssh(lab, "pve1", "test -e /etc/pve/qemu-server/150.conf").returncode != 0


def community_module(lab: Lab, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """A community.proxmox module, unchanged, against the lab."""
    return module(lab, name, args, collections=COMMUNITY_COLLECTIONS)
