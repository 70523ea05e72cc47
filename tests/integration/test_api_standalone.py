"""The REST API of nodes outside any cluster, with proxmoxer, on nodes of the run's
PVE version: version, logins, PVE's answers outside a cluster, parameter checks; and what a
student sees first on a fresh node. Nothing here changes a node, so the tests hold in any order."""

from __future__ import annotations

import pytest
from proxmoxer.core import AuthenticationError, ResourceException

from pvelab.procfs import cpuinfo
from pvelab.twin.drive import ssh
from pvelab.twin.lab import Lab

from .conftest import api, check_every_get, pve_version

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
