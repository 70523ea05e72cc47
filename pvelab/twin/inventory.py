"""The Ansible inventory `pvelab twin up` writes for the lab it made."""

from __future__ import annotations

from typing import Any

import yaml

from pvelab.twin.bmc import CIPHER_SUITE
from pvelab.twin.disks import disk_names
from pvelab.twin.spec import BMC_PORT, BMC_USER, LINKS, NFS_EXPORT
from pvelab.twin.state import LabPaths, LabRecord


def inventory(record: LabRecord, paths: LabPaths) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    for node in record.spec.nodes:
        hosts[node.name] = {
            "ansible_host": node.link_addr(0),
            **{f"link{link}_addr": node.link_addr(link) for link in LINKS},
            "bmc_address": node.bmc_addr,
        }
    return {
        "all": {
            "children": {"pve_nodes": {"hosts": hosts}},
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(paths.ssh_key),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={paths.known_hosts} -o StrictHostKeyChecking=yes"
                ),
                "ansible_python_interpreter": "/usr/bin/python3",
                "pve_ssh_known_hosts_file": str(paths.known_hosts),
                "pve_root_password": record.root_password,
                **({"lab_student_password": record.student_password} if record.student_password else {}),
                # Where the course lab keeps the grader's token secret (PVE shows it only once).
                "lab_grader_token_file": str(paths.grader_token),
                "pve_version_expected": record.spec.pve_version,
                # The management network's first three octets: guests take addresses .100 and up there.
                "lab_guest_net": str(record.spec.subnet(0).network_address).rsplit(".", 1)[0],
                # Each node's data disks (`up --osd-disks`), as a hardware inventory lists them for Ceph.
                "lab_osd_devices": [f"/dev/{name}" for name in disk_names(record.spec.osd_disks)],
                "bmc_user": BMC_USER,
                "bmc_password": record.bmc_password,
                "bmc_port": BMC_PORT,
                "bmc_interface": "lanplus",
                "bmc_cipher_suite": CIPHER_SUITE,
                **storage_server_vars(record),
            },
        }
    }


def storage_server_vars(record: LabRecord) -> dict[str, Any]:
    """The storage server (`up --storage-server`), for storages on it: its address, iSCSI portal and
    target, NFS export."""
    nas = record.spec.nas
    if nas is None:
        return {}
    return {"lab_storage_server": {"address": nas.link_addr(0), "bmc_address": nas.bmc_addr,
                                   "iscsi_portal": nas.portal(), "iscsi_target": nas.iqn,
                                   "nfs_export": NFS_EXPORT}}


def write_inventory(record: LabRecord, paths: LabPaths) -> None:
    text = "# Written by `pvelab twin up`; rewritten on every up. Secrets are per lab.\n"
    text += yaml.safe_dump(inventory(record, paths), sort_keys=False)
    paths.inventory.write_text(text)
    paths.inventory.chmod(0o600)


def grader_access(record: LabRecord, paths: LabPaths) -> dict[str, Any]:
    """How the grader reaches a lab: its API with the read-only token the course lab made (PVEAuditor),
    or as root@pam where there is none yet; SSH (read-only commands) with the lab's key; its BMCs."""
    try:
        full, _, secret = paths.grader_token.read_text().strip().rpartition("=")
        user = full.partition("!")[0]
        api: dict[str, Any] = {"api_user": user, "api_token_id": full, "api_token_secret": secret}
    except FileNotFoundError:
        api = {"api_user": "root@pam", "api_password": record.root_password}
    return {**api, "ssh_user": "root",
            "ssh_key_file": str(paths.ssh_key), "ssh_known_hosts_file": str(paths.known_hosts),
            "bmc_user": BMC_USER, "bmc_password": record.bmc_password, "bmc_port": BMC_PORT}


def student_entry(record: LabRecord, student: str, params: dict[str, str]) -> dict[str, Any]:
    return {"id": student, "nodes": [{"name": n.name, "address": n.link_addr(0), "bmc": n.bmc_addr}
                                     for n in record.spec.nodes], "params": dict(params)}


def roster(record: LabRecord, paths: LabPaths, student: str, params: dict[str, str]) -> dict[str, Any]:
    """A grading roster with this lab as one student's cluster (for `pvelab grade`)."""
    return {"defaults": grader_access(record, paths), "students": [student_entry(record, student, params)]}


def class_roster(labs: list[tuple[str, LabRecord, LabPaths]], params: dict[str, str]) -> dict[str, Any]:
    """A roster with each lab as one student (its name the student id), each with its own secrets."""
    return {"students": [{**student_entry(record, name, params), **grader_access(record, paths)}
                         for name, record, paths in labs]}
